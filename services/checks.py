"""Checks and lookups every service shares: names, labels, aliases and metadata validated with
an error naming the field; a document fetched or NOT_FOUND; a time range as a filter clause."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from beanie import Document

from documents.clock import to_millis
from documents.json_value import StoredJson
from documents.patterns import literal
from services.errors import BadUserInput, Conflict, NotFound
from services.node_ids import NodeType, encode_id

MAX_LABELS = 100
MAX_LABEL_LENGTH = 200
# The lists the API returns whole rather than paged, bounded here so each stays small (README: Lists).
MAX_LINEAGE = 100  # assets one asset derives from (`derivedFrom`)
MAX_ROLES = 20  # roles of one datum
MAX_VERSION_SETS = 100  # annotation sets one dataset version holds
MAX_ALIASES = 100  # aliases naming one asset (`aliases`)
_ALIAS = re.compile(r"^[^\s/][^\s]{0,199}\Z")


# type/subtype, with parameters (`text/csv; charset=utf-8`): what a Content-Type header carries, and
# nothing that could break one (a line break, a character outside ASCII).
# Spaces and tabs only around `;` (`\s` took CR and LF), and inside quotes printable ASCII but `"` and `\`.
_MEDIA_TYPE = re.compile(r'[\w.+-]+/[\w.+-]+(?:[ \t]*;[ \t]*[\w.+-]+=(?:[\w.+-]+|"[\x20\x21\x23-\x5b\x5d-\x7e]*"))*', re.ASCII)


def valid_media_type(media_type: str) -> bool:
    """Whether `media_type` can go into a Content-Type header as it is."""
    return len(media_type) <= 200 and _MEDIA_TYPE.fullmatch(media_type) is not None


def check_media_type(media_type: str, field: str = "mediaType") -> str:
    """A media type as sent back in Content-Type on download; BAD_USER_INPUT naming `field` otherwise."""
    if not valid_media_type(media_type):
        raise BadUserInput("must look like type/subtype (parameters such as ; charset=utf-8 allowed)", field=field)
    return media_type


# Control characters (Unicode's Cc: C0, DEL and C1): a newline in a name split the log line, the
# CSV row or the export entry that named it, and a NUL cut it short where C strings carry it. Every
# name or label a client gives in a mutation is held to it through check_no_controls, the one rule:
# names (check_name), collection paths, asset labels and aliases, datum roles, and an annotation
# schema's labels (names, display names), required attributes, keypoint names, free record labels and
# sources' names and versions. What is stored already is never checked again on read; free text
# (descriptions, messages) and JSON (metadata, values, attributes) may hold any character.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def control_in(text: str) -> str | None:
    """The first control character of `text`, told as `U+000A at 5`; None if it holds none."""
    found = _CONTROL.search(text)
    return f"U+{ord(found.group()):04X} at {found.start()}" if found else None


def check_no_controls(text: str, field: str) -> str:
    """`text`, or BAD_USER_INPUT naming `field` and the first control character it holds."""
    if found := control_in(text):
        raise BadUserInput(f"must hold no control character (U+0000 to U+001F, U+007F to U+009F): {found}", field=field)
    return text


def check_name(name: str, field: str = "name") -> str:
    """A name (of an asset, an upload, a collection, a dataset, an annotation schema or set): trimmed,
    1 to 500 characters, no control character."""
    name = name.strip()
    if not name or len(name) > 500:
        raise BadUserInput("must be 1 to 500 characters", field=field)
    return check_no_controls(name, field)


def check_labels(labels: Sequence[str] | None, field: str = "labels") -> list[str]:
    given = list(labels or [])
    for i, label in enumerate(given):  # before dropping repeats: the index is the one the client sent
        if not label or len(label) > MAX_LABEL_LENGTH:
            raise BadUserInput(f"labels must be 1 to {MAX_LABEL_LENGTH} characters", field=f"{field}[{i}]")
        check_no_controls(label, f"{field}[{i}]")
    distinct = list(dict.fromkeys(given))
    if len(distinct) > MAX_LABELS:
        raise BadUserInput(f"at most {MAX_LABELS} labels", field=field)
    return distinct


def check_at_most(items: Sequence[Any], limit: int, what: str, field: str) -> None:
    """BAD_USER_INPUT naming `field` when `items` hold more than `limit` distinct entries."""
    count = len(set(items))
    if count > limit:
        raise BadUserInput(f"at most {limit} {what}, got {count}", field=field)


def check_alias(alias: str, field: str) -> str:
    check_no_controls(alias, field)  # the pattern's \s took some (a newline, a tab) but not NUL, DEL or ESC
    if not _ALIAS.match(alias):
        raise BadUserInput("an alias is 1 to 200 characters, no spaces, not starting with '/'", field=field)
    return alias


def check_aliases(aliases: Sequence[str] | None, field: str = "aliases") -> list[str]:
    given = list(aliases or [])
    for i, alias in enumerate(given):  # before dropping repeats: the index is the one the client sent
        check_alias(alias, f"{field}[{i}]")
    distinct = list(dict.fromkeys(given))
    check_at_most(distinct, MAX_ALIASES, "aliases of one asset", field)
    return distinct


def check_metadata(metadata: StoredJson, field: str = "metadata") -> StoredJson:
    if not metadata.json.startswith("{"):
        raise BadUserInput("must be a JSON object", field=field)
    return metadata


D = TypeVar("D", bound=Document)


async def get_or_not_found(model: type[D], doc_id: Any, *, field: str, what: str) -> D:
    """The document with this id, or NOT_FOUND naming `field` and the id as the API gave it."""
    doc = await model.get(doc_id)
    if doc is None:
        raise NotFound(f"no {what} {api_id(model, doc_id)}", field=field)
    return doc


def api_id(model: type[Document], doc_id: Any) -> str:
    """A document's id as the API shows it: its global id (each document class is named as its
    GraphQL type), so an error names what the client sent, not the database's id."""
    try:
        return encode_id(NodeType(model.__name__), doc_id)
    except ValueError:  # a document the API does not show by id
        return str(doc_id)


