"""node / nodes: batch fetch in order, authorization per type. Which types are nodes, and their opaque
IDs, without a database: tests/unit/test_node.py."""

from __future__ import annotations

from documents.roles import Role
from services.node_ids import NodeType, encode_id
from tests import factories
from tests.conftest import MakeToken
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
    error = await api.error("Node", {"id": "not-an-id"}, token=admin)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "id"} and error["path"] == ["node"]


async def test_a_malformed_id_in_nodes_fails_its_entry_only(api: Api, admin: str, viewer: str) -> None:
    real = (await factories.value_asset(api, admin))["id"]
    unknown = encode_id("Spaceship", "1")  # type: ignore[arg-type]  # well formed, but no such type
    body = await api.run("Nodes", {"ids": [real, "not-an-id", unknown, real]}, token=viewer)
    assert [n and n["id"] for n in body["data"]["nodes"]] == [real, None, None, real]
    errors = sorted(body["errors"], key=lambda e: e["path"])
    assert [e["path"] for e in errors] == [["nodes", 1], ["nodes", 2]]
    assert [e["extensions"] for e in errors] == [{"code": "BAD_USER_INPUT", "field": f"ids[{i}]"} for i in (1, 2)]
    assert "not-an-id" in errors[0]["message"]


async def test_collection_items_and_upload_sessions_are_nodes(api: Api, contributor: str, viewer: str) -> None:
    coll = await factories.collection(api, contributor)
    asset = await factories.value_asset(api, contributor)
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [
        {"assetId": asset["id"], "path": "cam1/0001.json", "split": "TRAIN"}]}}, token=contributor)
    item_id = (await api.data("Collection", {"id": coll["id"]}, token=viewer))["collection"]["items"]["edges"][0]["node"]["id"]
    item = (await api.data("Node", {"id": item_id}, token=viewer))["node"]
    assert item == {"id": item_id, "__typename": "CollectionItem", "path": "cam1/0001.json", "split": "TRAIN",
                    "collection": {"id": coll["id"]}, "asset": {"id": asset["id"]}}

    session = (await api.data("CreateUpload", {"input": {"name": "scan.bin", "sizeBytes": 3}}, token=contributor))["createUpload"]
    mine = (await api.data("Node", {"id": session["id"]}, token=contributor))["node"]
    assert mine["__typename"] == "UploadSession" and mine["status"] == "OPEN" and mine["url"]
    assert mine["asset"]["id"] == session["asset"]["id"]
    # The signed URL lets its bearer write the bytes: node() shows it only to the session's creator, as uploadSession.
    theirs = (await api.data("Node", {"id": session["id"]}, token=viewer))["node"]
    assert theirs["status"] == "OPEN" and theirs["url"] is None
    both = (await api.data("Nodes", {"ids": [session["id"], item_id]}, token=viewer))["nodes"]
    assert [(n["__typename"], n["id"]) for n in both] == [("UploadSession", session["id"]), ("CollectionItem", item_id)]


async def test_a_viewer_token_of_the_uploads_creator_gets_no_write_capability(api: Api, make_token: MakeToken) -> None:
    """The same user holding a VIEWER token beside a CONTRIBUTOR one: the session's URL and direct-write
    path let their bearer write, which a VIEWER may not, so only the token that may write sees them."""
    writer = await make_token(Role.CONTRIBUTOR, user_id="alice")
    reader = await make_token(Role.VIEWER, user_id="alice")
    session = (await api.data("CreateUpload", {"input": {"name": "scan.bin", "sizeBytes": 3}}, token=writer))["createUpload"]
    assert (await api.data("UploadSession", {"id": session["id"]}, token=writer))["uploadSession"]["url"]
    for operation, variables, field in (("UploadSession", {"id": session["id"]}, "uploadSession"),
                                        ("Node", {"id": session["id"]}, "node")):
        seen = (await api.data(operation, variables, token=reader))[field]
        assert seen["status"] == "OPEN" and seen["url"] is None and seen["parts"] is None
