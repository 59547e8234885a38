"""node / nodes without a database: every Node type can be fetched, and IDs are opaque and round-trip.
Fetching through the API: tests/test_node.py."""

from __future__ import annotations

import pytest
from graphql import GraphQLObjectType

from resolvers.node import NODE_KINDS
from resolvers.schema import build_schema
from services.errors import BadUserInput
from services.node_ids import NodeType, decode_id, encode_id, split_id


def test_every_node_type_can_be_fetched() -> None:
    schema = build_schema()._schema
    implementers = {
        t.name for t in schema.type_map.values()
        if isinstance(t, GraphQLObjectType) and any(i.name == "Node" for i in t.interfaces)
    }
    assert implementers == set(NODE_KINDS)


def test_ids_are_opaque_and_round_trip() -> None:
    gid = encode_id(NodeType.API_TOKEN, "64b000000000000000000001")
    assert "ApiToken" not in gid and ":" not in gid
    assert split_id(gid) == ("ApiToken", "64b000000000000000000001")
    assert decode_id(gid, NodeType.API_TOKEN) == "64b000000000000000000001"


def test_an_id_of_another_type_is_named_in_plain_english() -> None:
    with pytest.raises(BadUserInput, match=r"^assetId: expected the ID of an Asset, got one of a Datum$"):
        decode_id(encode_id(NodeType.DATUM, "64b000000000000000000001"), NodeType.ASSET, field="assetId")


def test_node_type_is_the_registry_of_id_bearing_types() -> None:
    """Every NodeType names a type of the schema (so an id's type part is a real type name), and every
    id-bearing type is fetchable by `node`: an ID that looks global always resolves."""
    schema = build_schema()._schema
    assert {str(t) for t in NodeType} <= set(schema.type_map)
    assert set(NODE_KINDS) == set(NodeType)


@pytest.mark.parametrize("text", ["", "not an id", "QXNzZXQ", "é", "QXNzZXQ6\x00", "Zm9v", "OmFiYw"])
def test_what_is_not_a_global_id_is_refused_naming_the_field(text: str) -> None:
    """split_id decodes with binascii directly (services/node_ids.py says why): a string that is no
    base64, or decodes to no `Type:id` (no colon, an empty side, bytes that are no UTF-8), is refused."""
    with pytest.raises(BadUserInput, match=r"^assetId: .* is not a Graphlake ID$"):
        split_id(text, field="assetId")


def test_url_safe_ids_decode_whatever_their_padding() -> None:
    """IDs are URL-safe base64 without padding: their `-` and `_` (which a raw id with `>` or `?` in
    it makes) decode, and so does an ID sent with its padding back on."""
    gid = encode_id(NodeType.ASSET, "a>?b")
    assert "-" in gid or "_" in gid
    assert split_id(gid) == ("Asset", "a>?b") == split_id(gid + "=" * (-len(gid) % 4))
