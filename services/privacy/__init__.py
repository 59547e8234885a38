"""Privacy requests: what names a user (places.py), export, anonymize and erase (requests.py), and
anonymizing personal fields once they are old enough (aging.py).

A user is named by the id their tokens carry (`userId`), which Graphlake writes into the identity
fields of what they make (`createdBy`, `owner.userId`, an event's `source.userId`, ...). Those fields
find the user's documents; in them the id is replaced in those fields and, as a whole word, in their
free text (places.FREE_TEXT), never in content, keys or a version's copies. Text that other people
wrote about the user elsewhere is content, not identity, and is not searched.
"""
