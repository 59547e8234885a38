"""A dataset version's copies of records are packed, a datum's to a document (documents/record_pack.py),
and filtered in Python (services/query_match.py): read through the version, a datum's records must
filter, count and page exactly as the records they copy do, read from the database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from documents import record_pack
from documents.clock import utcnow
from documents.record_pack import VersionRecordPack
from resolvers.context import AppState
from services.privacy.aging import anonymize_older_than
from services.privacy.places import pseudonym, pseudonym_key
from tests import factories
from tests.operations import Api, object_id

PAGE = """
fragment Page on AnnotationRecordConnection {
  totalCount
  pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  edges { node { id label kind score verified source { kind name } set { id } } }
}"""
LIVE = """query Live($datum: ID!, $filter: AnnotationFilter, $first: Int, $after: String, $last: Int, $before: String) {
  datum(id: $datum) { annotations(filter: $filter, first: $first, after: $after, last: $last, before: $before) { ...Page } }
}""" + PAGE
FROZEN = """query Frozen($version: ID!, $filter: AnnotationFilter, $first: Int, $after: String, $last: Int, $before: String) {
  datasetVersion(id: $version) { datums(first: 1) { edges { node {
    annotations(filter: $filter, first: $first, after: $after, last: $last, before: $before) { ...Page } } } } }
}""" + PAGE


async def _page(api: Api, token: str, version: str, datum: str, **arguments: Any) -> tuple[dict, dict]:
    live = await api.run("Live", {"datum": datum, **arguments}, token=token, query=LIVE)
    frozen = await api.run("Frozen", {"version": version, **arguments}, token=token, query=FROZEN)
    assert not live.get("errors") and not frozen.get("errors"), (live, frozen)
    [edge] = frozen["data"]["datasetVersion"]["datums"]["edges"]
    return live["data"]["datum"]["annotations"], edge["node"]["annotations"]


def _shown(page: dict) -> tuple:
    """What a page shows, cursors aside (a copy's cursor is its own, not its original's)."""
    info = page["pageInfo"]
    return page["totalCount"], info["hasNextPage"], info["hasPreviousPage"], [e["node"] for e in page["edges"]]


async def _lake(api: Api, token: str) -> dict[str, Any]:
    """One datum carrying 30 records of two sets: a person's labels (some verified) and a model's
    predictions (scores, one without), in a version of both."""
    [datum] = await factories.datums(api, token, 1, roles=("image",))
    asset = datum["roles"][0]["asset"]["id"]
    schema = await factories.schema(api, token)
    truth = await factories.annotation_set(api, token, schema["id"])
    guesses = await factories.annotation_set(api, token, schema["id"], purpose="PREDICTION",
                                             source={"kind": "MODEL", "name": "yolo", "version": "8"}, name="guesses")
    labelled = (await api.data("AddAnnotations", {"setId": truth["id"], "records": [
        {"assetId": asset, "datumId": datum["id"], "kind": "CLASSIFICATION" if i % 2 else "BBOX",
         "label": "scratch" if i % 3 else "dent", **({} if i % 2 else {"geometry": {"bbox": {"x": i, "y": 1, "width": 2, "height": 3}}})}
        for i in range(15)]}, token=token))["addAnnotations"]["ids"]
    await api.data("VerifyAnnotations", {"ids": labelled[::4], "verified": True}, token=token)
    await api.data("AddAnnotations", {"setId": guesses["id"], "records": [
        {"assetId": asset, "datumId": datum["id"], "kind": "CLASSIFICATION", "label": "dent" if i % 2 else "scratch",
         **({"score": i / 14} if i != 7 else {})} for i in range(15)]}, token=token)
    dataset = await factories.dataset(api, token)
    version = await factories.version(api, token, dataset["id"], "v1", addDatums=[datum["id"]],
                                      addAnnotationSets=[truth["id"], guesses["id"]])
    return {"datum": datum["id"], "version": version["id"], "truth": truth["id"], "guesses": guesses["id"]}


async def test_a_versions_datum_filters_its_records_as_the_database_filters_the_originals(api: Api, contributor: str) -> None:
    lake = await _lake(api, contributor)
    filters: list[dict | None] = [
        None, {}, {"labels": ["dent"]}, {"labels": ["dent", "nothing"]}, {"kinds": ["BBOX"]},
        {"setIds": [lake["guesses"]]}, {"purposes": ["GROUND_TRUTH"]}, {"sourceKinds": ["MODEL"]},
        {"minScore": 0.5}, {"maxScore": 0.5}, {"minScore": 0.2, "maxScore": 0.7}, {"minScore": 0},
        {"verified": True}, {"verified": False}, {"superseded": False}, {"includeSuperseded": True},
        {"labels": ["scratch"], "kinds": ["CLASSIFICATION"], "verified": False, "sourceKinds": ["HUMAN"]},
    ]
    for chosen in filters:
        live, frozen = await _page(api, contributor, lake["version"], lake["datum"], filter=chosen, first=50)
        assert _shown(frozen) == _shown(live), chosen
        assert live["totalCount"] > 0 or chosen == {"superseded": True}, chosen


async def test_a_versions_datum_pages_its_records_forward_and_back_as_the_originals_page(api: Api, contributor: str,
                                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Each part of a datum's packed copies at most a few hundred bytes: its 30 copies in several parts.
    monkeypatch.setattr(record_pack, "PART_BYTES", 600)
    lake = await _lake(api, contributor)
    packs = await VersionRecordPack.get_pymongo_collection().find({"version_id": object_id(lake["version"])}).to_list()
    assert len(packs) > 3 and sum(p["held"] for p in packs) == 30 and [p["part"] for p in packs] == list(range(len(packs)))
    for forward in (True, False):
        seen: list[tuple] = []
        cursors: dict[str, str | None] = {"live": None, "frozen": None}
        while True:
            side = {"first": 7, "after": "{}"} if forward else {"last": 7, "before": "{}"}
            live_args = {k: (cursors["live"] if v == "{}" else v) for k, v in side.items()}
            frozen_args = {k: (cursors["frozen"] if v == "{}" else v) for k, v in side.items()}
            live = (await api.run("Live", {"datum": lake["datum"], "filter": {"labels": ["scratch", "dent"]}, **live_args},
                                  token=contributor, query=LIVE))["data"]["datum"]["annotations"]
            frozen_body = await api.run("Frozen", {"version": lake["version"], "filter": {"labels": ["scratch", "dent"]},
                                                   **frozen_args}, token=contributor, query=FROZEN)
            [edge] = frozen_body["data"]["datasetVersion"]["datums"]["edges"]
            frozen = edge["node"]["annotations"]
            assert _shown(frozen) == _shown(live), (forward, len(seen))
            seen.append(_shown(frozen))
            more = frozen["pageInfo"]["hasNextPage" if forward else "hasPreviousPage"]
            if not more:
                break
            key = "endCursor" if forward else "startCursor"
            cursors = {"live": live["pageInfo"][key], "frozen": frozen["pageInfo"][key]}
        assert sum(len(page[3]) for page in seen) == 30 and len(seen) == 5
    checked = (await api.data("VerifyVersion", {"id": lake["version"]}, token=contributor))["datasetVersion"]["verification"]
    assert checked["ok"] and checked["records"] == 30, checked


async def test_a_cursor_of_another_list_is_refused_by_a_versions_datum(api: Api, contributor: str) -> None:
    lake = await _lake(api, contributor)
    live, _ = await _page(api, contributor, lake["version"], lake["datum"], first=2)
    answer = await api.run("Frozen", {"version": lake["version"], "first": 2, "after": "bm90IGEgY3Vyc29y"},
                           token=contributor, query=FROZEN)
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["field"] == "after", error
    assert live["pageInfo"]["hasNextPage"]


def test_a_pack_gives_back_its_copies_naming_their_people() -> None:
    import zlib
    from datetime import UTC, datetime

    import bson
    from bson import ObjectId

    version, datum = ObjectId(), ObjectId()
    copies = [{"_id": ObjectId(), "version_id": version, "datum_id": datum, "record_id": ObjectId(), "label": f"l{i}",
               "created_by": "alice" if i % 2 else "bob", "created_at": datetime(2026, 1, 1 + i, tzinfo=UTC),
               **({"verified_by": "carol"} if i == 3 else {}),
               "source": {"kind": "HUMAN" if i < 4 else "MODEL", "name": "alice" if i < 4 else "yolo"}} for i in range(6)]
    [document] = record_pack.pack(version, datum, copies)
    assert document["people"] == ["bob", "alice", "carol"] and document["held"] == 6
    assert document["created_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    stored = bson.decode(zlib.decompress(document["records"]))["r"]
    assert [(c["created_by"], c["source"]["name"]) for c in stored[:2]] == [(0, 1), (1, 1)]  # places in `people`
    assert stored[5]["source"]["name"] == "yolo" and "version_id" not in stored[0]  # a model's name is content
    assert record_pack.unpack(document) == [{k: c[k] for k in c} for c in copies]
    renamed = record_pack.unpack({**document, "people": ["anon-b", "anon-a", "anon-c"]})
    assert [c["created_by"] for c in renamed] == ["anon-b", "anon-a"] * 3
    assert [c["source"]["name"] for c in renamed] == ["anon-a"] * 4 + ["yolo"] * 2


async def test_a_packs_people_are_anonymized_with_its_oldest_copy(api: Api, contributor: str, state: AppState) -> None:
    """README, Privacy requests: a version's copies on one datum age together, by the oldest of them."""
    [datum] = await factories.datums(api, contributor, 1, roles=("image",))
    asset = datum["roles"][0]["asset"]["id"]
    labels = await factories.annotation_set(api, contributor, (await factories.schema(api, contributor))["id"],
                                            source={"kind": "HUMAN", "name": "alice"})
    ids = (await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": asset, "datumId": datum["id"], "kind": "CLASSIFICATION", "label": "dent"}] * 3},
        token=contributor))["addAnnotations"]["ids"]
    long_ago = utcnow() - timedelta(days=40)
    await state.db.annotation_records.update_one({"_id": object_id(ids[0])}, {"$set": {"created_at": long_ago}})
    dataset = await factories.dataset(api, contributor)
    version = await factories.version(api, contributor, dataset["id"], "v1", addDatums=[datum["id"]],
                                      addAnnotationSets=[labels["id"]])
    before = (await api.data("VerifyVersion", {"id": version["id"]}, token=contributor))["datasetVersion"]
    [held] = await state.db.version_record_packs.find({"version_id": object_id(version["id"])}).to_list()
    assert "alice" in held["people"] and abs((held["created_at"] - long_ago).total_seconds()) < 0.01

    key = await pseudonym_key(state.db)
    changed = await anonymize_older_than(state.db, utcnow() - timedelta(days=30), key)
    assert changed["version_record_packs"] == 1 and changed["annotation_records"] == 1, changed
    alias = pseudonym("alice", key)
    copies = await factories.version_copies(version["id"])
    assert [c["source"]["name"] for c in copies] == [alias] * 3  # together, the newer copies too
    live = {r["_id"]: r["source"]["name"] async for r in state.db.annotation_records.find({"set_id": object_id(labels["id"])})}
    assert sorted(live.values()) == sorted([alias, "alice", "alice"])  # the originals each by their own age
    after = (await api.data("VerifyVersion", {"id": version["id"]}, token=contributor))["datasetVersion"]
    assert after["verification"]["ok"] and after["manifestSha256"] == before["manifestSha256"]
