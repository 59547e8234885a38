"""Which kind of source an exported object names (version_reading.source_of): its records' when they
agree, else the least a person's, and none when a record's is not known (an old content file)."""

from __future__ import annotations

from graphlake_client.version_reading import source_of


def records(*kinds: str | None) -> list[dict[str, object]]:
    return [{"source": {"kind": kind} if kind else None} for kind in kinds]


def test_an_object_is_as_much_a_persons_as_its_least_part() -> None:
    assert source_of(records("HUMAN", "HUMAN")) == "HUMAN"
    assert source_of(records("HUMAN", "DERIVED")) == "DERIVED"
    assert source_of(records("DERIVED", "MODEL", "HUMAN")) == "MODEL"
    assert source_of(records("HUMAN", None)) is None
    assert source_of([{"source": None}]) is None and source_of([{}]) is None
