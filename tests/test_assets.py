"""Assets: values and texts that round-trip exactly, filters, ordering, aliases, lineage, pins, deletion,
and the garbage collector of unpinned assets."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from documents.asset import Alias, Asset
from documents.clock import utcnow
from documents.common import AssetStatus
from documents.event import AUDIT, Event
from graphlake.settings import Settings
from resolvers.context import AppState
from services import assets as assets_service
from services.assets import collect_unpinned
from tests import factories
from tests.conftest import Served
from tests.operations import Api, object_id

HOSTILE = {
    "nested": [[1, [2, [3, []]]], [], [[]]],
    "a.b": {"$where": "x", "$": None, "": "empty key", "..": [".", "$"]},
    "unicode": "снег ☃ \u0000 nul",
    "numbers": [0, -0.0, 1.5e308, -1e-308, 2**63 - 1, -(2**63), 123456789012345678901234567890],
    "deep": {"l1": {"l2": {"l3": {"l4": {"l5": [{"x": [1, {"y": [None]}]}]}}}}},
    "bools": [True, False, None],
}


@pytest.mark.parametrize("value", [HOSTILE, [[1, 2], [3, [4]]], "just a string", 42, None, 3.25, [], {}, True])
async def test_values_round_trip_exactly(api: Api, contributor: str, value: object) -> None:
    stored = await factories.value_asset(api, contributor, value=value, metadata={"$weird.key": [[1]], "ok": 1})
    fetched = (await api.data("Asset", {"id": stored["id"]}, token=contributor))["asset"]
    for asset in (stored, fetched):
        assert json.dumps(asset["value"], sort_keys=True) == json.dumps(value, sort_keys=True)
        assert asset["metadata"] == {"$weird.key": [[1]], "ok": 1}
        assert asset["kind"] == "VALUE" and asset["status"] == "ACTIVE" and asset["mediaType"] == "application/json"
    assert stored["sizeBytes"] > 0 and len(stored["sha256"]) == 64


async def test_text_assets(api: Api, contributor: str) -> None:
    text = "line one\nline two ✓"
    asset = (await api.data("StoreText", {"input": {"name": "notes.md", "text": text, "mediaType": "text/markdown",
                                                    "labels": ["notes"], "owner": {"userId": "ann"}}},
                            token=contributor))["storeText"]
    assert asset["text"] == text and asset["kind"] == "TEXT" and asset["mediaType"] == "text/markdown"
    assert asset["sizeBytes"] == len(text.encode()) and asset["owner"]["userId"] == "ann"
    assert asset["createdBy"].startswith("token:")


async def test_a_text_media_type_is_one_a_content_type_header_can_carry(api: Api, contributor: str) -> None:
    """storeText took any string: `text/html\r\nX-Evil: 1` was stored, and its content route then broke
    the connection (uvicorn refused the header) with a traceback in the log."""
    for bad in ("text/html\r\nX-Evil: 1", "text", "текст/plain", "text/plain; charset",
                "text/html\r\n;X-Evil=1", "text/plain\n;a=b", 'text/plain; charset="€"'):  # no `:` needed to break a header
        error = await api.error("StoreText", {"input": {"name": "x", "text": "y", "mediaType": bad}}, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "mediaType"}, (bad, error)  # as its other fields
    fine = await api.data("StoreText", {"input": {"name": "t.csv", "text": "a,b", "mediaType": "text/csv; charset=utf-8"}},
                          token=contributor)
    assert fine["storeText"]["mediaType"] == "text/csv; charset=utf-8"
    upload = await api.data("CreateUpload", {"input": {"name": "t.csv", "sizeBytes": 3, "mediaType": 'text/csv; header="present"'}},
                            token=contributor)
    # Taken as given, quoted parameter and all: the header the upload's PUT is to carry.
    assert upload["createUpload"]["headers"]["Content-Type"] == 'text/csv; header="present"', upload
    refused = await api.error("CreateUpload", {"input": {"name": "t.csv", "sizeBytes": 3, "mediaType": "a/b\nc: d"}},
                              token=contributor)
    assert refused["extensions"] == {"code": "BAD_USER_INPUT", "field": "mediaType"}


async def test_size_limits_refuse_and_store_nothing(api: Api, contributor: str, settings: Settings) -> None:
    big_value = "x" * settings.max_value_bytes
    error = await api.error("StoreValue", {"input": {"name": "big", "value": big_value}}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "value"}
    assert "limit" in error["message"]
    limit = settings.max_text_bytes
    settings.max_text_bytes = 10
    try:
        error = await api.error("StoreText", {"input": {"name": "long", "text": "x" * 11}}, token=contributor)
    finally:
        settings.max_text_bytes = limit
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "text"}
    assert await Asset.count() == 0


async def test_bad_input_names_the_field(api: Api, contributor: str) -> None:
    cases = [
        ({"name": "", "value": 1}, "name"),
        ({"name": "x", "value": 1, "metadata": [1, 2]}, "metadata"),
        ({"name": "x", "value": 1, "labels": [""]}, "labels[0]"),
        ({"name": "x", "value": 1, "aliases": ["has space"]}, "aliases[0]"),
        ({"name": "x", "value": 1, "derivedFrom": ["bm90LWFuLWlk"]}, "derivedFrom[0]"),
    ]
    for fields, field in cases:
        error = await api.error("StoreValue", {"input": fields}, token=contributor)
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["field"] == field, (fields, error)
    assert await Asset.count() == 0


async def seed_for_filters(api: Api, token: str) -> dict[str, str]:
    specs = {
        "hot": dict(value={"temperature": 31.5, "unit": "C", "tags": ["a", "b"]}, labels=["sensor", "lab1"],
                    metadata={"run": {"id": 7}, "ok": True}, owner={"userId": "ann", "experimentId": "e1"},
                    dataTimestamp="2026-01-02T00:00:00Z"),
        "cold": dict(value={"temperature": 4, "unit": "C", "tags": ["b"]}, labels=["sensor"],
                     metadata={"run": {"id": 8}, "ok": False}, owner={"userId": "bob"},
                     dataTimestamp="2026-01-01T00:00:00Z"),
        "note": dict(value="free text", labels=["lab1"], metadata={"comment": "nothing to see"}),
    }
    ids = {}
    for name, fields in specs.items():
        ids[name] = (await factories.value_asset(api, token, name=name, **fields))["id"]
    ids["text"] = (await api.data("StoreText", {"input": {"name": "readme", "text": "hi", "mediaType": "text/plain"}},
                                  token=token))["storeText"]["id"]
    return ids


async def names(api: Api, token: str, filter: dict, order: dict | None = None) -> list[str]:
    data = await api.data("Assets", {"filter": filter, "orderBy": order, "first": 50}, token=token)
    return [edge["node"]["name"] for edge in data["assets"]["edges"]]


async def test_every_filter_field(api: Api, contributor: str) -> None:
    ids = await seed_for_filters(api, contributor)
    hot = (await api.data("Asset", {"id": ids["hot"]}, token=contributor))["asset"]
    coll = await factories.collection(api, contributor)
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [{"assetId": ids["cold"]}]}},
                   token=contributor)
    expectations = [
        ({"kinds": ["TEXT"]}, {"readme"}),
        ({"labelsAll": ["sensor", "lab1"]}, {"hot"}),
        ({"labelsAny": ["lab1"]}, {"hot", "note"}),
        ({"mediaTypePrefix": "text/"}, {"readme"}),
        ({"nameContains": "OL"}, {"cold"}),
        ({"sha256": hot["sha256"]}, {"hot"}),
        ({"sha256In": [hot["sha256"].upper(), "0" * 64], "kinds": ["VALUE"]}, {"hot"}),
        ({"sha256In": [hot["sha256"], hot["sha256"]], "kinds": ["TEXT"]}, set()),
        ({"owner": {"userId": "ann", "experimentId": "e1"}}, {"hot"}),
        ({"dataTimestampAfter": "2026-01-01T12:00:00Z"}, {"hot"}),
        ({"dataTimestampBefore": "2026-01-01T12:00:00Z"}, {"cold"}),
        ({"createdAfter": "2000-01-01T00:00:00Z", "kinds": ["VALUE"]}, {"hot", "cold", "note"}),
        ({"createdBefore": "2000-01-01T00:00:00Z"}, set()),
        ({"collectionId": coll["id"]}, {"cold"}),
        ({"value": [{"path": "temperature", "op": "GT", "value": 20}]}, {"hot"}),
        ({"value": [{"path": "temperature", "op": "LTE", "value": 4}]}, {"cold"}),
        ({"value": [{"path": "unit", "op": "EQ", "value": "C"}, {"path": "tags", "op": "CONTAINS", "value": "a"}]}, {"hot"}),
        ({"value": [{"path": "tags", "op": "IN", "value": ["b", "z"]}]}, {"hot", "cold"}),
        ({"metadata": [{"path": "run.id", "op": "EQ", "value": 8}]}, {"cold"}),
        ({"metadata": [{"path": "ok", "op": "EQ", "value": True}]}, {"hot"}),
        ({"metadata": [{"path": "comment", "op": "EXISTS", "value": True}]}, {"note"}),
        ({"metadata": [{"path": "comment", "op": "REGEX", "value": "^nothing"}]}, {"note"}),
        ({"metadata": [{"path": "run.id", "op": "NE", "value": 7}], "kinds": ["VALUE"]}, {"cold", "note"}),
    ]
    for filter, expected in expectations:
        assert set(await names(api, contributor, filter)) == expected, filter


async def test_value_predicates_that_a_missing_path_meets_match_value_assets_only(api: Api, contributor: str) -> None:
    """"Predicates on a VALUE asset's `value` (other kinds never match)": NE, NIN and EXISTS false hold
    where the path is missing, and a TEXT or FILE asset has no `value` at all, so `value("unit") != "K"`
    listed every text and file of the lake too, and counted them."""
    await seed_for_filters(api, contributor)
    await factories.image_asset(api, contributor, "img.png")
    for predicate, expected in (({"path": "unit", "op": "NE", "value": "K"}, {"hot", "cold", "note"}),
                                ({"path": "unit", "op": "NIN", "value": ["C"]}, {"note"}),
                                ({"path": "unit", "op": "EXISTS", "value": False}, {"note"})):
        for kinds in (None, ["VALUE", "TEXT"]):
            page = (await api.data("Assets", {"filter": {"value": [predicate], "kinds": kinds}, "first": 50},
                                   token=contributor))["assets"]
            assert {edge["node"]["name"] for edge in page["edges"]} == expected, (predicate, kinds)
            assert page["totalCount"] == len(expected)
    # metadata is every asset's: there a missing path is any kind's
    assert "readme" in await names(api, contributor, {"metadata": [{"path": "unit", "op": "NE", "value": "K"}]})
    assert await names(api, contributor, {"value": [{"path": "unit", "op": "NE", "value": "K"}], "kinds": ["TEXT"]}) == []


async def test_an_empty_digest_collection_id_or_role_is_no_wildcard(api: Api, contributor: str) -> None:
    """`sha256: ""`, `collectionId: ""` and `datums(role: "")` were read as no filter, so "does the lake
    hold this digest?" with a digest left empty answered with every asset, a collection's list with the
    whole lake's, and the datums with a role of no name with every datum."""
    await seed_for_filters(api, contributor)
    page = (await api.data("Assets", {"filter": {"sha256": ""}}, token=contributor))["assets"]
    assert page["edges"] == [] and page["totalCount"] == 0
    error = await api.error("Assets", {"filter": {"collectionId": ""}}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "filter.collectionId"}
    await factories.datums(api, contributor, 2, roles=("image",))
    assert len((await api.data("Datums", {"role": "image"}, token=contributor))["datums"]["edges"]) == 2
    assert (await api.data("Datums", {"role": ""}, token=contributor))["datums"]["edges"] == []  # had listed both


