"""Version 10: stored JSON keeps only the query views that hold something; going back writes them all.

A JSON value is stored as its exact text (`json`) beside views of its leaves that predicates query:
`attrs`, `paths`, `leaves` and `truncated` (documents/json_value/encoding.py). Since session 27 a
view is left out when empty, and annotation attributes keep no views at all (nothing queries them
by path): on the embedded FerretDB every stored field costs on each write and read. Today's code
reads either form, so forward has nothing to change. Releases before it require `attrs` and
`paths` on every stored value, and this change came without a schema version: a lake taken back
with `graphlake db downgrade` held documents its older release refused to read (an INTERNAL error
on every list that met one). Backward writes every view of every stored value again, computed from
its text as those releases computed them. It reads every document of every collection (a rare,
offline step: the server is stopped for it) and rewrites those that lack a view, a batch at a time.
Idempotent: a value with all its views is left as it is.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

VERSION = 10
SUMMARY = "stored JSON keeps only the views that hold something (going back writes them all again)"

# The shapes of this version's time, frozen here.
VIEWS = ("attrs", "paths", "truncated", "leaves")
STORED_JSON_KEYS = {"json", *VIEWS}
MAX_INDEXED_LEAVES = 1000
STATE_COLLECTIONS = ("graphlake_schema",)  # the runner's record of versions: no stored values
BATCH = 500  # documents rewritten per bulk write
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


async def forward(db: AsyncDatabase) -> None:
    return None


async def backward(db: AsyncDatabase) -> None:
    for name in sorted(await db.list_collection_names()):
        if name.startswith("system.") or name in STATE_COLLECTIONS:
            continue
        writes: list[ReplaceOne] = []
        async for document in db[name].find({}):
            if _complete(document):
                writes.append(ReplaceOne({"_id": document["_id"]}, document))
            if len(writes) >= BATCH:
                await db[name].bulk_write(writes, ordered=False)
                writes = []
        if writes:
            await db[name].bulk_write(writes, ordered=False)


def _complete(value: Any) -> bool:
    """Give every stored JSON value inside `value` (a document, in place) all its views; whether any lacked one."""
    changed = False
    if isinstance(value, dict):
        if isinstance(value.get("json"), str) and value.keys() <= STORED_JSON_KEYS:
            if all(view in value for view in VIEWS):
                return False
            try:
                value.update(_views(value["json"]))
            except ValueError:  # not JSON text: a dict of that shape that is not a stored value, left alone
                return False
            return True
        for item in value.values():
            changed = _complete(item) or changed
    elif isinstance(value, list):
        for item in value:
            changed = _complete(item) or changed
    return changed


def _views(text: str) -> dict[str, Any]:
    """The views the encoding of this version's time made of a value's text."""
    attrs: list[dict[str, Any]] = []
    paths: dict[str, None] = {}
    count = 0

    def visit(item: Any, path: str | None) -> None:
        nonlocal count
        if isinstance(item, dict | list) and path is not None:
            paths[path] = None
        if isinstance(item, dict):
            for key, inner in item.items():
                escaped = key.replace("\\", "\\\\").replace(".", "\\.")
                visit(inner, escaped if path is None else f"{path}.{escaped}")
        elif isinstance(item, list):
            for inner in item:  # elements share the array's path
                visit(inner, path)
        else:
            if path is not None:
                paths[path] = None
            count += 1
            if count <= MAX_INDEXED_LEAVES:
                attrs.append({"k": path or "", "v": _indexed(item)})

    # The standard library's parser: exact for integers of any size, as the stored text may hold. A
    # value nests at most 500 levels (encoding.MAX_DEPTH), within Python's default recursion limit.
    visit(json.loads(text), None)
    leaves: dict[str, list[Any]] = {}
    for attr in attrs:
        if attr["k"]:
            field = attr["k"].replace("%", "%25").replace(".", "%2E").replace("$", "%24").replace("\x00", "%00")
            leaves.setdefault(field, []).append(attr["v"])
    return {"attrs": attrs, "paths": list(paths), "truncated": count > MAX_INDEXED_LEAVES, "leaves": leaves}


def _indexed(value: Any) -> Any:
    """A scalar as indexed: an integer beyond 64 bits as the nearest double (BSON has none wider)."""
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64_MIN <= value <= _INT64_MAX:
        try:
            return float(value)
        except OverflowError:
            return sys.float_info.max if value > 0 else -sys.float_info.max
    return value
