"""A bundle import finds every datum the lake holds of it, however many datums share one asset (#19):
the lookup pages through each asset's datums, the assets with more batched into one query a round.
The page is made small here (2 instead of 500) so that a few datums show the paging."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from documents.roles import Role
from graphlake_client import Client, ResumeState, bundle_lookup
from graphlake_client import operations as ops
from tests.conftest import MakeToken, Served
from tests.test_exchange_bundle import png

pytestmark = pytest.mark.asyncio


async def test_datums_sharing_an_asset_are_found_past_a_page(served: Served, make_token: MakeToken, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_lookup, "FIRST_DATUMS", 2)
    monkeypatch.setattr(bundle_lookup, "DATUM_PAGE", 2)
    for n in range(2):
        (tmp_path / f"img{n}.png").write_bytes(png(n, (20, 10)))
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        images = await lake.upload_batch([(tmp_path / f"img{n}.png", {}) for n in range(2)])
        # Five datums on the first image, three on the second, each told apart by its metadata.
        inputs = [{"roles": [{"role": "image", "assetId": images[0 if n < 5 else 1]["id"]}], "split": "TRAIN",
                   "metadata": {"n": n}} for n in range(8)]
        datums = (await lake.execute(ops.CREATE_DATUMS, {"inputs": inputs}))["createDatums"]
        dataset = (await lake.execute(ops.CREATE_DATASET_DESCRIBED, {"input": {"name": "many"}}))["createDataset"]
        await lake.execute(ops.CREATE_VERSION, {"input": {"datasetId": dataset["id"], "version": "v1",
                                                          "addDatums": [d["id"] for d in datums]}})
        await lake.export_bundle("many/v1", tmp_path / "bundle")

        sent: list[str] = []
        execute = lake.execute

        async def counted(document: str, variables: dict[str, Any] | None = None, **options: Any) -> Any:
            sent.append(document)
            return await execute(document, variables, **options)

        monkeypatch.setattr(lake, "execute", counted)
        prepared = await lake.import_bundle(tmp_path / "bundle", policy="copy-if-missing", dry_run=True)
    assert prepared["datums"] == {"new": 0, "present": 8}  # a first page alone found 4
    assert prepared["version_state"] == "present" and not prepared["conflicts"]
    # One query for both assets' first pages, then one a round for the assets with more: 3-4 and 3 together, then 5.
    assert sum(d == ops.BUNDLE_ASSET_DATUMS for d in sent) == 1
    assert sum("datums(first: $first, after:" in d for d in sent) == 2


async def test_assets_are_found_by_digest_past_a_page(served: Served, make_token: MakeToken, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """What a lake holds of a bundle's assets, by kind and SHA-256 (`sha256In`, paged): a digest held
    by several assets is found once, as its newest one (or the one in the collection asked about)."""
    monkeypatch.setattr(bundle_lookup, "SHA_PAGE", 2)  # two digests a query, two assets a page
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        same = [(await lake.execute(ops.STORE_VALUE, {"input": {"name": f"s{n}", "value": {"x": 1}}}))["storeValue"]
                for n in range(3)]
        other = (await lake.execute(ops.STORE_VALUE, {"input": {"name": "o", "value": {"x": 2}}}))["storeValue"]
        assert len({a["sha256"] for a in same}) == 1
        digest = same[0]["sha256"]
        kept = await lake.collection_id("kept")
        await lake.execute(ops.ADD_TO_COLLECTION, {"input": {"collectionId": kept, "items": [{"assetId": same[0]["id"]}]}})
        wanted = [("VALUE", digest), ("VALUE", other["sha256"]), ("TEXT", digest), ("VALUE", "0" * 64)]
        assert await bundle_lookup.assets_by_sha(lake, wanted, None) == {
            ("VALUE", digest): same[2]["id"], ("VALUE", other["sha256"]): other["id"]}
        assert await bundle_lookup.assets_by_sha(lake, wanted, kept) == {("VALUE", digest): same[0]["id"]}
        assert await bundle_lookup.assets_by_sha(lake, [], None) == {}
