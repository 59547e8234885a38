"""node / nodes: batch fetch in order, authorization per type. Which types are nodes, and their opaque
IDs, without a database: tests/unit/test_node.py."""

from __future__ import annotations

from services.node_ids import NodeType, encode_id
from tests.operations import Api


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
