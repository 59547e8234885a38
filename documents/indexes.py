"""Indexes, and which database servers get each.

MongoDB uses every index for what it is: declared ones are all created there unless marked embedded-only.

The embedded default is Graphlake's build of FerretDB on SQLite (scripts/ferretdb). There a non-unique
index holds the SQL values of its fields, which must each hold one scalar (the server refuses an array
there), and it serves a query when the query pins a prefix of its fields to one value and sorts by the
rest. A list is then read in index order and stops after its page. Every index also costs every write,
so that server gets only what its hot reads need: the unique indexes (they enforce rules, and keep
upstream's meaning there) and the `Index`es on `On.EMBEDDED` (the default is both servers). Multikey
indexes (over arrays: labels, JSON attributes) are MongoDB's alone; on the embedded default those
filters are applied while the list is read in its sort order. Put the fields a query pins first.

An index whose first field most documents lack (an asset's owner, an event's key) may be declared
`embedded_partial`: on a build of ours that makes partial indexes (graphlake/database.py) it holds
only the documents that have that field (`partialFilterExpression: {field: {$exists: true}}`), so a
write of one without it makes no entry there (a value stored without an owner, a flag or a URI costs
FerretDB 3-7% less CPU for it: docs/performance-history.md, Session 65).
SQLite uses it only for a query that compares that field with a value (`=`, a range, `$in`), so
every read it serves must: none may sort by it, or read it for null, and rely on it. MongoDB gets
the full index, as declared.
"""

from __future__ import annotations

from enum import Flag
from typing import Any

from pymongo import IndexModel


class On(Flag):
    """The servers an index is created on."""

    MONGODB = 1
    EMBEDDED = 2
    BOTH = MONGODB | EMBEDDED


class Index(IndexModel):
    """An IndexModel that says which servers get it (see the module docstring). A plain IndexModel
    goes to MongoDB, and to the embedded default only if it is unique. `embedded_partial`: on the
    embedded default, only documents holding its first field are in it (see the module docstring)."""

    def __init__(self, keys: Any, *, name: str, on: On = On.BOTH, embedded_partial: bool = False, **kwargs: Any) -> None:
        # On the embedded default a partial index is `embedded_partial`: ensure_indexes compares the listed
        # filter with that one's, so a filter of its own was made again at every start (or, besides
        # embedded_partial, failed there with two filters).
        if "partialFilterExpression" in kwargs and (embedded_partial or on & On.EMBEDDED):
            raise ValueError(f"index {name!r}: on the embedded default a partial index is declared embedded_partial, "
                             "which makes its own partialFilterExpression (a filter of its own: on=On.MONGODB only)")
        super().__init__(keys, name=name, **kwargs)
        self.on = on
        self.embedded_partial = embedded_partial


def servers_of(index: IndexModel) -> On:
    """Where `index` belongs."""
    on = getattr(index, "on", None)
    if on is not None:
        return on
    return On.BOTH if index.document.get("unique", False) else On.MONGODB


def embedded_filter(index: IndexModel) -> dict[str, Any] | None:
    """The partialFilterExpression `index` has on the embedded default when the build makes partial
    indexes: its first field must exist, if it is declared `embedded_partial`; else none."""
    if not getattr(index, "embedded_partial", False):
        return None
    return {next(iter(index.document["key"])): {"$exists": True}}


def with_filter(index: IndexModel, partial: dict[str, Any] | None) -> IndexModel:
    """`index` as created with the partialFilterExpression `partial` (None: `index` itself)."""
    if partial is None:
        return index
    options = dict(index.document)
    keys = list(options.pop("key").items())
    return IndexModel(keys, **options, partialFilterExpression=partial)
