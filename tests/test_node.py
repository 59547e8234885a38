"""node / nodes: opaque IDs, batch fetch in order, authorization per type."""

from __future__ import annotations

from graphql import GraphQLObjectType

from resolvers.node import NODE_KINDS
from resolvers.relay import decode_id, encode_id, split_id
from resolvers.schema import build_schema
from tests.operations import Api


def test_every_node_type_can_be_fetched() -> None:
    schema = build_schema()._schema
    implementers = {
        t.name for t in schema.type_map.values()
        if isinstance(t, GraphQLObjectType) and any(i.name == "Node" for i in t.interfaces)
    }
    assert implementers == set(NODE_KINDS)


def test_ids_are_opaque_and_round_trip() -> None:
    gid = encode_id("ApiToken", "64b000000000000000000001")
    assert "ApiToken" not in gid and ":" not in gid
    assert split_id(gid) == ("ApiToken", "64b000000000000000000001")
    assert decode_id(gid, "ApiToken") == "64b000000000000000000001"


async def test_node_and_nodes(api: Api, admin: str) -> None:
    tokens = (await api.data("ApiTokens", token=admin))["apiTokens"]["edges"]
    real = tokens[0]["node"]["id"]
    node = (await api.data("Node", {"id": real}, token=admin))["node"]
    assert node["__typename"] == "ApiToken" and node["id"] == real
    missing = encode_id("ApiToken", "64b000000000000000000000")
    nodes = (await api.data("Nodes", {"ids": [missing, real]}, token=admin))["nodes"]
    assert nodes[0] is None and nodes[1]["id"] == real
    assert (await api.data("Node", {"id": missing}, token=admin))["node"] is None


async def test_unknown_type_is_bad_input(api: Api, admin: str) -> None:
    error = await api.error("Nodes", {"ids": [encode_id("Spaceship", "1")]}, token=admin)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "ids[0]"}
