"""What a COCO import sends to the assets and upload sessions it touches: reads and updates by a
list of ids filter by `_id` alone (services/id_reads.py), so the embedded default answers them from
its `_id` index. With a second condition beside the list (a status, `unpinned_at: {$ne: null}`)
FerretDB's SQLite plan scanned every asset (or every ACTIVE one) and the import slowed down as the
lake grew: a bench round of 200 images then read the whole lake several times over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from documents.roles import Role
from graphlake_client import Client, ResumeState, dataset_import
from resolvers.context import AppState
from tests import factories
from tests.conftest import MakeToken, Served
from tests.operations import Api
from tests.test_exchange_coco import coco_files, write_images

pytestmark = [pytest.mark.asyncio, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

BY_ID = ("assets", "upload_sessions")


def by_id_list(query: dict[str, Any]) -> bool:
    return isinstance(query.get("_id"), dict) and "$in" in query["_id"]


async def test_an_import_reads_and_updates_its_assets_and_sessions_by_id_alone(
        served: Served, state: AppState, make_token: MakeToken, tmp_path: Path) -> None:
    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        await lake.import_coco(annotations, tmp_path / "images", "by-id", version="v1")
        served.commands.clear()
        # Once more, into a new version: every image is filed already (createUploads finds them).
        first = await lake.import_coco(annotations, tmp_path / "images", "by-id-again", version="v1")
        served.commands.clear()
        second = await lake.import_coco(annotations, tmp_path / "images", "by-id-again", version="v2")
    assert second.images_unchanged == 3 and first.images_uploaded == 3
    sent = [(f["find"], f.get("filter", {})) for f in served.commands.finds] + served.commands.updates
    served.commands.clear()
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR),
                      resume=ResumeState(tmp_path / "r2.json")) as lake:
        await lake.import_coco(annotations, tmp_path / "images", "by-id-fresh", version="v1")
    sent += [(f["find"], f.get("filter", {})) for f in served.commands.finds] + served.commands.updates
    lists = [(c, q) for c, q in sent if c in BY_ID and by_id_list(q)]
    assert {c for c, _ in lists} == set(BY_ID), sent  # both asked, else this test checks nothing
    # Two exceptions: whether any turned DELETED meanwhile, read through the status index (the
    # DELETED assets only, however big the lake); and the settling of uploaded assets, which leaves one
    # deleted meanwhile alone (our FerretDB build reads ids at the top of a filter through the `_id_`
    # index whatever else it says: checked below with the rest).
    settling = {"$ne": "DELETED"}
    beside = [(c, q) for c, q in lists if set(q) != {"_id"}
              and not (c == "assets" and q.get("status") in ("DELETED", settling))]
    assert beside == [], beside
    if "ferretdbVersion" not in await state.db.client.admin.command("buildInfo"):
        return  # MongoDB answers both forms from its _id index
    for collection, query in {(c, str(q)): (c, q) for c, q in lists
                              if set(q) == {"_id"} or q.get("status") == settling}.values():
        plan = await state.db.command("explain", {"find": collection, "filter": query})
        assert plan.get("filterPushdown") and any("__id_" in step for step in plan["queryPlanner"]["Plan"]), plan


async def _add(api: Api, served: Served, token: str, set_id: str, datums: list[dict], per_datum: int) -> list[str]:
    records = [{"assetId": d["roles"][0]["asset"]["id"], "datumId": d["id"], "kind": "BBOX", "label": "dent",
                "geometry": {"bbox": {"x": 1, "y": 1, "width": 2 + n, "height": 2}}}
               for d in datums for n in range(per_datum)]
    await api.data("Me", token=token)  # the token's lookup is not the mutation's (it is cached only so long)
    served.commands.clear()
    added = (await api.data("AddAnnotations", {"setId": set_id, "records": records}, token=token))["addAnnotations"]
    assert added["count"] == len(records)
    return [f"{c} {t}" for c, t in zip(served.commands.commands, served.commands.collections, strict=True)]


async def test_add_annotations_costs_the_same_commands_for_2_or_40_images(api: Api, served: Served,
                                                                          contributor: str) -> None:
    """The records' assets and datums are each read once for the batch (by id alone), and the
    records written at once: 3 records on 2 images cost what 400 on 40 do. The set's schema, which
    never changes, is read by the first call only."""
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    first = await factories.datums(api, contributor, 1, roles=("image",))
    few = await factories.datums(api, contributor, 2, roles=("image",))
    many = await factories.datums(api, contributor, 40, roles=("image",))
    assert "find annotation_schemas" in await _add(api, served, contributor, labels["id"], first, 1)
    small = await _add(api, served, contributor, labels["id"], few, 1)
    large = await _add(api, served, contributor, labels["id"], many, 10)
    assert small == large and "find annotation_schemas" not in large, (small, large)
    # The check before the write, whether any turned DELETED meanwhile after it, and the answer's loader.
    assert served.commands.tally()["find assets"] == 3, large  # of the last call, `large`


async def test_an_importer_sends_each_images_records_together(api: Api, served: Served, contributor: str,
                                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A COCO file lists its annotations by category, not by image: sent in that order, each batch
    of records named most of the images, and the server read each one's asset and datum again per
    batch. Grouped by image (in first-appearance order, each image's records in their own order),
    a batch names only the images it holds."""
    schema = await factories.schema(api, contributor)
    labels = await factories.annotation_set(api, contributor, schema["id"])
    datums = await factories.datums(api, contributor, 3, roles=("image",))
    records = [{"assetId": d["roles"][0]["asset"]["id"], "datumId": d["id"], "kind": "BBOX", "label": "dent",
                "attributes": {"n": n}, "geometry": {"bbox": {"x": 1, "y": 1, "width": 2, "height": 2}}}
               for n in range(2) for d in datums]  # by "category": image 0, 1, 2, 0, 1, 2
    monkeypatch.setattr(dataset_import, "BATCH", 2)
    sent: list[list[dict]] = []
    async with Client(served.base_url, contributor, resume=ResumeState(tmp_path / "r.json")) as lake:
        execute = lake.execute

        async def watched(document: str, variables: dict | None = None) -> Any:
            if variables and "records" in variables:
                sent.append(variables["records"])
            return await execute(document, variables)

        lake.execute = watched  # type: ignore[method-assign]
        assert await dataset_import.add_records(lake, labels["id"], records) == 6
    assert sorted(len({r["assetId"] for r in batch}) for batch in sent) == [1, 1, 1], sent
    assert [[r["attributes"]["n"] for r in batch] for batch in sent if batch[0]["datumId"] == datums[0]["id"]] == [[0, 1]]
