"""documents/object_ids.py: ids made at once are what as many `ObjectId()` calls would make."""

from __future__ import annotations

import time

from bson import ObjectId

from documents.object_ids import new_object_ids


def _counter(oid: ObjectId) -> int:
    return int.from_bytes(oid.binary[9:], "big")


def test_ids_made_at_once_go_on_from_bsons_counter_and_bson_goes_on_after_them() -> None:
    before = ObjectId()
    made = new_object_ids(2000)
    after = ObjectId()
    assert len(set(made)) == 2000
    assert [_counter(o) for o in made] == [(_counter(before) + 1 + n) % 2**24 for n in range(2000)]
    assert _counter(after) == (_counter(before) + 2001) % 2**24
    # The process's random part and the time, as bson writes them.
    assert {o.binary[4:9] for o in made} == {before.binary[4:9]}
    assert abs(made[0].generation_time.timestamp() - time.time()) < 5
    assert new_object_ids(0) == []


def test_the_counter_wraps_as_bsons_does() -> None:
    with ObjectId._inc_lock:
        saved = ObjectId._inc
        ObjectId._inc = 2**24 - 2
    try:
        made = new_object_ids(4)
        assert [_counter(o) for o in made] == [2**24 - 2, 2**24 - 1, 0, 1]
        assert ObjectId._inc == 2
    finally:
        ObjectId._inc = saved