def text_contains(field: str, text: str) -> dict[str, Any]:
    """A filter for `field` containing `text` in any case, matched as typed (documents/patterns.py).
    No index serves a search inside a text: a list walks its sort's index and tests each document as
    it goes, stopping once its page is full."""
    return {field: {"$regex": literal(text), "$options": "i"}}


def text_starts_with(field: str, text: str) -> dict[str, Any]:
    """A filter for `field` starting with `text` (case-sensitive), matched as typed (documents/patterns.py)."""
    return {field: {"$regex": "^" + literal(text)}}


def time_bounds(field: str, after: datetime | None, before: datetime | None) -> list[dict[str, Any]]:
    """A filter clause for `after` <= field < `before` (either side optional), at stored precision."""
    bounds: dict[str, Any] = {}
    if after:
        bounds["$gte"] = to_millis(after)
    if before:
        bounds["$lt"] = to_millis(before)
    return [{field: bounds}] if bounds else []


HOLDERS_NAMED = 5  # a refusal names this many of each kind of holder


def refuse_if_held(what: str, held: dict[str, list[str]], remedy: str) -> None:
    """CONFLICT naming what still holds `what` (a kind of holder -> the global ids found of it, at
    most HOLDERS_NAMED + 1 each, so the message can say there are more)."""
    held = {kind: ids for kind, ids in held.items() if ids}
    if not held:
        return
    named = [gid for ids in held.values() for gid in ids[:HOLDERS_NAMED]]
    more = ", ..." if any(len(ids) > HOLDERS_NAMED for ids in held.values()) else ""
    raise Conflict(f"{what} is held by {' and '.join(sorted(held))} ({', '.join(named)}{more}); {remedy}",
                   field="id", holders=named)


MAX_CLIENT_KEY = 200  # characters of a client's key for what it sends (records, events)


def check_client_keys(keys: Sequence[str | None], where: Callable[[int], str]) -> None:
    """Refuse an empty or over-long key, or one given twice in one call (`where(i)`: the i-th item's
    path, such as `records[3]`): a client's names for the records or events it sends, which make a
    resend find what the first send stored (services/record_keys.py, services/events/keys.py)."""
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key is None:
            continue
        if not key.strip() or len(key) > MAX_CLIENT_KEY:
            raise BadUserInput(f"a key has 1 to {MAX_CLIENT_KEY} characters, not all blank", field=f"{where(i)}.key")
        if key in first:
            raise BadUserInput(f"given twice in this call (also {where(first[key])}.key)", field=f"{where(i)}.key")
        first[key] = i