async def test_searches_match_what_was_typed_nul_and_pattern_characters_included(api: Api, contributor: str) -> None:
    """A search is matched as typed (documents/patterns.py): a NUL in it (which MongoDB refuses in a
    pattern, unescaped) and characters a pattern would read are the characters themselves."""
    for name in ("nul-name", "nul0name", "dot.name", "dotxname"):
        await api.data("StoreValue", {"input": {"name": name, "value": 1}}, token=contributor)
    # A name is refused a NUL now (services/checks.py), but one stored before still is searched for.
    await Asset.get_pymongo_collection().update_one({"name": "nul-name"}, {"$set": {"name": "nul\x00name"}})
    assert set(await names(api, contributor, {"nameContains": "l\x00n"})) == {"nul\x00name"}
    assert set(await names(api, contributor, {"nameContains": "t.n"})) == {"dot.name"}
    assert await names(api, contributor, {"mediaTypePrefix": "application/\x00"}) == []
    assert set(await names(api, contributor, {"mediaTypePrefix": "application/json", "nameContains": "NUL"})) == {
        "nul\x00name", "nul0name"}


async def test_a_lookup_by_digests_is_bounded(api: Api, viewer: str) -> None:
    digests = [f"{n:064x}" for n in range(501)]
    error = await api.error("Assets", {"filter": {"sha256In": digests}}, token=viewer)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "filter.sha256In"}
    assert "at most 500 digests, got 501" in error["message"]
    found = await api.data("Assets", {"filter": {"sha256In": digests[:500]}}, token=viewer)  # at the bound: asked
    assert found["assets"]["edges"] == []


