"""Retention pins and the garbage collector: what the grace period counts from, what a round reads,
and what an automatic round leaves in the audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest

from documents.asset import Asset
from documents.clock import utcnow
from resolvers.context import AppState
from services import assets as assets_service
from services import retention
from tests import factories
from tests.operations import Api, object_id


async def _age_flag(asset_id: str, days: float) -> None:
    """What `days` of waiting do to an asset's flag (tests cannot wait for days)."""
    await Asset.get_pymongo_collection().update_one(
        {"_id": object_id(asset_id), "unpinned_at": {"$ne": None}},
        {"$set": {"unpinned_at": utcnow() - timedelta(days=days)}})


async def _pinned_during_unpin(api: Api, token: str, asset_id: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Pin the asset by hand, then unpin it while a second pin of it races the unpin: the unpin
    found no other pin, the second pin cleared a flag not yet there, then the unpin flagged the
    asset. Returns the second pin, which holds a flagged asset."""
    first = (await api.data("PinAsset", {"assetId": asset_id}, token=token))["pinAsset"]
    second: dict = {}
    held = retention._held

    async def racing_pin(*args, **kwargs):  # the other pin lands between the release's read and its flag
        found = await held(*args, **kwargs)
        if not second:
            second.update((await api.data("PinAsset", {"assetId": asset_id}, token=token))["pinAsset"])
        return found

    monkeypatch.setattr(retention, "_held", racing_pin)
    await api.data("UnpinAsset", {"retentionId": first["id"]}, token=token)
    monkeypatch.setattr(retention, "_held", held)
    assert second
    return second


async def _flag(asset_id: str) -> object:
    return (await Asset.get_pymongo_collection().find_one({"_id": object_id(asset_id)})).get("unpinned_at")


async def test_the_grace_period_counts_from_the_last_release_even_after_a_racing_pin(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """An asset left pinned and flagged (_pinned_during_unpin) kept its old flag when that pin went,
    weeks later, and the collector deleted it at its next round: no grace period at all."""
    asset = await factories.value_asset(api, contributor, name="kept")
    second = await _pinned_during_unpin(api, contributor, asset["id"], monkeypatch)
    assert await _flag(asset["id"]) is not None
    await _age_flag(asset["id"], 30)  # a month goes by, the second pin holding the asset
    await api.data("UnpinAsset", {"retentionId": second["id"]}, token=contributor)  # nothing pins it from now

    assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []  # 7 days from now, not before
    assert (await api.data("Asset", {"id": asset["id"]}, token=contributor))["asset"]["status"] == "ACTIVE"
    await _age_flag(asset["id"], 8)
    assert [a.name for a in await assets_service.collect_unpinned(timedelta(days=7), state.stores)] == ["kept"]


async def test_the_collector_drops_the_flag_of_an_asset_pinned_again(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flagged asset a pin holds is no candidate: the collector keeps it and drops its flag, so that
    its later rounds do not read it again, each time, for as long as the pin holds it."""
    asset = await factories.value_asset(api, contributor, name="held")
    second = await _pinned_during_unpin(api, contributor, asset["id"], monkeypatch)
    await _age_flag(asset["id"], 30)
    assert await assets_service.collect_unpinned(timedelta(days=7), state.stores) == []
    assert await _flag(asset["id"]) is None
    await api.data("UnpinAsset", {"retentionId": second["id"]}, token=contributor)
    assert await _flag(asset["id"]) is not None  # flagged by its release, as ever
