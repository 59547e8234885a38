"""node / nodes: batch fetch in order, authorization per type. Which types are nodes, and their opaque
IDs, without a database: tests/unit/test_node.py."""

from __future__ import annotations

from documents.roles import Role
from services.node_ids import NodeType, encode_id
from tests import factories
from tests.conftest import MakeToken, Served
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


async def test_aliased_by_id_roots_are_read_together_and_fail_alone(api: Api, served: Served, admin: str,
                                                                    viewer: str) -> None:
    """Root fields run together, so aliased `node`/`asset` lookups of one type share one read; each
    still answers, or fails, as it would alone."""
    first, second = [(await factories.value_asset(api, admin, name))["id"] for name in ("one", "two")]
    dataset = await factories.dataset(api, admin, "plain")
    token = (await api.data("ApiTokens", token=admin))["apiTokens"]["edges"][0]["node"]["id"]
    ids = {"a": first, "b": second, "missing": encode_id(NodeType.ASSET, "64b000000000000000000000"),
           "bad": "not-an-id", "other": dataset["id"], "token": token}
    fields = {"a": "node(id: $a)", "b": "asset(id: $b)", "again": "node(id: $b)", "missing": "node(id: $missing)",
              "missingAsset": "asset(id: $missing)", "bad": "node(id: $bad)", "badAsset": "asset(id: $bad)",
              "wrongType": "asset(id: $other)", "token": "node(id: $token)"}

    def query(names: list[str]) -> str:
        used = sorted({var for name in names for var in ids if f"${var})" in fields[name]})
        declared = ", ".join(f"${var}: ID!" for var in used)
        return f"query Probe({declared}) {{ {' '.join(f'{name}: {fields[name]} {{ id }}' for name in names)} }}"

    await api.data("Me", token=viewer)  # the token's lookup, remembered, is not the query's
    served.commands.clear()
    together = await api.run("Probe", ids, token=viewer, query=query(list(fields)))
    assert served.commands.tally("assets") == {"find": 1}
    assert together["data"] == {"a": {"id": first}, "b": {"id": second}, "again": {"id": second}, "missing": None,
                                "missingAsset": None, "bad": None, "badAsset": None, "wrongType": None, "token": None}
    errors = {error["path"][0]: error for error in together["errors"]}
    assert sorted(errors) == ["bad", "badAsset", "token", "wrongType"]
    assert errors["token"]["extensions"]["code"] == "FORBIDDEN"
    assert {errors[name]["extensions"]["code"] for name in ("bad", "badAsset", "wrongType")} == {"BAD_USER_INPUT"}
    for name in fields:  # as each field answers alone
        variables = {var: value for var, value in ids.items() if f"${var})" in fields[name]}
        alone = await api.run("Probe", variables, token=viewer, query=query([name]))
        assert alone["data"] == {name: together["data"][name]}
        assert [{**e, "locations": None} for e in alone.get("errors", [])] == \
            [{**e, "locations": None} for e in together.get("errors", []) if e["path"][0] == name]
