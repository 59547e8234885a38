"""node / nodes: opaque IDs, batch fetch in order, authorization per type."""

from __future__ import annotations

from graphql import GraphQLObjectType

from resolvers.node import NODE_KINDS
from resolvers.schema import build_schema
from services.node_ids import NodeType, decode_id, encode_id, split_id
from tests.operations import Api


def test_every_node_type_can_be_fetched() -> None:
    schema = build_schema()._schema
    implementers = {
        t.name for t in schema.type_map.values()
        if isinstance(t, GraphQLObjectType) and any(i.name == "Node" for i in t.interfaces)
    }
    assert implementers == set(NODE_KINDS)


def test_node_type_is_the_registry_of_id_bearing_types() -> None:
    """Every NodeType names a type of the schema (so an id's type part is a real type name), and
    some carry ids without being fetchable by `node` (a collection item, an upload session)."""
    schema = build_schema()._schema
    assert {str(t) for t in NodeType} <= set(schema.type_map)
    assert set(NODE_KINDS) < set(NodeType)


def test_ids_are_opaque_and_round_trip() -> None:
    gid = encode_id(NodeType.API_TOKEN, "64b000000000000000000001")
    assert "ApiToken" not in gid and ":" not in gid
    assert split_id(gid) == ("ApiToken", "64b000000000000000000001")
    assert decode_id(gid, NodeType.API_TOKEN) == "64b000000000000000000001"


async def test_node_and_nodes(api: Api, admin: str) -> None:
    tokens = (await api.data("ApiTokens", token=admin))["apiTokens"]["edges"]
    real = tokens[0]["node"]["id"]
    node = (await api.data("Node", {"id": real}, token=admin))["node"]
    assert node["__typename"] == "ApiToken" and node["id"] == real
    missing = encode_id(NodeType.API_TOKEN, "64b000000000000000000000")
    nodes = (await api.data("Nodes", {"ids": [missing, real]}, token=admin))["nodes"]
    assert nodes[0] is None and nodes[1]["id"] == real
    assert (await api.data("Node", {"id": missing}, token=admin))["node"] is None


async def test_unknown_type_is_bad_input(api: Api, admin: str) -> None:
    unknown = encode_id("Spaceship", "1")  # type: ignore[arg-type]  # no such type, on purpose
    error = await api.error("Nodes", {"ids": [unknown]}, token=admin)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "ids[0]"}