async def test_bad_predicates_name_the_predicate(api: Api, viewer: str) -> None:
    error = await api.error("Assets", {"filter": {"metadata": [{"path": "a", "op": "EQ", "value": 1},
                                                               {"path": "b", "op": "GT", "value": {"x": 1}}]}}, token=viewer)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "filter.metadata[1]"}
    error = await api.error("Assets", {"filter": {"value": [{"path": "", "op": "EXISTS"}]}}, token=viewer)
    assert error["extensions"]["field"] == "filter.value[0]"


async def test_ordering_and_keyset_pages(api: Api, contributor: str) -> None:
    for name, size, ts in [("b", 3, None), ("a", 1, "2026-03-01T00:00:00Z"), ("c", 2, "2026-02-01T00:00:00Z"), ("d", 2, None)]:
        await factories.value_asset(api, contributor, name=name, value="x" * size, dataTimestamp=ts)
    assert await names(api, contributor, {}, {"field": "NAME", "direction": "ASC"}) == ["a", "b", "c", "d"]
    assert await names(api, contributor, {}, {"field": "NAME", "direction": "DESC"}) == ["d", "c", "b", "a"]
    by_size = await names(api, contributor, {}, {"field": "SIZE", "direction": "ASC"})
    assert by_size[0] == "a" and by_size[-1] == "b" and set(by_size[1:3]) == {"c", "d"}
    assert await names(api, contributor, {}) == ["d", "c", "a", "b"]  # newest first by default
    for direction in ("ASC", "DESC"):  # null timestamps page through in both directions without loss
        seen, after = [], None
        while True:
            page = (await api.data("Assets", {"orderBy": {"field": "DATA_TIMESTAMP", "direction": direction},
                                              "first": 1, "after": after}, token=contributor))["assets"]
            seen += [e["node"]["name"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert sorted(seen) == ["a", "b", "c", "d"] and len(seen) == 4
        assert seen.index("c") < seen.index("a") if direction == "ASC" else seen.index("a") < seen.index("c")


async def test_aliases_are_unique_across_the_lake(api: Api, contributor: str) -> None:
    first = await factories.value_asset(api, contributor, name="one", aliases=["run-7/best"])
    second = await factories.value_asset(api, contributor, name="two")
    assert first["aliases"] == ["run-7/best"]
    error = await api.error("AddAliases", {"assetId": second["id"], "aliases": ["fresh", "run-7/best"]}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "aliases"} and "run-7/best" in error["message"]
    assert await Alias.find({"_id": "fresh"}).count() == 0  # nothing half-written
    error = await api.error("StoreValue", {"input": {"name": "three", "value": 3, "aliases": ["run-7/best"]}}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT"
    assert await Asset.count() == 2
    found = (await api.data("AssetByAlias", {"alias": "run-7/best"}, token=contributor))["assetByAlias"]
    assert found["id"] == first["id"]
    await api.data("AddAliases", {"assetId": first["id"], "aliases": ["run-7/best", "extra"]}, token=contributor)  # idempotent
    await api.data("RemoveAliases", {"assetId": first["id"], "aliases": ["run-7/best"]}, token=contributor)
    assert (await api.data("AssetByAlias", {"alias": "run-7/best"}, token=contributor))["assetByAlias"] is None
    moved = (await api.data("AddAliases", {"assetId": second["id"], "aliases": ["run-7/best"]}, token=contributor))
    assert moved["addAliases"]["aliases"] == ["run-7/best"]
    error = await api.error("AddAliases", {"assetId": second["id"], "aliases": ["best\n"]}, token=contributor)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"  # no whitespace, a last newline neither


async def test_an_asset_holds_at_most_100_aliases(api: Api, contributor: str) -> None:
    """`aliases` is a plain list: bounded when written, so a read of it is bounded too (README: Lists)."""
    asset = await factories.value_asset(api, contributor, name="many", aliases=[f"a{i:03}" for i in range(60)])
    error = await api.error("StoreValue", {"input": {"name": "x", "value": 1, "aliases": [f"b{i}" for i in range(101)]}},
                            token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "aliases"} and "at most 100" in error["message"]
    error = await api.error("AddAliases", {"assetId": asset["id"], "aliases": [f"a{i:03}" for i in range(50, 101)]},
                            token=contributor)  # 10 of them held, 41 new: 101
    assert error["extensions"] == {"code": "CONFLICT", "field": "aliases"} and "holds 60" in error["message"]
    assert await Alias.find({"asset_id": object_id(asset["id"])}).count() == 60  # nothing written
    await api.data("AddAliases", {"assetId": asset["id"], "aliases": [f"a{i:03}" for i in range(50, 100)]}, token=contributor)
    error = await api.error("MoveAlias", {"alias": "one-more", "assetId": asset["id"]}, token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "assetId"}
    await api.data("MoveAlias", {"alias": "a000", "assetId": asset["id"]}, token=contributor)  # its own already: room enough
    read = (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]["aliases"]
    assert read == [f"a{i:03}" for i in range(100)]


async def test_move_alias_takes_a_name_over_in_one_write(api: Api, contributor: str) -> None:
    first = await factories.value_asset(api, contributor, name="model-v1")
    second = await factories.value_asset(api, contributor, name="model-v2")
    third = await factories.value_asset(api, contributor, name="model-v3")

    async def named() -> str | None:
        found = (await api.data("AssetByAlias", {"alias": "models/best"}, token=contributor))["assetByAlias"]
        return found and found["id"]

    created = await api.data("MoveAlias", {"alias": "models/best", "assetId": first["id"]}, token=contributor)
    assert created["moveAlias"]["aliases"] == ["models/best"] and await named() == first["id"]
    await api.data("MoveAlias", {"alias": "models/best", "assetId": second["id"]}, token=contributor)  # taken over
    assert await named() == second["id"]
    assert await Alias.find({"_id": "models/best"}).count() == 1
    # Compare-and-set: a writer that read model-v1 as the best cannot replace model-v2 unnoticed.
    error = await api.error("MoveAlias", {"alias": "models/best", "assetId": third["id"], "expectedAssetId": first["id"]},
                            token=contributor)
    assert error["extensions"] == {"code": "CONFLICT", "field": "expectedAssetId"}
    assert await named() == second["id"]
    await api.data("MoveAlias", {"alias": "models/best", "assetId": third["id"], "expectedAssetId": second["id"]},
                   token=contributor)
    assert await named() == third["id"]
    error = await api.error("MoveAlias", {"alias": "nobody/has", "assetId": third["id"], "expectedAssetId": second["id"]},
                            token=contributor)
    assert error["extensions"]["code"] == "CONFLICT" and await Alias.find({"_id": "nobody/has"}).count() == 0
    error = await api.error("MoveAlias", {"alias": "", "assetId": third["id"]}, token=contributor)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_update_and_lineage(api: Api, contributor: str) -> None:
    raw = await factories.value_asset(api, contributor, name="raw", labels=["a"])
    clean = await factories.value_asset(api, contributor, name="clean", derivedFrom=[raw["id"]])
    assert [d["id"] for d in clean["derivedFrom"]] == [raw["id"]]
    updated = (await api.data("UpdateAsset", {"input": {"id": raw["id"], "name": "raw-v2", "labels": ["b"],
                                                        "metadata": {"k": 1}, "description": None}},
                              token=contributor))["updateAsset"]
    assert updated["name"] == "raw-v2" and updated["labels"] == ["b"] and updated["metadata"] == {"k": 1}
    # Moved on, even within the millisecond it was made in: expectedUpdatedAt compares it (compare-and-set).
    assert updated["updatedAt"] > raw["updatedAt"], (updated["updatedAt"], raw["updatedAt"])
    assert updated["value"] == raw["value"]  # untouched fields stay
    error = await api.error("UpdateAsset", {"input": {"id": raw["id"], "derivedFrom": [raw["id"]]}}, token=contributor)
    assert error["extensions"]["field"] == "derivedFrom[0]"
    other = await factories.value_asset(api, contributor, name="other")
    error = await api.error("UpdateAsset", {"input": {"id": raw["id"], "derivedFrom": [other["id"], raw["id"]]}},
                            token=contributor)
    assert error["extensions"]["field"] == "derivedFrom[1]"
    error = await api.error("UpdateAsset", {"input": {"id": raw["id"], "name": "  "}}, token=contributor)
    assert error["extensions"]["field"] == "name"
    assert (await api.data("Asset", {"id": raw["id"]}, token=contributor))["asset"]["name"] == "raw-v2"


async def test_a_lineage_cannot_go_round_in_a_cycle(api: Api, contributor: str) -> None:
    """updateAsset refused an asset deriving from itself, but not from one derived from it: raw
    naming `clean` (made from raw) or `report` (made from clean) was stored, and a client walking
    the lineage upward went round for ever. BAD_USER_INPUT names the entry, and nothing is written."""
    raw = await factories.value_asset(api, contributor, name="raw")
    other = await factories.value_asset(api, contributor, name="other")
    clean = await factories.value_asset(api, contributor, name="clean", derivedFrom=[raw["id"]])
    report = await factories.value_asset(api, contributor, name="report", derivedFrom=[other["id"], clean["id"]])
    await api.data("DeleteAsset", {"id": clean["id"]}, token=contributor)  # a DELETED asset keeps its lineage
    for sources, field in (([clean["id"]], "derivedFrom[0]"), ([other["id"], report["id"]], "derivedFrom[1]")):
        error = await api.error("UpdateAsset", {"input": {"id": raw["id"], "derivedFrom": sources}}, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, error
        assert sources[-1] in error["message"]
    assert (await api.data("Asset", {"id": raw["id"]}, token=contributor))["asset"]["derivedFrom"] == []
    assert (await api.data("AssetReferrers", {"id": report["id"], "first": 5}, token=contributor)
            )["asset"]["derivedAssets"]["totalCount"] == 0  # no link was written
    updated = await api.data("UpdateAsset", {"input": {"id": report["id"], "derivedFrom": [raw["id"], other["id"]]}},
                             token=contributor)  # a lineage that goes nowhere near itself is taken
    assert [a["id"] for a in updated["updateAsset"]["derivedFrom"]] == [raw["id"], other["id"]]


async def test_a_forced_delete_names_the_first_100_holders_it_broke_and_counts_them_all(
        api: Api, contributor: str, admin: str, state: AppState) -> None:
    """`broken` named every pin's holder: an asset a dataset versions every night is pinned by hundreds
    of versions, and every list is bounded. It names the first 100 now, in the order they pinned it,
    and `brokenCount` counts them all, the datum left pointing at it too."""
    asset = await factories.value_asset(api, contributor, name="popular")
    coll = await factories.collection(api, contributor)
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [{"assetId": asset["id"]}]}},
                   token=contributor)
    pins = [(await api.data("PinAsset", {"assetId": asset["id"]}, token=contributor))["pinAsset"]["id"]
            for _ in range(102)]
    datum = (await api.data("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": asset["id"]}]}]},
                            token=contributor))["createDatums"][0]
    forced = (await api.data("DeleteAsset", {"id": asset["id"], "force": True}, token=admin))["deleteAsset"]
    assert forced["broken"] == [coll["id"], *pins[:99]]
    assert forced["brokenCount"] == 1 + 102 + 1  # the collection, the pins and the datum
    assert datum["id"] not in forced["broken"]
    unforced = await factories.value_asset(api, contributor, name="loose")
    plain = (await api.data("DeleteAsset", {"id": unforced["id"]}, token=contributor))["deleteAsset"]
    assert plain["broken"] == [] and plain["brokenCount"] == 0


