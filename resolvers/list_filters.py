"""The one rule for a list in a filter (`kinds`, `labelsAll`, `sha256In`, predicates, `setIds`,
`eventTypes`, ...): it names what to match, and an empty one is BAD_USER_INPUT naming the field.

Systems read an empty list either way: SQL refuses `x IN ()`, MongoDB, Hasura and Prisma match
nothing, and an "all of" list (`labelsAll`, predicates that must all hold) that is empty asks
nothing at all. This API read `kinds: []` and `labels: []` as no filter but `sha256In: []` as
matching nothing, so a client learnt what an empty list did from its results, if at all: a list
of ids computed from data that came out empty listed every record. Refused, in every filter alike,
the mistake shows at once, and leaving the field out (or null) is the one way to say "no filter".
JsonPredicate's IN and NIN already refused an empty `value`.
"""

from __future__ import annotations

from collections.abc import Sized
from functools import cache
from typing import Any

import strawberry
from strawberry.utils.str_converters import to_camel_case

from services.errors import BadUserInput

# Said in the description of every list a filter takes.
EMPTY_LIST = "An empty list is BAD_USER_INPUT naming the field: leave it out, or null, for no filter."

_LIST_FILTER = "graphlake_list_filter"  # metadata key marking a filter input's list fields


def list_filter(description: str) -> Any:
    """A filter input's list field (null by default): its description says what an empty one does,
    and refuse_empty_lists checks it."""
    return strawberry.field(default=None, description=f"{description} {EMPTY_LIST}", metadata={_LIST_FILTER: True})


def refuse_empty(values: Sized | None, field: str) -> None:
    """BAD_USER_INPUT naming `field` if `values` is an empty list (null is no filter)."""
    if values is not None and len(values) == 0:
        raise BadUserInput("is an empty list, which names nothing to match; leave it out (or null) for no filter",
                           field=field)


def refuse_empty_lists(filter: object | None, field: str) -> None:
    """refuse_empty for each list field (list_filter) of a filter input given as `field` (`filter`)."""
    if filter is None:
        return
    for name, graphql_name in _list_fields(type(filter)):
        refuse_empty(getattr(filter, name), f"{field}.{graphql_name}")


@cache
def _list_fields(cls: type) -> list[tuple[str, str]]:
    """(Python name, GraphQL name) of each list_filter field of a Strawberry input type."""
    fields = cls.__strawberry_definition__.fields  # type: ignore[attr-defined]
    return [(f.python_name, f.graphql_name or to_camel_case(f.python_name))
            for f in fields if f.metadata.get(_LIST_FILTER)]
