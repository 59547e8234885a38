"""The bound on compare-and-set writes (services/compare_and_set.py): an edit that loses the race to
another writer on every try ends in a clear UNAVAILABLE, after TRIES writes, with nothing of it left."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from documents.asset import AssetLink
from resolvers.context import AppState
from services import assets as assets_service
from services import compare_and_set
from tests import factories
from tests.operations import Api, object_id


async def test_an_update_losing_every_race_is_unavailable_and_leaves_nothing(
        api: Api, contributor: str, state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    source = await factories.value_asset(api, contributor, name="raw")
    asset = await factories.value_asset(api, contributor, name="clean")
    real_get, reads = assets_service.get_asset, []

    async def get_then_other_write(*args: Any, **kwargs: Any) -> Any:  # another writer lands after every read
        found = await real_get(*args, **kwargs)
        reads.append(found.updated_at)
        await state.db.assets.update_one({"_id": found.id}, {"$set": {"updated_at": found.updated_at + timedelta(milliseconds=1)}})
        return found

    monkeypatch.setattr(assets_service, "get_asset", get_then_other_write)
    error = await api.error("UpdateAsset", {"input": {"id": asset["id"], "name": "renamed", "derivedFrom": [source["id"]]}},
                            token=contributor, status=503)
    monkeypatch.undo()
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("UNAVAILABLE", "id"), error
    assert "other writers kept changing the asset" in error["message"], error
    assert len(reads) == 1 + compare_and_set.TRIES  # the first look, then a read after each write it made
    raw = await state.db.assets.find_one({"_id": object_id(asset["id"])})
    assert raw["name"] == "clean" and not raw.get("derived_from")
    assert await AssetLink.get_pymongo_collection().count_documents({"asset_id": object_id(asset["id"])}) == 0