async def test_delete_respects_pins_unless_an_admin_forces(api: Api, contributor: str, admin: str, state: AppState) -> None:
    asset = await factories.value_asset(api, contributor, name="keep", aliases=["kept"])
    pin = (await api.data("PinAsset", {"assetId": asset["id"]}, token=contributor))["pinAsset"]
    assert pin["ownerType"] == "MANUAL_PIN" and pin["asset"]["id"] == asset["id"]
    error = await api.error("DeleteAsset", {"id": asset["id"]}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT" and "force" in error["message"]
    assert error["extensions"]["holders"] == [pin["id"]] and pin["id"] in error["message"]  # names what holds it
    assert (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]["status"] == "ACTIVE"

    await api.data("UnpinAsset", {"retentionId": pin["id"]}, token=contributor)
    assert (await Asset.get(object_id(asset["id"]))).unpinned_at is not None  # flagged for garbage collection
    again_unpinned = await api.data("UnpinAsset", {"retentionId": pin["id"]}, token=contributor)  # a retry: done
    assert again_unpinned["unpinAsset"] == {"id": pin["id"], "deleted": True}
    again = (await api.data("PinAsset", {"assetId": asset["id"]}, token=contributor))["pinAsset"]
    refused = await api.error("DeleteAsset", {"id": asset["id"], "force": True}, token=contributor)
    assert refused["extensions"]["code"] == "FORBIDDEN"  # force is for an ADMIN
    forced = (await api.data("DeleteAsset", {"id": asset["id"], "force": True}, token=admin))["deleteAsset"]
    assert forced["deleted"] and forced["broken"] == [again["id"]]
    await state.feed.settled()  # read from the database, not through `events`, which waits for it itself
    audits = [e.data.decode() for e in await Event.find({"event_type": AUDIT}).to_list()]
    [deleted] = [a for a in audits if a.get("mutation") == "deleteAsset" and a["ids"][0] == asset["id"]]
    assert again["id"] in deleted["ids"]  # the audit trail says what the forced delete broke
    gone = (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]
    assert gone["status"] == "DELETED" and gone["aliases"] == []
    assert await names(api, contributor, {}) == []
    assert await names(api, contributor, {"statuses": ["DELETED"]}) == ["keep"]


async def test_pinned_by_collection_cannot_be_deleted(api: Api, contributor: str) -> None:
    asset = await factories.value_asset(api, contributor)
    coll = await factories.collection(api, contributor)
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [{"assetId": asset["id"]}]}},
                   token=contributor)
    error = await api.error("DeleteAsset", {"id": asset["id"]}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT" and "COLLECTION" in error["message"]
    error = await api.error("UnpinAsset", {"retentionId": (await api.data("Asset", {"id": asset["id"]}, token=contributor))
                                           ["asset"]["retentions"][0]["id"]}, token=contributor)
    assert error["extensions"]["code"] == "CONFLICT"


async def test_an_assets_pins_page_through_them_all(api: Api, contributor: str) -> None:
    """`pins` pages through what `retentions` lists (at most a page of): oldest first, with a count."""
    asset = await factories.value_asset(api, contributor)
    for i in range(4):
        coll = await factories.collection(api, contributor, f"holder-{i}")
        await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [{"assetId": asset["id"]}]}},
                       token=contributor)
    manual = (await api.data("PinAsset", {"assetId": asset["id"]}, token=contributor))["pinAsset"]
    listed = (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]["retentions"]
    paged, after, counts = [], None, set()
    while True:
        pins = (await api.data("AssetPins", {"id": asset["id"], "first": 2, "after": after}, token=contributor))["asset"]["pins"]
        counts.add(pins["totalCount"])
        paged += [edge["node"] for edge in pins["edges"]]
        if not pins["pageInfo"]["hasNextPage"]:
            break
        after = pins["pageInfo"]["endCursor"]
    assert paged == listed and len(paged) == 5 and counts == {5}
    assert [p["ownerType"] for p in paged] == ["COLLECTION"] * 4 + ["MANUAL_PIN"] and paged[-1]["id"] == manual["id"]


