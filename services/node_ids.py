"""Node ids: the one list of node types, and the opaque global ids that name their objects.

A global id is base64url("<Type>:<raw id>") without padding. Services need them as much as the
GraphQL layer (audit events and upload answers name objects by global id), so the codec lives here,
free of GraphQL. `NodeType` is the one registry of type names: every GraphQL type that implements
Node is named by a member (a test checks the schema against it), and code says `NodeType.ASSET`
where it once spelled "Asset", so a misspelt type is an import-time error rather than a bad id.

Strawberry's own relay.GlobalID would tie services to Strawberry, and encodes with standard
base64 and padding: the ids clients and stored audit events already hold would all change.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from functools import lru_cache

from bson import ObjectId
from bson.errors import InvalidId

from services.errors import BadUserInput


class NodeType(StrEnum):
    """Every type whose objects have a global id; the value is the GraphQL type's name."""

    API_TOKEN = "ApiToken"
    ASSET = "Asset"
    ASSET_RETENTION = "AssetRetention"
    COLLECTION = "Collection"
    COLLECTION_ITEM = "CollectionItem"
    DATUM = "Datum"
    DATASET = "Dataset"
    DATASET_VERSION = "DatasetVersion"
    ANNOTATION_SCHEMA = "AnnotationSchema"
    ANNOTATION_SET = "AnnotationSet"
    ANNOTATION_RECORD = "AnnotationRecord"
    UPLOAD_SESSION = "UploadSession"
    EVENT = "Event"


def encode_id(type_name: NodeType, raw_id: object) -> str:
    """The global ID of object `raw_id` of type `type_name`."""
    # str.__add__, not an f-string: formatting a StrEnum member goes through Enum.__format__, twice as slow.
    return base64.urlsafe_b64encode((type_name + ":" + str(raw_id)).encode()).decode().rstrip("=")


# base64.urlsafe_b64decode's own steps (the alphabet mapped, then binascii's lenient decoding), without
# its wrappers' checks and copies: half the cost of telling an ID, which the audit trail does for every
# ID a batch names (resolvers/events/audit.py).
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def split_id(global_id: str, *, field: str = "id") -> tuple[str, str]:
    """(type name, raw id) of a global ID; BAD_USER_INPUT naming `field` when it is not one."""
    try:
        padded = (global_id + "=" * (-len(global_id) % 4)).encode("ascii")
        decoded = binascii.a2b_base64(padded.translate(_FROM_URLSAFE)).decode()
        type_name, raw_id = decoded.split(":", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadUserInput(f"{global_id!r} is not a Graphlake ID", field=field) from None
    if not type_name or not raw_id:
        raise BadUserInput(f"{global_id!r} is not a Graphlake ID", field=field)
    return type_name, raw_id


_NAMES = frozenset(NodeType)


def is_node_id(value: str) -> bool:
    """Whether a string is the global ID of a known type (a payload string that happens to decode is not)."""
    try:
        return split_id(value)[0] in _NAMES
    except BadUserInput:
        return False


def _article(type_name: str) -> str:
    """`an Asset`, `a Datum`: type names are English nouns in messages."""
    return f"{'an' if type_name[:1] in 'AEIOU' else 'a'} {type_name}"


def decode_id(global_id: str, type_name: NodeType, *, field: str = "id") -> str:
    """The raw id inside a global ID that must name an object of `type_name`."""
    actual, raw_id = split_id(global_id, field=field)
    if actual != type_name:
        raise BadUserInput(f"expected the ID of {_article(type_name)}, got one of {_article(actual)}", field=field)
    return raw_id


def decode_object_id(global_id: str, type_name: NodeType, *, field: str = "id") -> ObjectId:
    """The ObjectId inside a global ID of `type_name`; BAD_USER_INPUT naming `field` otherwise."""
    found = _object_id_in(global_id, type_name) if isinstance(global_id, str) else None
    if found is not None:
        return found
    decode_id(global_id, type_name, field=field)  # raises saying what is wrong, naming the field
    raise BadUserInput(f"{global_id!r} is not a Graphlake ID", field=field)


# A batch names the same objects again and again (addAnnotations: each image's asset and datum once
# per box, ten boxes an image in a COCO set): decoding each again was a tenth of the server's CPU
# in that mutation. ObjectIds are immutable, so one may be handed to every caller.
@lru_cache(maxsize=8192)
def _object_id_in(global_id: str, type_name: NodeType) -> ObjectId | None:
    """The ObjectId inside a global ID of `type_name`, or None (the caller then says why)."""
    try:
        return ObjectId(decode_id(global_id, type_name))
    except (BadUserInput, InvalidId, TypeError):
        return None


def decode_object_ids(global_ids: list[str], type_name: NodeType, *, field: str) -> list[ObjectId]:
    """Many IDs of one type, each error naming its position: `field[i]`."""
    return [decode_object_id(g, type_name, field=f"{field}[{i}]") for i, g in enumerate(global_ids)]
