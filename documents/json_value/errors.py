"""The two ways client JSON is refused, and the words their messages use for what was given instead.

Every other module of the package raises these, so they live apart from all of them (no import cycle).
"""

from __future__ import annotations

from typing import Any


class InvalidJson(ValueError):
    """The value cannot be stored as JSON; the message says why."""


class InvalidPredicate(ValueError):
    """A path predicate is malformed; the message says what is wrong with its op, value or path."""


def kind_of(value: Any) -> str:
    """What a value is, in JSON's words ("an object", "null", ...), for error messages."""
    if value is None:
        return "null"
    # bool before number: True is an int to Python, but a boolean to the client who sent it
    if isinstance(value, bool):
        return "a boolean"
    for kinds, name in ((dict, "an object"), ((list, tuple), "an array"), (str, "a string"),
                        ((int, float), "a number")):
        if isinstance(value, kinds):
            return name
    return f"a {type(value).__name__}"
