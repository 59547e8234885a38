"""services/query_match's `$in` finds a value in a set: the same answers as comparing it with each
choice by MongoDB's equality (`_equal`), which it replaced."""

import itertools

from bson import ObjectId

from services.query_match import _MISSING, _equal, matcher

OID = ObjectId()
VALUES = [_MISSING, None, True, False, 0, 1, 1.0, 2, 2.5, "1", "a", "", OID, ObjectId(), {"a": 1}, [1], [True]]
CHOICE_SETS = [[], [None], [True], [1], [1.0], [0], [False], ["a", "b"], [OID], [{"a": 1}], [[1]], [None, 1, "a", True],
               [2.5, False, {"a": 1}, OID], [1, True, 0, False, None, "", [True]]]


def test_in_answers_as_each_choice_compared() -> None:
    for choices, value in itertools.product(CHOICE_SETS, VALUES):
        document = {} if value is _MISSING else {"field": value}
        expected = any(_equal(value, choice) for choice in choices)
        assert matcher({"field": {"$in": choices}})(document) is expected, (choices, value)


def test_in_over_many_choices_finds_each() -> None:
    labels = [f"label-{i}" for i in range(1000)]
    keep = matcher({"label": {"$in": labels}})
    assert all(keep({"label": label}) for label in labels)
    assert not keep({"label": "label-1000"}) and not keep({})