async def test_garbage_collector_deletes_long_unpinned_assets(api: Api, contributor: str, state: AppState,
                                                             settings: Settings, tmp_path: Path) -> None:
    coll = await factories.collection(api, contributor, "scratch")
    old_value = await factories.value_asset(api, contributor, name="old-value")
    recent = await factories.value_asset(api, contributor, name="recent")
    never_pinned = await factories.value_asset(api, contributor, name="loose")
    data = b"bytes to reclaim"
    session = (await api.data("CreateUpload", {"input": {"name": "old.bin", "sizeBytes": len(data), "mount": "local"}},
                              token=contributor))["createUpload"]
    async with httpx.AsyncClient() as http:
        await http.put(session["url"], content=data, headers=session["headers"])
    old_file = (await api.data("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor))["completeUpload"]
    items = [{"assetId": a["id"]} for a in (old_value, recent, old_file)]
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": items}}, token=contributor)
    await api.data("DeleteCollection", {"id": coll["id"]}, token=contributor)  # all three unpinned now
    assert (await api.data("DeleteCollection", {"id": coll["id"]}, token=contributor))["deleteCollection"]["deleted"]
    long_ago = utcnow() - timedelta(days=10)
    await Asset.get_pymongo_collection().update_many(
        {"_id": {"$in": [object_id(old_value["id"]), object_id(old_file["id"])]}}, {"$set": {"unpinned_at": long_ago}})

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")},
           "GRAPHLAKE_MONGODB_URL": settings.mongodb_url.get_secret_value(), "GRAPHLAKE_DATABASE": settings.database,
           "GRAPHLAKE_DATA_DIR": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "graphlake", "assets", "gc", "--older-than", "7", "--dry-run", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err
    report = (out + err).decode()
    assert "would delete 2 unpinned asset(s)" in report and "old-value" in report and "old.bin" in report
    assert "recent" not in report and "loose" not in report

    collected = await collect_unpinned(timedelta(days=7), state.stores)
    assert sorted(a.name for a in collected) == ["old-value", "old.bin"]
    statuses = {a["name"]: a["status"] for a in [
        (await api.data("Asset", {"id": x["id"]}, token=contributor))["asset"] for x in (old_value, recent, never_pinned, old_file)]}
    assert statuses == {"old-value": "DELETED", "old.bin": "DELETED", "recent": "ACTIVE", "loose": "ACTIVE"}
    assert await state.stores["local"].stat(old_file["storage"]["key"]) is None  # the bytes are reclaimed
    assert await collect_unpinned(timedelta(days=7), state.stores) == []  # nothing left to do


async def test_the_garbage_collector_reads_and_deletes_a_round_at_a_time(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """Candidates are read GC_BATCH at a time in `_id` order, each round deleted (or, dry, listed)
    before the next is read: they were all read into memory first."""
    monkeypatch.setattr(assets_service, "GC_BATCH", 2)
    assets = [await factories.value_asset(api, contributor, name=f"r{i}") for i in range(5)]
    ids = [object_id(a["id"]) for a in assets]
    await Asset.get_pymongo_collection().update_many({"_id": {"$in": ids}},
                                                     {"$set": {"unpinned_at": utcnow() - timedelta(days=10)}})
    dry = [[a.id for a in r] async for r in assets_service.unpinned_rounds(timedelta(days=7), state.stores, dry_run=True)]
    assert dry == [sorted(ids)[:2], sorted(ids)[2:4], sorted(ids)[4:]]
    rounds = []
    async for deleted in assets_service.unpinned_rounds(timedelta(days=7), state.stores):
        rounds.append(sorted(a.id for a in deleted))
        left = await Asset.get_pymongo_collection().count_documents({"_id": {"$in": ids}, "status": "DELETED"})
        assert left == sum(map(len, rounds))  # this round deleted before the next is read
    assert rounds == dry


async def test_the_garbage_collector_costs_the_same_commands_for_3_or_30_assets(
        api: Api, contributor: str, state: AppState, served: Served) -> None:
    """It deletes in batches, not one asset (and its aliases) after another."""
    async def collect(count: int) -> list[str]:
        assets = [await factories.value_asset(api, contributor, name=f"v{i}", aliases=[f"gc-{count}-{i}"])
                  for i in range(count)]
        ids = [object_id(a["id"]) for a in assets]
        await Asset.get_pymongo_collection().update_many(
            {"_id": {"$in": ids}}, {"$set": {"unpinned_at": utcnow() - timedelta(days=10)}})
        served.commands.clear()
        collected = await collect_unpinned(timedelta(days=7), state.stores)
        commands = list(served.commands.commands)
        assert sorted(a.id for a in collected) == sorted(ids)
        assert {a.status for a in await Asset.find({"_id": {"$in": ids}}).to_list()} == {AssetStatus.DELETED}
        assert await Alias.find({"asset_id": {"$in": ids}}).count() == 0  # the names are free again
        return commands

    few, many = await collect(3), await collect(30)
    assert few == many, (few, many)
    # 6, and one per kind of use (datums, annotated assets, masks: asset_users.py) before the flip and again
    # after it (with the pins), the look again that catches a datum or pin made meanwhile; and one for
    # the collection items that hold an asset whose pin a removal racing an add took (assets._in_collections);
    # and one for the flags, cleared last (a round cut short before is finished by a later one)
    assert len(many) <= 15, many


async def test_a_delete_the_store_fails_still_answers_and_is_audited(api: Api, contributor: str, served: Served,
                                                                     state: AppState, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The asset is DELETED before its bytes go: a store that fails then leaves the bytes to the
    reconciler's sweep, and the delete answers as done, audited. It answered INTERNAL, unaudited,
    and a retry found the asset already gone."""
    from graphlake_client import Client, ResumeState

    data = tmp_path / "f.bin"
    data.write_bytes(os.urandom(1000))
    async with Client(served.base_url, contributor, resume=ResumeState(tmp_path / "resume.json")) as lake:
        uploaded = await lake.upload_file(data, mount="local")

    async def broken(key: str) -> None:
        raise OSError("the disk went away")

    monkeypatch.setattr(state.stores["local"], "delete", broken)
    deleted = await api.data("DeleteAsset", {"id": uploaded["id"]}, token=contributor)
    assert deleted["deleteAsset"]["deleted"] is True
    await state.feed.settled()
    audits = [json.loads(e["data"]["json"]).get("mutation") async for e in state.db.events.find({"event_type": "AUDIT"})]
    assert "deleteAsset" in audits
    swept = await state.db.upload_sessions.find_one({"asset_id": object_id(uploaded["id"])})
    assert swept["sweep_due"] is True  # the reconciler deletes the bytes later


async def test_a_malformed_alias_is_named_where_the_client_sent_it(api: Api, contributor: str) -> None:
    asset = await factories.value_asset(api, contributor, name="model")
    # A repeat before it used to shift the index (repeats were dropped first): the bad one is the third.
    error = await api.error("AddAliases", {"assetId": asset["id"], "aliases": ["ok", "ok", "no spaces"]}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "aliases[2]"}, error
    error = await api.error("MoveAlias", {"alias": "/rooted", "assetId": asset["id"]}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "alias"}, error  # the argument, not aliases[0]
    assert await Alias.find({"asset_id": object_id(asset["id"])}).count() == 0


async def test_labels_and_aliases_refuse_control_characters_naming_the_one_sent(api: Api, contributor: str) -> None:
    """An asset's labels and aliases are held to a name's rule (services/checks.py): a newline, a NUL
    or an escape in one split or cut the log lines and exports naming it. Each is refused naming the
    item as sent (a repeat before it does not shift the index); nothing is stored. Labels and aliases
    stored before still read, filter and free as they are."""
    kept = await factories.value_asset(api, contributor, name="kept", labels=["a"])
    refused = [
        ("StoreValue", {"input": {"name": "x", "value": 1, "labels": ["ok", "ok", "two\nlines"]}}, "labels[2]"),
        ("StoreText", {"input": {"name": "x", "text": "t", "labels": ["tab\there"]}}, "labels[0]"),
        ("UpdateAsset", {"input": {"id": kept["id"], "labels": ["b", "nul\x00"]}}, "labels[1]"),
        ("CreateUpload", {"input": {"name": "f.bin", "sizeBytes": 1, "labels": ["del\x7f"]}}, "labels[0]"),
        ("CreateUploads", {"inputs": [{"name": "f.bin", "sizeBytes": 1}, {"name": "g.bin", "sizeBytes": 1,
                                                                          "labels": ["c1\x85"]}]}, "inputs[1].labels[0]"),
        ("StoreValue", {"input": {"name": "x", "value": 1, "aliases": ["fine", "nul\x00alias"]}}, "aliases[1]"),
        ("AddAliases", {"assetId": kept["id"], "aliases": ["ok", "ok", "esc\x1b[31m"]}, "aliases[2]"),
        ("MoveAlias", {"alias": "del\x7f", "assetId": kept["id"]}, "alias"),
    ]
    for operation, variables, field in refused:
        error = await api.error(operation, variables, token=contributor)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, (operation, error)
        assert "control character" in error["message"], error
    assert await Asset.count() == 1 and await Alias.count() == 0
    assert (await Asset.find_one()).labels == ["a"]

    # Stored before the rule: read and filtered by as they are, and an alias freed by its name.
    await Asset.get_pymongo_collection().update_one({"_id": object_id(kept["id"])}, {"$set": {"labels": ["old\nlabel"]}})
    await Alias.get_pymongo_collection().insert_one({"_id": "old\x00alias", "asset_id": object_id(kept["id"]),
                                                     "created_at": utcnow()})
    assert await names(api, contributor, {"labelsAny": ["old\nlabel"]}) == ["kept"]
    freed = await api.data("RemoveAliases", {"assetId": kept["id"], "aliases": ["old\x00alias"]}, token=contributor)
    assert freed["removeAliases"]["aliases"] == [] and await Alias.count() == 0
