"""summary: what the lake holds, counted by $group aggregations (FerretDB v1's $match/$group/$sum)."""

from __future__ import annotations

from datetime import UTC, datetime

from resolvers.summary.types import EventSummary
from tests import factories
from tests.operations import Api

WINDOW = {"after": "2020-01-01T00:00:00Z", "before": "2020-01-02T00:00:00Z"}  # mutations' AUDIT events are later


def by(rows: list[dict], key: str, *fields: str) -> dict:
    return {row[key]: tuple(row[f] for f in fields) if len(fields) > 1 else row[fields[0]] for row in rows}


async def test_summary_counts_assets_records_events_and_containers(api: Api, contributor: str, viewer: str) -> None:
    empty = (await api.data("Summary", WINDOW, token=viewer))["summary"]
    assert empty["assets"]["count"] == 0 and empty["assets"]["sizeBytes"] == 0
    assert by(empty["assets"]["byKind"], "kind", "count") == {"FILE": 0, "VALUE": 0, "TEXT": 0, "EXTERNAL": 0}
    assert empty["assets"]["byMount"] == [] and empty["events"]["count"] == 0 and empty["events"]["byType"] == []

    await factories.value_asset(api, contributor, value=[1, 2])  # "[1,2]": 5 bytes of JSON
    text = await factories.image_asset(api, contributor)  # TEXT "PNG": 3 bytes
    gone = await factories.value_asset(api, contributor, "gone", value="xyz")
    await api.data("DeleteAsset", {"id": gone["id"]}, token=contributor)
    upload = await api.data("CreateUpload", {"input": {"name": "scan.bin", "sizeBytes": 1000}}, token=contributor)
    await factories.collection(api, contributor)
    dataset = await factories.dataset(api, contributor)
    datums = await api.data("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": text["id"]}]}]},
                            token=contributor)
    await factories.version(api, contributor, dataset["id"], "v1", addDatums=[datums["createDatums"][0]["id"]])
    schema = await factories.schema(api, contributor)
    truth = await factories.annotation_set(api, contributor, schema["id"])
    guesses = await factories.annotation_set(api, contributor, schema["id"], purpose="PREDICTION", name="model")
    records = [{"assetId": text["id"], "kind": "CLASSIFICATION", "label": "scratch"},
               {"assetId": text["id"], "kind": "BBOX", "label": "dent", "geometry": {"bbox": {"x": 0, "y": 0, "width": 2, "height": 2}}}]
    await api.data("AddAnnotations", {"setId": truth["id"], "records": records}, token=contributor)
    await api.data("AddAnnotations", {"setId": guesses["id"], "records": records[:1]}, token=contributor)
    events = [{"eventType": "NODE_START", "timestamp": "2020-01-01T01:00:00Z"},
              {"eventType": "NODE_START", "timestamp": "2020-01-01T02:00:00Z", "level": "ERROR"},
              {"eventType": "NODE_STOP", "timestamp": "2020-01-01T03:00:00Z"},
              {"eventType": "NODE_STOP", "timestamp": "2020-01-02T00:00:00Z"}]  # the window's end: left out
    await api.data("LogEvents", {"inputs": events}, token=contributor)

    summary = (await api.data("Summary", WINDOW, token=viewer))["summary"]
    assets = summary["assets"]
    assert (assets["count"], assets["sizeBytes"]) == (3, 5 + 3 + 1000)
    assert by(assets["byKind"], "kind", "count", "sizeBytes") == {
        "FILE": (1, 1000), "VALUE": (1, 5), "TEXT": (1, 3), "EXTERNAL": (0, 0)}
    assert by(assets["byStatus"], "status", "count", "sizeBytes") == {
        "PENDING": (1, 1000), "ACTIVE": (2, 8), "FAILED": (0, 0), "DELETED": (1, 5)}
    mount = upload["createUpload"]["asset"]["storage"]["mount"]
    assert [(m["mount"], m["count"], m["sizeBytes"]) for m in assets["byMount"]] == [(None, 2, 8), (mount, 1, 1000)]
    assert (summary["collectionCount"], summary["datasetCount"], summary["datasetVersionCount"]) == (1, 1, 1)
    records_summary = summary["annotationRecords"]
    assert records_summary["count"] == 3
    assert by(records_summary["byKind"], "kind", "count") == {
        "CLASSIFICATION": 2, "REGRESSION": 0, "BBOX": 1, "ROTATED_BBOX": 0, "POLYGON": 0, "POLYLINE": 0,
        "KEYPOINTS": 0, "MASK": 0}
    assert by(records_summary["byPurpose"], "purpose", "count") == {"GROUND_TRUTH": 2, "PREDICTION": 1, "REVIEW": 0}
    window = summary["events"]
    assert window["count"] == 3 and window["after"] == "2020-01-01T00:00:00+00:00"
    assert [(row["level"], row["levelNumber"], row["count"]) for row in window["byLevel"]] == [("INFO", 20, 2), ("ERROR", 40, 1)]
    assert [(row["eventType"], row["count"]) for row in window["byType"]] == [("NODE_START", 2), ("NODE_STOP", 1)]
    assert window["typeCount"] == 2


def test_the_types_of_a_window_cut_short_are_counted_whole() -> None:
    window = EventSummary(after=datetime(2020, 1, 1, tzinfo=UTC), before=datetime(2020, 1, 2, tzinfo=UTC),
                          by_level_counts={20: 6}, by_type_counts={"A": 1, "B": 3, "C": 2}, max_types=2)
    assert [(row.event_type, row.count) for row in window.by_type()] == [("B", 3), ("C", 2)] and window.type_count() == 3


async def test_a_window_must_end_after_it_starts(api: Api, viewer: str) -> None:
    error = await api.error("Summary", {"after": "2020-01-02T00:00:00Z", "before": "2020-01-01T00:00:00Z"}, token=viewer)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "before"}
