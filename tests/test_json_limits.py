"""Client JSON over its limits through the API: a value, an asset's metadata and an event's data each
refused as BAD_USER_INPUT naming the field, before their query views are built, and nothing stored. How
the limits themselves behave (sizes, path budgets, timings): tests/unit/test_json_limits.py."""

from __future__ import annotations

from documents.asset import Asset
from documents.event import Event
from graphlake.settings import Settings
from tests import factories
from tests.json_value_cases import COSTLY
from tests.operations import Api

TOO_LONG = "has paths too long to index"


async def test_store_value_refuses_paths_too_long_to_index_and_keeps_a_large_flat_value(
        api: Api, contributor: str) -> None:
    error = await api.error("StoreValue", {"input": {"name": "deep", "value": COSTLY["long keys nested deep"]}},
                            token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "value"}
    assert error["message"].startswith(f"value: {TOO_LONG}")
    assert await Asset.count() == 0
    # nearly a MiB of JSON, 51,000 paths: stored, and read back whole
    flat = {f"reading_{i:06d}": {"od600": i / 7, "well": f"A{i % 12}"} for i in range(17_000)}
    stored = await factories.value_asset(api, contributor, "flat", flat)
    assert stored["value"] == flat


async def test_an_assets_metadata_is_bounded(api: Api, contributor: str, settings: Settings) -> None:
    error = await api.error("StoreValue", {"input": {"name": "x", "value": 1,
                                                    "metadata": COSTLY["a long key over an array"]}}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "metadata"}
    assert error["message"].startswith(f"metadata: {TOO_LONG}")
    asset = await factories.value_asset(api, contributor, metadata={"plate": 7})
    limit = settings.max_metadata_bytes
    settings.max_metadata_bytes = 100
    try:
        error = await api.error("UpdateAsset", {"input": {"id": asset["id"], "metadata": {"note": "x" * 100}}},
                                token=contributor)
    finally:
        settings.max_metadata_bytes = limit
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "metadata"}
    assert error["message"] == "metadata: is 111 bytes of JSON; the limit is 100"
    assert (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]["metadata"] == {"plate": 7}
    assert await Asset.count() == 1


async def test_event_data_is_bounded(api: Api, contributor: str, settings: Settings) -> None:
    before = await Event.find({"event_type": {"$ne": "AUDIT"}}).count()
    hostile = {"eventType": "RUN", "data": COSTLY["an array of objects under a long key"]}
    error = await api.error("LogEvents", {"inputs": [{"eventType": "RUN"}, hostile]}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs[1].data"}
    assert error["message"].startswith(f"inputs[1].data: {TOO_LONG}")
    limit = settings.max_event_data_bytes
    settings.max_event_data_bytes = 10
    try:
        error = await api.error("LogEvent", {"input": {"eventType": "RUN", "data": {"plate": 7}}}, token=contributor)
    finally:
        settings.max_event_data_bytes = limit
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.data"}
    assert error["message"] == "input.data: is 11 bytes of JSON; the limit is 10"
    assert await Event.find({"event_type": {"$ne": "AUDIT"}}).count() == before
