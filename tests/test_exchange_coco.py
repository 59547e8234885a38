"""COCO import and export (#19) against the real server: the `graphlake` command in a subprocess, and
the Python client. The data is made here: a few Pillow images and one annotation of every kind."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as rle

from documents.annotation import AnnotationRecord, AnnotationSet
from documents.asset import Asset
from documents.dataset import Datum
from documents.upload import UploadSession
from graphlake.settings import Settings
from graphlake_client import Client, GraphlakeClientError, ResumeState, coco_export
from graphlake_client import operations as ops
from graphlake_client.coco_shapes import mask_of
from tests.conftest import MakeToken, Served
from tests.operations import object_id

# pycocotools 2.0.11 asks numpy 2 for an array with copy=False while decoding, which numpy warns about.
pytestmark = [pytest.mark.asyncio, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

SIZES = {"a.png": (64, 48), "b.png": (80, 60), "sub/c.png": (32, 40)}  # width, height


def write_images(root: Path) -> None:
    for n, (name, size) in enumerate(SIZES.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(n).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)


def a_mask(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    x, y, w, h = box
    mask[y:y + h, x:x + w] = 1
    mask[y, x] = 0  # not a plain rectangle
    return mask


def coco_files(root: Path) -> tuple[Path, Path]:
    """annotations.json with bbox, two-part polygon, compressed and uncompressed RLE (crowds) and
    keypoints; results.json with scores."""
    compressed = rle.encode(np.asfortranarray(a_mask(60, 80, (5, 6, 20, 10))))
    counts = []  # uncompressed counts, column-major runs starting with zeros, as COCO's crowd files hold them
    flat, value, run = a_mask(60, 80, (30, 20, 15, 25)).flatten(order="F"), 0, 0
    for pixel in flat:
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    coco = {
        "images": [{"id": 7, "file_name": "a.png", "width": 64, "height": 48},
                   {"id": 8, "file_name": "b.png", "width": 80, "height": 60},
                   {"id": 9, "file_name": "sub/c.png", "width": 32, "height": 40}],
        "categories": [{"id": 1, "name": "scratch", "supercategory": "defect"},
                       {"id": 3, "name": "dent", "supercategory": "defect"},
                       {"id": 5, "name": "person", "supercategory": "person",
                        "keypoints": ["nose", "left_eye", "right_eye"], "skeleton": [[1, 2], [1, 3]]}],
        "annotations": [
            {"id": 100, "image_id": 7, "category_id": 1, "bbox": [10, 12, 20, 8.5], "area": 170.0, "iscrowd": 0},
            {"id": 101, "image_id": 7, "category_id": 3, "bbox": [2, 2, 20, 20], "area": 150.0, "iscrowd": 0,
             "segmentation": [[2, 2, 20, 2, 20, 20], [30, 30, 40, 30, 40, 40, 30, 40]]},
            {"id": 102, "image_id": 8, "category_id": 1, "bbox": [5, 6, 20, 10], "area": 199.0, "iscrowd": 1,
             "segmentation": {"size": [60, 80], "counts": compressed["counts"].decode()}},
            {"id": 103, "image_id": 8, "category_id": 3, "bbox": [30, 20, 15, 25], "area": 374.0, "iscrowd": 1,
             "segmentation": {"size": [60, 80], "counts": counts}},
            {"id": 104, "image_id": 9, "category_id": 5, "bbox": [4, 4, 20, 30], "area": 600.0, "iscrowd": 0,
             "keypoints": [10, 8, 2, 14, 7, 1, 0, 0, 0], "num_keypoints": 2},
        ],
    }
    results = [{"image_id": 7, "category_id": 1, "bbox": [11, 12, 19, 9], "score": 0.9},
               {"image_id": 8, "category_id": 3, "bbox": [3, 3, 10, 10], "score": 0.25,
                "segmentation": [[3, 3, 13, 3, 13, 13]]}]
    (root / "annotations.json").write_text(json.dumps(coco))
    (root / "results.json").write_text(json.dumps(results))
    return root / "annotations.json", root / "results.json"


def comparable(coco: dict[str, Any] | list[dict[str, Any]], images: list[dict[str, Any]],
               categories: list[dict[str, Any]]) -> list[tuple]:
    """Annotations with ids aside: by file name and category name, segmentations as mask pixels."""
    anns = coco["annotations"] if isinstance(coco, dict) else coco
    image = {i["id"]: i for i in images}
    category = {c["id"]: c["name"] for c in categories}
    out = []
    for a in anns:
        i = image[a["image_id"]]
        pixels = None
        segmentation = a.get("segmentation")
        if isinstance(segmentation, list):
            pixels = rle.decode(rle.merge(rle.frPyObjects(segmentation, i["height"], i["width"])))
        elif isinstance(segmentation, dict):
            pixels = mask_of(segmentation, i["height"], i["width"])
        out.append((i["file_name"], category[a["category_id"]], tuple(a.get("bbox", ())), a.get("iscrowd", 0),
                    a.get("area"), tuple(a.get("keypoints", ())), a.get("score"),
                    None if pixels is None else pixels.tobytes()))
    return sorted(out, key=repr)


def graphlake(served: Served, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    env.update(GRAPHLAKE_URL=served.base_url, GRAPHLAKE_TOKEN=token)
    return subprocess.run([sys.executable, "-m", "graphlake", *args], env=env, capture_output=True, text=True, timeout=120)


async def counts() -> tuple[int, int, int]:
    return (await Asset.get_pymongo_collection().count_documents({}),
            await Datum.get_pymongo_collection().count_documents({}),
            await AnnotationRecord.get_pymongo_collection().count_documents({}))


@pytest.mark.parametrize(("mount", "ingest"), [(None, False), ("lab", False), (None, True)],
                         ids=["local", "s3", "server-ingest"])
async def test_coco_round_trip_through_the_command(served: Served, make_token: MakeToken, tmp_path: Path,
                                                  mount: str | None, ingest: bool, settings: Settings,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Uploaded to the local mount or to S3, or (server-ingest) copied in by the server, which reads the
    images where they are: the same import, rerun and export."""
    from documents.roles import Role

    if ingest:
        monkeypatch.setattr(settings, "ingest_roots", [tmp_path])
    token = await make_token(Role.CONTRIBUTOR)
    write_images(tmp_path / "images")
    annotations, results = coco_files(tmp_path)
    args = ["import", "coco", str(annotations), "--images", str(tmp_path / "images"), "--dataset", "parts",
            "--version", "v1", "--predictions", str(results), *(["--mount", mount] if mount else [])]
    first = await asyncio.to_thread(graphlake, served, token, *args)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["images_uploaded"] == 3 and summary["datums_created"] == 3
    assert summary["records_added"] == {"GROUND_TRUTH": 10, "PREDICTION": 3}  # 5 boxes, 2 polygon parts, 2 masks, 1 pose
    assert summary["version"]["version"] == "v1" and summary["version"]["datumCount"] == 3
    before = await counts()
    # Images and mask PNGs alike on the mount asked for.
    assert await Asset.get_pymongo_collection().distinct("storage.mount", {"kind": "FILE"}) == [mount or "local"]
    images = await Asset.get_pymongo_collection().distinct("_id", {"name": {"$in": [Path(n).name for n in SIZES]}})
    assert len(images) == len(SIZES)
    sessions = await UploadSession.get_pymongo_collection().find({"asset_id": {"$in": images}}).to_list()
    # An ingest's sessions are born completed, only to file its assets (the masks, made in a
    # temporary directory, are uploaded).
    sent = [s for s in sessions if s["expires_at"] != s["finished_at"]]
    assert len(sent) == (0 if ingest else len(SIZES)) and not any(s["to_file"] for s in sessions)

    again = await asyncio.to_thread(graphlake, served, token, *args)
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert rerun["images_uploaded"] == 0 and rerun["images_unchanged"] == 3 and rerun["datums_created"] == 0
    assert rerun["kept"] == ["GROUND_TRUTH", "PREDICTION"] and rerun["records_added"] == {} and rerun["resumed"] == []
    assert rerun["version"]["id"] == summary["version"]["id"]
    assert await counts() == before  # no new asset, datum or record

    # A changed file against a set already holding records: CONFLICT, and nothing added.
    fewer = json.loads(annotations.read_text())
    fewer["annotations"] = fewer["annotations"][:2]
    (tmp_path / "fewer.json").write_text(json.dumps(fewer))
    changed = await asyncio.to_thread(graphlake, served, token, *args[:2], str(tmp_path / "fewer.json"), *args[3:])
    assert changed.returncode == 1 and "CONFLICT" in changed.stderr and "holds 10 records" in changed.stderr
    assert await counts() == before

    out = tmp_path / "out"
    exported = await asyncio.to_thread(graphlake, served, token, "export", "coco", "parts/v1", str(out))
    assert exported.returncode == 0, exported.stderr
    source, back = json.loads(annotations.read_text()), json.loads((out / "annotations.json").read_text())
    for name in SIZES:
        assert (out / "images" / name).read_bytes() == (tmp_path / "images" / name).read_bytes()
    assert comparable(back, back["images"], back["categories"]) == comparable(source, source["images"], source["categories"])
    assert sorted(a["id"] for a in back["annotations"]) == [100, 101, 102, 103, 104]  # the ids they came with
    assert comparable(json.loads((out / "results.json").read_text()), back["images"], back["categories"]) == \
        comparable(json.loads(results.read_text()), source["images"], source["categories"])
    person = next(c for c in back["categories"] if c["name"] == "person")
    assert person["keypoints"] == ["nose", "left_eye", "right_eye"] and person["skeleton"] == [[1, 2], [1, 3]]
    assert {c["name"]: c.get("supercategory") for c in back["categories"]} == \
        {c["name"]: c["supercategory"] for c in source["categories"]}
    assert back["info"]["graphlake"]["manifest_sha256"] == summary["version"]["manifestSha256"]


async def test_the_export_is_the_frozen_version(served: Served, make_token: MakeToken, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from documents.roles import Role

    # Small pages, so the export reads on across datum pages and within one datum's records.
    monkeypatch.setattr(coco_export, "DATUMS_PER_PAGE", 2)
    monkeypatch.setattr(coco_export, "RECORDS_PER_PAGE", 2)
    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        done = await lake.import_coco(annotations, tmp_path / "images", "frozen", version="v1")
        # After the version: one more record in its ground-truth set, and one more datum of the dataset.
        image = (await lake.execute(ops.VERSION_DATUMS, {"id": done.version["id"], "first": 1, "records": 1}))[
            "datasetVersion"]["datums"]["edges"][0]["node"]
        await lake.execute(ops.ADD_ANNOTATIONS, {"setId": done.set_ids["GROUND_TRUTH"], "records": [{
            "assetId": image["asset"]["id"], "datumId": image["id"], "kind": "BBOX", "label": "dent",
            "geometry": {"bbox": {"x": 1, "y": 1, "width": 2, "height": 2}}}]})
        await lake.execute(ops.CREATE_DATUMS, {"inputs": [{"roles": [{"role": "image", "assetId": image["asset"]["id"]}],
                                                           "metadata": {"coco": {"dataset": "frozen", "id": 99}}}]})
    async with Client(served.base_url, await make_token(Role.VIEWER)) as reader:  # reading is enough to export
        written = await reader.export_coco("frozen/v1", tmp_path / "out")
    assert await counts() == (3 + 2, 4, 11)  # images and masks; the live set holds the new record
    assert written["images"] == 3 and written["annotations"] == 5 and written["results"] == 0
    back = json.loads((tmp_path / "out" / "annotations.json").read_text())
    source = json.loads(annotations.read_text())
    assert comparable(back, back["images"], back["categories"]) == comparable(source, source["images"], source["categories"])
    assert not (tmp_path / "out" / "results.json").exists()


async def test_an_export_into_an_earlier_exports_dest_is_refused_unless_it_replaces(served: Served, make_token: MakeToken,
                                                                                   tmp_path: Path) -> None:
    """A second export into one DEST left the first's results.json beside its own annotations.json
    (one without predictions writes none): evaluated together, they were two versions'. DEST holding
    an earlier export's images/, annotations.json or results.json is refused (CONFLICT, one line
    from the command), and --replace removes them first, as the YOLO and Hugging Face exports do.
    The JSON files go in through a temporary name: none is ever half written under its own."""
    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    write_images(tmp_path / "images")
    annotations, results = coco_files(tmp_path)
    out = tmp_path / "out"
    async with Client(served.base_url, token) as lake:
        await lake.import_coco(annotations, tmp_path / "images", "withpred", version="v1", predictions=results)
        await lake.import_coco(annotations, tmp_path / "images", "nopred", version="v1")
        await lake.export_coco("withpred/v1", out)
        assert (out / "results.json").is_file()
        with pytest.raises(GraphlakeClientError, match="holds an earlier export") as refused:
            await lake.export_coco("nopred/v1", out)
        assert refused.value.code == "CONFLICT"
    again = await asyncio.to_thread(graphlake, served, token, "export", "coco", "nopred/v1", str(out))
    said = " ".join(again.stderr.split())
    assert again.returncode == 1 and said.count("error:") == 1 and "Traceback" not in said, said
    assert "holds an earlier export (images/, annotations.json, results.json)" in said and "--replace" in said, said
    assert json.loads((out / "annotations.json").read_text())["info"]["description"] == "withpred/v1"
    replaced = await asyncio.to_thread(graphlake, served, token, "export", "coco", "nopred/v1", str(out), "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads((out / "annotations.json").read_text())["info"]["description"] == "nopred/v1"
    assert not (out / "results.json").exists()  # the earlier version's predictions are gone with it
    assert sorted(p.name for p in out.iterdir()) == ["annotations.json", "images"]  # no temporary left


async def test_a_missing_image_or_category_stops_the_import_before_it_writes(served: Served, make_token: MakeToken,
                                                                             tmp_path: Path) -> None:
    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    (tmp_path / "images" / "b.png").unlink()
    gone = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(annotations),
                                   "--images", str(tmp_path / "images"), "--dataset", "parts")
    assert gone.returncode == 1 and "1 images are not under" in gone.stderr and "b.png" in gone.stderr
    write_images(tmp_path / "images")
    coco = json.loads(annotations.read_text())
    coco["annotations"][0]["category_id"] = 42
    annotations.write_text(json.dumps(coco))
    unknown = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(annotations),
                                      "--images", str(tmp_path / "images"), "--dataset", "parts")
    said = " ".join(unknown.stderr.split())
    assert unknown.returncode == 1 and "annotation 0 of annotations.json: category_id 42 is not a category" in said, said
    # What COCO's format says an entry holds, checked before anything is written (they failed deep in
    # the import, after its sets were made, or dropped a polygon without a word).
    for change, named in ((lambda a: a.update(bbox=[1, 2, 3]), "bbox is [x, y, width, height]"),
                          (lambda a: a.update(segmentation=[[1, 2, 3, 4, 5]]), "segmentation[0] is a polygon"),
                          (lambda a: a.update(keypoints=[1, 2]), "keypoints are x, y, visibility"),
                          (lambda a: a.update(score=1.27), "score must be between 0 and 1")):
        broken = json.loads(coco_files(tmp_path)[0].read_text())
        change(broken["annotations"][1])
        annotations.write_text(json.dumps(broken))
        refused = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(annotations),
                                          "--images", str(tmp_path / "images"), "--dataset", "parts")
        said = " ".join(refused.stderr.split())
        assert refused.returncode == 1 and f"annotation 1 of annotations.json: {named}" in said, said
    annotations.write_text(json.dumps(coco)[:-20])  # cut short
    cut = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(annotations),
                                  "--images", str(tmp_path / "images"), "--dataset", "parts")
    assert cut.returncode == 1 and "annotations.json is not JSON" in cut.stderr and "Traceback" not in cut.stderr
    annotations.write_text(json.dumps(coco))
    del coco["images"][1]["file_name"]
    annotations.write_text(json.dumps(coco))
    lacking = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(annotations),
                                      "--images", str(tmp_path / "images"), "--dataset", "parts")
    assert lacking.returncode == 1 and "image 1 of annotations.json has no file_name" in lacking.stderr, lacking.stderr
    coco = json.loads(coco_files(tmp_path)[0].read_text())
    coco["annotations"][1]["id"] = coco["annotations"][0]["id"]  # its records' keys would be the first one's
    annotations.write_text(json.dumps(coco))
    twice = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(annotations),
                                    "--images", str(tmp_path / "images"), "--dataset", "parts")
    assert twice.returncode == 1 and "annotation id 100 appears twice in annotations.json" in twice.stderr, twice.stderr
    assert await counts() == (0, 0, 0)


async def test_entries_of_the_wrong_type_are_refused_naming_them(served: Served, make_token: MakeToken,
                                                                 tmp_path: Path) -> None:
    """A key of the wrong type (a number for a file name, null for the annotations, a list for an id,
    "no" for iscrowd) was a TypeError's traceback, some after the images were stored: now
    BAD_USER_INPUT naming the entry and the key, before anything is written."""
    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    write_images(tmp_path / "images")
    annotations, results = coco_files(tmp_path)
    cases = [(lambda c: c["images"][0].update(file_name=5), "image 0 of annotations.json: file_name is a path"),
             (lambda c: c.update(annotations=None), "annotations.json: annotations is a list, not None"),
             (lambda c: c.update(categories={"1": "scratch"}), "annotations.json: categories is a list"),
             (lambda c: c["images"].append("d.png"), "image 3 of annotations.json: an entry is a JSON object"),
             (lambda c: c["images"][1].update(width="80"), "image 1 of annotations.json: width is a positive whole"),
             (lambda c: c["categories"][2].update(keypoints="nose"), "category 2 of annotations.json: keypoints is a list"),
             (lambda c: c["annotations"][0].update(iscrowd="no"), "annotation 0 of annotations.json: iscrowd is 0 or 1"),
             (lambda c: c["annotations"][3].update(category_id=[1]), "annotation 3 of annotations.json: category_id is a"),
             (lambda c: c["annotations"][4].update(image_id=[9]), "annotation 4 of annotations.json: image_id is a")]
    async with Client(served.base_url, token) as lake:
        for change, named in cases:
            broken = json.loads(coco_files(tmp_path)[0].read_text())
            change(broken)
            annotations.write_text(json.dumps(broken))
            with pytest.raises(GraphlakeClientError) as refused:
                await lake.import_coco(annotations, tmp_path / "images", "parts")
            assert refused.value.code == "BAD_USER_INPUT" and named in str(refused.value), (named, refused.value)
        annotations.write_text(json.dumps(json.loads(coco_files(tmp_path)[0].read_text())))
        found = json.loads(results.read_text())
        found[1]["score"] = [0.5]
        results.write_text(json.dumps(found))
        with pytest.raises(GraphlakeClientError, match=r"entry 1 of results\.json: score must be between 0 and 1"):
            await lake.import_coco(annotations, tmp_path / "images", "parts", predictions=results)
    broken = json.loads(annotations.read_text())
    broken["images"][0]["file_name"] = 5
    annotations.write_text(json.dumps(broken))
    said = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(annotations),
                                   "--images", str(tmp_path / "images"), "--dataset", "parts")
    assert said.returncode == 1 and "Traceback" not in said.stderr and said.stderr.count("error:") == 1
    assert "file_name is a path relative to --images (a string), not 5 (BAD_USER_INPUT)" in " ".join(said.stderr.split())
    assert await counts() == (0, 0, 0)


async def test_another_models_predictions_or_changed_ones_are_not_kept_as_imported(served: Served, make_token: MakeToken,
                                                                                 tmp_path: Path) -> None:
    """A set was kept when it held as many records on each image as the file makes: a second model's
    predictions, or corrected ones, of the same counts were reported `kept` and dropped. The set is
    found by its source too (a set of the name holding another source's records is a CONFLICT naming
    both), and its records are compared with the file's by key and content."""
    from documents.roles import Role

    write_images(tmp_path / "images")
    annotations, results = coco_files(tmp_path)
    other = json.loads(results.read_text())
    for entry in other:  # the same number of detections on each image, other boxes and scores
        entry["bbox"] = [v + 1 for v in entry["bbox"]]
        entry["score"] = 0.5
    (tmp_path / "other.json").write_text(json.dumps(other))
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        first = await lake.import_coco(annotations, tmp_path / "images", "d", predictions=results, model="model-a")
        # A set of model-b's name that model-a's records fill (made by hand, or by another tool).
        await lake.execute(ops.CREATE_SET, {"input": {"name": "d model-b predictions", "purpose": "PREDICTION",
                                                      "schemaId": first.schema_id,
                                                      "source": {"kind": "MODEL", "name": "model-a"}}})
        before = await counts()
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_coco(annotations, tmp_path / "images", "d", predictions=tmp_path / "other.json",
                                   model="model-b")
        assert refused.value.code == "CONFLICT" and await counts() == before
        assert "'d model-b predictions' is MODEL 'model-a''s, not MODEL 'model-b''s" in str(refused.value), refused.value
        with pytest.raises(GraphlakeClientError, match="3 of them not as this file makes them") as refused:
            await lake.import_coco(annotations, tmp_path / "images", "d", predictions=tmp_path / "other.json",
                                   model="model-a")
        assert refused.value.code == "CONFLICT" and await counts() == before
        moved = json.loads(annotations.read_text())
        moved["annotations"][0]["bbox"] = [11, 12, 20, 8.5]  # a corrected box: the same records, one elsewhere
        (tmp_path / "moved.json").write_text(json.dumps(moved))
        with pytest.raises(GraphlakeClientError, match="4 of them not as this file makes them"):
            await lake.import_coco(tmp_path / "moved.json", tmp_path / "images", "d")
        b = await lake.import_coco(annotations, tmp_path / "images", "d", predictions=tmp_path / "other.json",
                                   model="model-b", set_name="d2")
        again = await lake.import_coco(annotations, tmp_path / "images", "d", predictions=results, model="model-a")
    assert b.set_ids["PREDICTION"] != first.set_ids["PREDICTION"] and b.records_added["PREDICTION"] == 3
    assert again.kept == ["GROUND_TRUTH", "PREDICTION"] and again.set_ids == first.set_ids


def another_models(root: Path) -> Path:
    """A second model's results for coco_files' images: other detections, and not as many."""
    other = [{"image_id": 9, "category_id": 5, "bbox": [5, 5, 10, 12], "score": 0.7},
             {"image_id": 7, "category_id": 3, "bbox": [1, 2, 5, 6], "score": 0.4},
             {"image_id": 7, "category_id": 1, "bbox": [12, 11, 18, 9], "score": 0.8}]
    (root / "yolo.json").write_text(json.dumps(other))
    return root / "yolo.json"


async def sets_made() -> dict[tuple[str, str], str]:
    """Every annotation set, by purpose and name, with its source's name."""
    found = await AnnotationSet.get_pymongo_collection().find({}).to_list()
    return {(s["purpose"], s["name"]): s["source"]["name"] for s in found}


async def test_a_second_models_predictions_go_in_beside_the_ground_truth_already_imported(
        served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """Both sets were named after the dataset (or --set-name): a second model's results for images
    imported already, with the same annotations file, met the first model's predictions set
    (CONFLICT), or under another --set-name made a second ground-truth set with every annotation
    copied again. The predictions set is named after its model: the ground truth is found and kept,
    and each model's predictions are a set of their own. A rerun of either import makes nothing, and
    so does a rerun of an import from before, whose set is `<dataset> predictions`."""
    from documents.roles import Role

    write_images(tmp_path / "images")
    annotations, results = coco_files(tmp_path)
    yolo = another_models(tmp_path)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        first = await lake.import_coco(annotations, tmp_path / "images", "d", predictions=results, model="detr")
        second = await lake.import_coco(annotations, tmp_path / "images", "d", predictions=yolo, model="yolo")
        assert second.kept == ["GROUND_TRUTH"] and second.records_added == {"PREDICTION": 3}
        assert second.set_ids["GROUND_TRUTH"] == first.set_ids["GROUND_TRUTH"]
        assert second.images_uploaded == second.datums_created == 0
        made = {("GROUND_TRUTH", "d ground truth"): "coco", ("PREDICTION", "d detr predictions"): "detr",
                ("PREDICTION", "d yolo predictions"): "yolo"}
        assert await sets_made() == made
        truth = {"set_id": object_id(first.set_ids["GROUND_TRUTH"])}
        assert await AnnotationRecord.get_pymongo_collection().count_documents(truth) == 10  # not one more
        before = await counts()
        for predictions, model, done in ((results, "detr", first), (yolo, "yolo", second)):
            again = await lake.import_coco(annotations, tmp_path / "images", "d", predictions=predictions, model=model)
            assert again.kept == ["GROUND_TRUTH", "PREDICTION"] and again.set_ids == done.set_ids, model
            assert again.records_added == {} and again.datums_created == 0, model
        assert await counts() == before and await sets_made() == made

        # The detr set as an import named it before predictions were named after their model.
        await AnnotationSet.get_pymongo_collection().update_one({"_id": object_id(first.set_ids["PREDICTION"])},
                                                                {"$set": {"name": "d predictions"}})
        for predictions, model, done in ((results, "detr", first), (yolo, "yolo", second)):
            again = await lake.import_coco(annotations, tmp_path / "images", "d", predictions=predictions, model=model)
            assert again.kept == ["GROUND_TRUTH", "PREDICTION"] and again.set_ids == done.set_ids, model
        assert await counts() == before
        assert await sets_made() == {**{k: v for k, v in made.items() if v != "detr"}, ("PREDICTION", "d predictions"): "detr"}


async def test_each_models_predictions_are_a_results_file_of_their_own(served: Served, make_token: MakeToken,
                                                                       tmp_path: Path) -> None:
    """A version holding two models' predictions wrote both into one results.json, which pycocotools'
    loadRes (and every evaluator after it) reads as one model's detections: scored as one, and not
    to be told apart. Each prediction set goes to a results file of its own, named after its model,
    holding that model's detections only and loading with COCO.loadRes against annotations.json; the
    summary counts each file's. They are an earlier export's files as much as results.json is: they
    refuse DEST, and --replace removes them (a one-model export there is results.json alone)."""
    from pycocotools.coco import COCO

    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    write_images(tmp_path / "images")
    annotations, results = coco_files(tmp_path)
    yolo = another_models(tmp_path)
    out = tmp_path / "out"
    async with Client(served.base_url, token) as lake:
        first = await lake.import_coco(annotations, tmp_path / "images", "two", version="v1", predictions=results,
                                       model="detr")
        second = await lake.import_coco(annotations, tmp_path / "images", "two", predictions=yolo, model="yolo")
        await lake.create_dataset_version("two", "v2", parent="v1", add_annotation_sets=[second.set_ids["PREDICTION"]])
        written = await lake.export_coco("two/v2", out)
    assert sorted(p.name for p in out.iterdir()) == ["annotations.json", "images", "results-detr.json", "results-yolo.json"]
    assert written["results"] == 5 and written["results_files"] == {
        "results-detr.json": {"set": "two detr predictions", "set_id": first.set_ids["PREDICTION"], "source": "detr",
                              "results": 2},
        "results-yolo.json": {"set": "two yolo predictions", "set_id": second.set_ids["PREDICTION"], "source": "yolo",
                              "results": 3}}
    source, back = json.loads(annotations.read_text()), json.loads((out / "annotations.json").read_text())
    ground = COCO(str(out / "annotations.json"))
    for name, predictions in (("results-detr.json", results), ("results-yolo.json", yolo)):
        exported = json.loads((out / name).read_text())
        assert comparable(exported, back["images"], back["categories"]) == \
            comparable(json.loads(predictions.read_text()), source["images"], source["categories"]), name
        loaded = ground.loadRes(str(out / name))
        assert sorted(a["score"] for a in loaded.loadAnns(loaded.getAnnIds())) == \
            sorted(p["score"] for p in json.loads(predictions.read_text())), name

    refused = await asyncio.to_thread(graphlake, served, token, "export", "coco", "two/v1", str(out))
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 1 and "(images/, annotations.json, results-detr.json, results-yolo.json)" in said, said
    replaced = await asyncio.to_thread(graphlake, served, token, "export", "coco", "two/v1", str(out), "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert sorted(p.name for p in out.iterdir()) == ["annotations.json", "images", "results.json"]
    assert json.loads(replaced.stdout)["results_files"] == {"results.json": {
        "set": "two detr predictions", "set_id": first.set_ids["PREDICTION"], "source": "detr", "results": 2}}


async def test_pose_and_mask_results_come_back_as_pycocotools_reads_them(served: Served, make_token: MakeToken,
                                                                        tmp_path: Path) -> None:
    """A pose model's results give a confidence where ground truth gives a visibility flag (mmpose,
    detectron2), and mask and pose results come without a box: pycocotools' loadRes derives the box
    and area itself, by the kind of the file's first entry. The import kept only flags (a confidence
    of 0.93 came back 0) and the export added a box to every result, which made loadRes read mask
    results as box results (their areas the boxes'), and a result without a box after one with it
    could not be loaded. Each comes back as it went in, and loads and scores as the original does."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from documents.roles import Role

    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    pose = [{"image_id": 9, "category_id": 5, "keypoints": [10.5, 8, 0.93, 14, 7, 0.41, 3, 4, 0.05], "score": 0.8},
            {"image_id": 9, "category_id": 5, "keypoints": [11, 9, 0.2, 15, 8, 0, 2, 2, 1.7], "score": 0.3},
            {"image_id": 9, "category_id": 5, "keypoints": [12, 10, 1.0, 16, 9, 1.0, 4, 5, 1.0], "score": 0.5}]
    masks = [{"image_id": 7, "category_id": 3, "score": 0.9,
              "segmentation": {"size": [48, 64], "counts": rle.encode(np.asfortranarray(a_mask(48, 64, (2, 2, 18, 18))))["counts"].decode()}},
             {"image_id": 8, "category_id": 3, "score": 0.6,
              "segmentation": {"size": [60, 80], "counts": rle.encode(np.asfortranarray(a_mask(60, 80, (5, 6, 21, 9))))["counts"].decode()}}]
    (tmp_path / "pose.json").write_text(json.dumps(pose))
    (tmp_path / "masks.json").write_text(json.dumps(masks))
    out = tmp_path / "out"
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        first = await lake.import_coco(annotations, tmp_path / "images", "eval", version="v1",
                                       predictions=tmp_path / "pose.json", model="pose")
        second = await lake.import_coco(annotations, tmp_path / "images", "eval", predictions=tmp_path / "masks.json",
                                        model="masks")
        await lake.create_dataset_version("eval", "v2", parent="v1", add_annotation_sets=[second.set_ids["PREDICTION"]])
        assert first.set_ids["PREDICTION"] != second.set_ids["PREDICTION"]
        await lake.export_coco("eval/v2", out)
    # A confidence of 1.0 is a visible point, not COCO's flag 1 (labelled, hidden), which the web app leaves out.
    sure = await AnnotationRecord.get_pymongo_collection().find_one({"geometry.type": "KEYPOINTS", "score": 0.5})
    assert sure is not None and [p["visible"] for p in sure["geometry"]["points"]] == [True, True, True]
    back = json.loads((out / "annotations.json").read_text())
    source = json.loads(annotations.read_text())
    for name, original in (("results-pose.json", pose), ("results-masks.json", masks)):
        exported = json.loads((out / name).read_text())
        assert not any("bbox" in entry for entry in exported), name
        assert comparable(exported, back["images"], back["categories"]) == \
            comparable(original, source["images"], source["categories"]), name
    ground, exported_ground = COCO(str(annotations)), COCO(str(out / "annotations.json"))
    for name, original, kind in (("results-pose.json", tmp_path / "pose.json", "keypoints"),
                                 ("results-masks.json", tmp_path / "masks.json", "segm")):
        stats = []
        for truth, results in ((ground, original), (exported_ground, out / name)):
            loaded = truth.loadRes(str(results))
            areas = sorted((a["score"], a["area"]) for a in loaded.loadAnns(loaded.getAnnIds()))
            scored = COCOeval(truth, loaded, kind)
            # The one category whose ground truth has keypoints, or masks (ids renumbered on export).
            scored.params.catIds = truth.getCatIds(catNms=["person" if kind == "keypoints" else "dent"])
            scored.params.kpt_oks_sigmas = np.array([0.26, 0.25, 0.25]) / 10  # three keypoints, not COCO's 17
            scored.evaluate()
            scored.accumulate()
            scored.summarize()
            stats.append((areas, list(scored.stats)))
        assert stats[0] == stats[1], name


async def test_an_export_gives_images_without_a_coco_id_one_no_other_image_has(served: Served, make_token: MakeToken,
                                                                              tmp_path: Path) -> None:
    """An image whose COCO id is not a number (or taken) gets a fallback id from 1,000,000 on; one of the
    file's own ids there made the export spin for good on the id it had taken. The fallbacks are given
    once every image's own id is known: an image before it took 1,000,000 from one listed after it."""
    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    write_images(tmp_path / "images")
    coco = {"images": [{"id": "b", "file_name": "b.png", "width": 80, "height": 60},
                       {"id": 1_000_000, "file_name": "a.png", "width": 64, "height": 48}],
            "categories": [{"id": 1, "name": "scratch"}],
            "annotations": [{"id": 1, "image_id": "b", "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0}]}
    (tmp_path / "ids.json").write_text(json.dumps(coco))
    imported = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(tmp_path / "ids.json"), "--images",
                                       str(tmp_path / "images"), "--dataset", "ids", "--version", "v1")
    assert imported.returncode == 0, imported.stderr
    exported = await asyncio.to_thread(graphlake, served, token, "export", "coco", "ids/v1", str(tmp_path / "out"))
    assert exported.returncode == 0, exported.stderr
    back = json.loads((tmp_path / "out" / "annotations.json").read_text())
    ids = {i["file_name"]: i["id"] for i in back["images"]}
    assert ids["a.png"] == 1_000_000 and ids["b.png"] == 1_000_001
    assert [a["image_id"] for a in back["annotations"]] == [ids["b.png"]]


async def test_an_uncompressed_rle_without_its_size_takes_its_images(served: Served, make_token: MakeToken,
                                                                    tmp_path: Path) -> None:
    """COCO's crowd files may leave `size` out of an uncompressed RLE: its image's height and width
    are its size (pycocotools refused the segmentation, with a traceback, after the images were
    stored). A compressed one without it, or two categories of one id (the second took the first's
    annotations, relabelled without a word), are refused before anything is written."""
    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    source = json.loads(annotations.read_text())
    for change, named in ((lambda c: c["annotations"][2]["segmentation"].pop("size"),
                           "annotation 2 of annotations.json: segmentation is a compressed RLE without its size"),
                          (lambda c: c["categories"].append({"id": 3, "name": "crack"}),
                           "category id 3 appears twice in annotations.json"),
                          (lambda c: c["categories"].append({"id": 4, "name": "dent"}),
                           "category name 'dent' appears twice in annotations.json")):
        broken = json.loads(json.dumps(source))
        change(broken)
        annotations.write_text(json.dumps(broken))
        refused = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(annotations),
                                          "--images", str(tmp_path / "images"), "--dataset", "parts")
        said = " ".join(refused.stderr.split())
        assert refused.returncode == 1 and named in said and "Traceback" not in said, said
    assert await counts() == (0, 0, 0)
    del source["annotations"][3]["segmentation"]["size"]  # uncompressed: the image is 80 x 60
    annotations.write_text(json.dumps(source))
    done = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(annotations),
                                   "--images", str(tmp_path / "images"), "--dataset", "parts", "--version", "v1")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    exported = await asyncio.to_thread(graphlake, served, token, "export", "coco", "parts/v1", str(out))
    assert exported.returncode == 0, exported.stderr
    back = json.loads((out / "annotations.json").read_text())
    assert comparable(back, back["images"], back["categories"]) == comparable(source, source["images"], source["categories"])


async def test_what_no_record_can_hold_is_counted_not_dropped_silently(served: Served, make_token: MakeToken,
                                                                      tmp_path: Path) -> None:
    """A box of no size (the API takes none), a polygon part under 3 points, keypoints on a category
    without keypoint names: the import left them out without a word, and an annotation of nothing
    else vanished from the export. They are counted by reason (`left_out`) and said; a negative width
    is no COCO box, refused before anything is written."""
    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    coco = json.loads(annotations.read_text())
    coco["annotations"] += [
        {"id": 200, "image_id": 7, "category_id": 1, "bbox": [3, 3, 0, 4], "area": 0.0, "iscrowd": 0, "segmentation": []},
        {"id": 201, "image_id": 7, "category_id": 3, "bbox": [1, 1, 5, 5], "area": 25.0, "iscrowd": 0,
         "segmentation": [[1, 1, 6, 1], [1, 1, 6, 1, 6, 6]], "keypoints": [2, 2, 2], "num_keypoints": 1}]
    negative = json.loads(json.dumps(coco))
    negative["annotations"][0]["bbox"] = [10, 12, -20, 8.5]
    annotations.write_text(json.dumps(negative))
    refused = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(annotations),
                                      "--images", str(tmp_path / "images"), "--dataset", "parts")
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 1 and "annotation 0 of annotations.json: bbox is [x, y, width, height], the width and " \
        "height not negative" in said, said
    assert await counts() == (0, 0, 0)
    annotations.write_text(json.dumps(coco))
    done = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(annotations),
                                   "--images", str(tmp_path / "images"), "--dataset", "parts", "--version", "v1")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["left_out"] == {"bbox of no size": 1, "polygon under 3 points": 1, "keypoints without names": 1,
                                   "annotation with nothing stored": 1}
    assert summary["records_added"] == {"GROUND_TRUTH": 10 + 2}  # 201's box and its one whole polygon
    said = " ".join(done.stderr.split())
    assert "left out, as no record can hold them: 1 bbox of no size, 1 annotation with nothing stored" in said, said
    again = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(annotations),
                                    "--images", str(tmp_path / "images"), "--dataset", "parts")
    assert again.returncode == 0 and json.loads(again.stdout)["kept"] == ["GROUND_TRUTH"], again.stderr


async def test_an_annotations_other_keys_come_back(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """CVAT writes `attributes` (occluded, rotation, a track id) on every annotation, other tools keys
    of their own: the import dropped them without a word, and the export said everything else came
    back as it went in. They ride on the records (`coco_extra`) and come back; a `graphlake_source`
    of an earlier export is the records' own source here, so not kept twice."""
    from documents.roles import Role

    write_images(tmp_path / "images")
    annotations, results = coco_files(tmp_path)
    coco = json.loads(annotations.read_text())
    for annotation in coco["annotations"]:
        annotation["attributes"] = {"occluded": annotation["id"] % 2 == 0, "rotation": 0.0, "track_id": annotation["id"]}
    coco["annotations"][0]["graphlake_source"] = "MODEL"
    annotations.write_text(json.dumps(coco))
    found = json.loads(results.read_text())
    found[0]["tracker"] = "sort"
    results.write_text(json.dumps(found))
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        await lake.import_coco(annotations, tmp_path / "images", "parts", version="v1", predictions=results)
        await lake.export_coco("parts/v1", tmp_path / "out")
    back = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert {a["id"]: a["attributes"] for a in back["annotations"]} == {a["id"]: a["attributes"] for a in coco["annotations"]}
    assert {a["graphlake_source"] for a in back["annotations"]} == {"HUMAN"}
    assert [r.get("tracker") for r in json.loads((tmp_path / "out" / "results.json").read_text())] == ["sort", None]


async def test_a_file_name_with_dot_or_doubled_slashes_is_stored_at_its_plain_path(served: Served, make_token: MakeToken,
                                                                                  tmp_path: Path) -> None:
    """`./a.png` and `sub//c.png` name files under --images like any other: the server refused them as
    paths (after the import had made its schema and sets). They are stored at a.png and sub/c.png."""
    from documents.roles import Role

    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    coco = json.loads(annotations.read_text())
    coco["images"][0]["file_name"], coco["images"][2]["file_name"] = "./a.png", "sub//c.png"
    annotations.write_text(json.dumps(coco))
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        done = await lake.import_coco(annotations, tmp_path / "images", "parts", version="v1")
        await lake.export_coco("parts/v1", tmp_path / "out")
    assert done.images_uploaded == 3
    back = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert sorted(i["file_name"] for i in back["images"]) == ["a.png", "b.png", "sub/c.png"]
    for name in SIZES:
        assert (tmp_path / "out" / "images" / name).read_bytes() == (tmp_path / "images" / name).read_bytes()


async def test_a_file_name_through_dot_dot_inside_the_images_is_its_plain_path(served: Served, make_token: MakeToken,
                                                                               tmp_path: Path, one_image_a_stage: None) -> None:
    """`sub/../sub/c.png` names a file under --images, but the server refuses it as a path: the import
    stopped there, after the stages before it were stored. It is stored at sub/c.png (and exported
    there); `x/../a.png` beside `a.png` is one file named twice, refused before anything is written.
    An images folder of links into a cache (DVC, git-annex) is read through them: the names are
    judged, not where the user's links lead (that was refused as leading outside --images)."""
    from documents.roles import Role

    write_images(tmp_path / "store")
    annotations, _ = coco_files(tmp_path)
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    for name in SIZES:
        os.symlink(tmp_path / "store" / name, images / name)
    coco = json.loads(annotations.read_text())
    coco["images"][1]["file_name"] = "x/../a.png"
    annotations.write_text(json.dumps(coco))
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        with pytest.raises(GraphlakeClientError, match=r"image file_name 'a\.png' appears twice") as refused:
            await lake.import_coco(annotations, images, "parts", version="v1")
        assert refused.value.code == "BAD_USER_INPUT" and await counts() == (0, 0, 0)
        coco["images"][1]["file_name"], coco["images"][2]["file_name"] = "b.png", "sub/../sub/c.png"
        annotations.write_text(json.dumps(coco))
        done = await lake.import_coco(annotations, images, "parts", version="v1")
        await lake.export_coco("parts/v1", tmp_path / "out")
    assert done.images_uploaded == 3 and done.records_added["GROUND_TRUTH"] == 10
    back = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert sorted(i["file_name"] for i in back["images"]) == ["a.png", "b.png", "sub/c.png"]
    for name in SIZES:
        assert (tmp_path / "out" / "images" / name).read_bytes() == (tmp_path / "store" / name).read_bytes()


async def test_an_image_file_name_cannot_reach_outside_the_images_directory(served: Served, make_token: MakeToken,
                                                                           tmp_path: Path) -> None:
    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not for the lake")
    for hostile in ("../secret.png", str(secret)):  # relative and absolute, both real files
        coco = json.loads(annotations.read_text())
        coco["images"][0]["file_name"] = hostile
        annotations.write_text(json.dumps(coco))
        refused = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(annotations),
                                          "--images", str(tmp_path / "images"), "--dataset", "parts")
        assert refused.returncode == 1 and "lead outside" in refused.stderr, (hostile, refused.stderr)
    assert await counts() == (0, 0, 0)  # nothing uploaded


async def interrupted(lake: Client, annotations: Path, images: Path, dataset: str, lost_at: int,
                      predictions: Path | None = None) -> None:
    """An import whose connection is lost at its `lost_at`-th addAnnotations (1 first)."""
    from graphlake_client.errors import GraphlakeClientError

    execute, sent = lake.execute, []

    async def losing(document: str, variables: dict | None = None) -> Any:
        if document == ops.ADD_ANNOTATIONS:
            sent.append(variables)
            if len(sent) == lost_at:
                raise GraphlakeClientError("connection lost", "UNAVAILABLE")
        return await execute(document, variables)

    lake.execute = losing  # type: ignore[method-assign]
    try:
        with pytest.raises(GraphlakeClientError, match="connection lost"):
            await lake.import_coco(annotations, images, dataset, version="v1", predictions=predictions)
    finally:
        lake.execute = execute  # type: ignore[method-assign]


@pytest.fixture
def one_image_a_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    """One image a stage, one stage in a step at a time: which records go in before a loss is certain."""
    from graphlake_client import coco, dataset_import

    monkeypatch.setattr(coco, "STAGE_IMAGES", 1)
    monkeypatch.setattr(dataset_import, "CHUNKS_PER_STEP", 1)


async def test_an_rle_that_does_not_cover_its_mask_is_refused_before_anything_is_written(
        served: Served, make_token: MakeToken, tmp_path: Path, one_image_a_stage: None) -> None:
    """Garbage compressed counts, or uncompressed runs past the mask's end, were refused by
    pycocotools only when their image's stage came, after the stages before it were stored; runs
    that stop short were stored as a mask of whatever pycocotools' buffer held. Every RLE is decoded,
    and its runs must cover height x width exactly, before anything is written."""
    from documents.roles import Role

    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    for runs, said in (("!!!garbage~~~", "'!' is no character of a compressed RLE"),
                         ("", "its runs cover 0 pixels, its size [60, 80] is 4800"),
                         ([4000, 900], "its runs cover 4900 pixels"),
                         ([100, 50, 10], "its runs cover 160 pixels"),
                         ([100, -50, 4750], "whole numbers, not negative")):
        coco = json.loads(coco_files(tmp_path)[0].read_text())
        coco["annotations"][2 if isinstance(runs, str) else 3]["segmentation"]["counts"] = runs  # image 8's crowds
        annotations.write_text(json.dumps(coco))
        async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
            with pytest.raises(GraphlakeClientError) as refused:
                await lake.import_coco(annotations, tmp_path / "images", "masks")
        where = f"annotation {2 if isinstance(runs, str) else 3} of annotations.json: segmentation is not a valid RLE"
        assert refused.value.code == "BAD_USER_INPUT" and where in str(refused.value) and said in str(refused.value), \
            refused.value
    assert await counts() == (0, 0, 0)


async def test_a_rerun_finishes_an_interrupted_import(served: Served, make_token: MakeToken, tmp_path: Path,
                                                      one_image_a_stage: None) -> None:
    """An import that died part-way (here: its connection lost at the second image's records) left
    whole images' records in both sets. A rerun adds the other images' records, no record twice,
    and the version and the export are those of an import that never stopped."""
    from documents.roles import Role

    write_images(tmp_path / "images")
    annotations, results = coco_files(tmp_path)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        # Image 7's ground truth and predictions went in; image 8's ground truth does not.
        await interrupted(lake, annotations, tmp_path / "images", "resumed", 3, results)
        held = await AnnotationRecord.get_pymongo_collection().count_documents({})
        assert held == 5  # image 7: 4 ground truth (a box; a box and its polygon's 2 parts), 1 prediction
        datums = await Datum.get_pymongo_collection().count_documents({})  # image 9's, if its stage got so far
        done = await lake.import_coco(annotations, tmp_path / "images", "resumed", version="v1", predictions=results)
        assert done.resumed == ["GROUND_TRUTH", "PREDICTION"] and done.kept == []
        assert done.records_added == {"GROUND_TRUTH": 6, "PREDICTION": 2} and done.datums_created == 3 - datums
        assert await counts() == (3 + 2, 3, 13)  # images and masks, a datum per image, every record once
        again = await lake.import_coco(annotations, tmp_path / "images", "resumed", version="v1", predictions=results)
        assert again.kept == ["GROUND_TRUTH", "PREDICTION"] and again.records_added == {}
        await lake.export_coco("resumed/v1", tmp_path / "out")
    back, source = json.loads((tmp_path / "out" / "annotations.json").read_text()), json.loads(annotations.read_text())
    assert comparable(back, back["images"], back["categories"]) == comparable(source, source["images"], source["categories"])
    assert comparable(json.loads((tmp_path / "out" / "results.json").read_text()), back["images"], back["categories"]) == \
        comparable(json.loads(results.read_text()), source["images"], source["categories"])


async def test_a_rerun_adds_nothing_twice_when_the_stopped_imports_batch_lands_late(
        served: Served, make_token: MakeToken, tmp_path: Path, one_image_a_stage: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The stopped import's last batch reaches the server only after the rerun counted what each set
    holds (it was still in flight): the rerun sends those records again, and their keys
    (`coco:<annotation id>:<shape>`) keep the set from holding them twice."""
    from documents.roles import Role
    from graphlake_client import coco
    from graphlake_client.errors import GraphlakeClientError

    write_images(tmp_path / "images")
    annotations, results = coco_files(tmp_path)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        execute, in_flight = lake.execute, []

        async def lost_in_flight(document: str, variables: dict | None = None) -> Any:
            if document == ops.ADD_ANNOTATIONS and not in_flight and variables["records"][0].get("score") is None:
                in_flight.append(variables)  # sent, and still on its way when the client stops
                raise GraphlakeClientError("connection lost", "UNAVAILABLE")
            return await execute(document, variables)

        lake.execute = lost_in_flight  # type: ignore[method-assign]
        with pytest.raises(GraphlakeClientError, match="connection lost"):
            await lake.import_coco(annotations, tmp_path / "images", "late", version="v1", predictions=results)
        lake.execute = execute  # type: ignore[method-assign]
        counted = coco.records_held

        async def then_it_lands(*args: Any, **kwargs: Any) -> Any:
            held = await counted(*args, **kwargs)
            if in_flight:
                landed = (await execute(ops.ADD_ANNOTATIONS, in_flight.pop()))["addAnnotations"]
                assert landed["count"] > 0
            return held

        monkeypatch.setattr(coco, "records_held", then_it_lands)
        done = await lake.import_coco(annotations, tmp_path / "images", "late", version="v1", predictions=results)
        assert not in_flight  # it did land, after the count
        assert await counts() == (3 + 2, 3, 13)  # every record once
        assert len(await AnnotationRecord.get_pymongo_collection().distinct("key")) == 13  # each its own name
        assert sum(done.records_added.values()) < 13  # what landed late was found, not counted as added
        await lake.export_coco("late/v1", tmp_path / "out")
    back, source = json.loads((tmp_path / "out" / "annotations.json").read_text()), json.loads(annotations.read_text())
    assert comparable(back, back["images"], back["categories"]) == comparable(source, source["images"], source["categories"])


async def test_a_rerun_with_other_images_stops_before_it_adds(served: Served, make_token: MakeToken, tmp_path: Path,
                                                              one_image_a_stage: None) -> None:
    """After an interrupted import, the file's image ids swapped between two files, or an image's
    bytes changed (a new asset, so a new datum): the records the set holds are not this file's
    images', and the rerun stops with CONFLICT instead of leaving images without records."""
    from documents.roles import Role
    from graphlake_client.errors import GraphlakeClientError

    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        await interrupted(lake, annotations, tmp_path / "images", "moved", 2)  # image 7 (a.png) has its records
        before = await counts()
        swapped = json.loads(annotations.read_text())
        swapped["images"][0]["file_name"], swapped["images"][1]["file_name"] = "b.png", "a.png"
        (tmp_path / "swapped.json").write_text(json.dumps(swapped))
        with pytest.raises(GraphlakeClientError, match="4 of them not as this file makes them") as refused:
            await lake.import_coco(tmp_path / "swapped.json", tmp_path / "images", "moved", version="v1")
        assert refused.value.code == "CONFLICT" and await counts() == before
        Image.new("RGB", (64, 48), (1, 2, 3)).save(tmp_path / "images" / "a.png")  # image 7, other bytes
        with pytest.raises(GraphlakeClientError, match="on the datums of earlier files for 1 images") as refused:
            await lake.import_coco(annotations, tmp_path / "images", "moved", version="v1")
        assert refused.value.code == "CONFLICT"
    assert (await counts())[2] == before[2]  # no record added


async def test_every_stage_counts_the_records_it_adds(served: Served, make_token: MakeToken, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """One image a stage, two stages adding at once: the counts add up (a count read before the
    other stage's addition and written after it lost that addition)."""
    from documents.roles import Role
    from graphlake_client import coco
    from graphlake_client.errors import GraphlakeClientError

    monkeypatch.setattr(coco, "STAGE_IMAGES", 1)
    write_images(tmp_path / "images")
    annotations, results = coco_files(tmp_path)
    coco_file = json.loads(annotations.read_text())
    coco_file["images"].append(coco_file["images"][0])
    (tmp_path / "twice.json").write_text(json.dumps(coco_file))
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR), resume=ResumeState(tmp_path / "r.json")) as lake:
        with pytest.raises(GraphlakeClientError, match=r"image id 7 appears twice in twice\.json"):
            await lake.import_coco(tmp_path / "twice.json", tmp_path / "images", "staged")
        coco_file["images"][-1] = {**coco_file["images"][0], "id": 70}  # another id, the same file
        (tmp_path / "twice.json").write_text(json.dumps(coco_file))
        with pytest.raises(GraphlakeClientError, match=r"image file_name 'a\.png' appears twice"):
            await lake.import_coco(tmp_path / "twice.json", tmp_path / "images", "staged")
        assert await counts() == (0, 0, 0)
        done = await lake.import_coco(annotations, tmp_path / "images", "staged", predictions=results)
    assert done.records_added == {"GROUND_TRUTH": 10, "PREDICTION": 3}
    assert await counts() == (3 + 2, 3, 13)


async def test_two_images_naming_one_file_two_ways_are_refused(served: Served, make_token: MakeToken,
                                                               tmp_path: Path) -> None:
    """`a.png` and `./a.png` are one path in the collection (the import stores ./a.png at a.png): two
    image entries naming it so share one asset and one datum, as two entries of one file_name would,
    which the import refuses before anything is written. The check compared the names as written."""
    from documents.roles import Role

    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    coco = json.loads(annotations.read_text())
    coco["images"][1]["file_name"] = "./" + coco["images"][0]["file_name"]
    annotations.write_text(json.dumps(coco))
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_coco(annotations, tmp_path / "images", "twice", version="v1")
    assert refused.value.code == "BAD_USER_INPUT" and "twice" in str(refused.value), refused.value


async def set_names() -> list[str]:
    """Every annotation set's name, sorted (a name twice: a second set of one import's records)."""
    return sorted(s["name"] for s in await AnnotationSet.get_pymongo_collection().find({}).to_list())


async def test_a_changed_category_list_finds_the_set_it_made(served: Served, make_token: MakeToken,
                                                              tmp_path: Path) -> None:
    """The same annotations with one more (unused) category, or their categories in another order (a
    re-export), made a schema version and a second set of the same name holding every record again:
    the set is found on the schema it is on, and kept. Records of a label that schema lacks are a
    CONFLICT naming it: a set cannot move to another schema."""
    from documents.roles import Role

    write_images(tmp_path / "images")
    annotations, results = coco_files(tmp_path)
    coco = json.loads(annotations.read_text())
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        first = await lake.import_coco(annotations, tmp_path / "images", "cats", predictions=results, model="m1")
        before, names = await counts(), await set_names()
        assert names == ["cats ground truth", "cats m1 predictions"]
        # ... and a new category whose one annotation stores nothing (a box of no size: left out whole).
        nothing = {"id": 999, "image_id": coco["images"][0]["id"], "category_id": 12, "bbox": [1, 1, 0, 0], "area": 0, "iscrowd": 0}
        for changed in ({**coco, "categories": [*coco["categories"], {"id": 11, "name": "crack"}]},
                        {**coco, "categories": coco["categories"][::-1]},
                        {**coco, "categories": [*coco["categories"], {"id": 12, "name": "chip"}],
                         "annotations": [*coco["annotations"], nothing]}):
            (tmp_path / "changed.json").write_text(json.dumps(changed))
            again = await lake.import_coco(tmp_path / "changed.json", tmp_path / "images", "cats", predictions=results,
                                           model="m1")
            assert sorted(again.kept) == ["GROUND_TRUTH", "PREDICTION"] and again.set_ids == first.set_ids
            assert again.records_added == {} and await counts() == before and await set_names() == names
        coco["categories"].append({"id": 11, "name": "crack"})
        coco["annotations"][0]["category_id"] = 11
        (tmp_path / "relabelled.json").write_text(json.dumps(coco))
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_coco(tmp_path / "relabelled.json", tmp_path / "images", "cats")
    assert refused.value.code == "CONFLICT"
    assert "'cats ground truth' is on schema 'cats' version 1, whose labels lack 'crack'" in str(refused.value)
    assert await counts() == before and await set_names() == names


async def test_whole_float_ids_are_read_as_whole_numbers(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """pandas and numpy write ids as 7.0, which pycocotools reads: they were refused as "a number or
    a string, not 7.0". Read as 7, such a file is the one with whole numbers (a rerun of it keeps the
    set). A fraction is refused as what it is not."""
    from documents.roles import Role

    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    coco = json.loads(annotations.read_text())
    floated = json.loads(annotations.read_text())
    for entry in (*floated["images"], *floated["categories"], *floated["annotations"]):
        for key in ("id", "image_id", "category_id"):
            if key in entry:
                entry[key] = float(entry[key])
    (tmp_path / "floats.json").write_text(json.dumps(floated))
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        done = await lake.import_coco(tmp_path / "floats.json", tmp_path / "images", "floats")
        assert done.records_added == {"GROUND_TRUTH": 10}  # as the file with whole numbers makes (coco_files)
        before = await counts()
        assert (await lake.import_coco(annotations, tmp_path / "images", "floats")).kept == ["GROUND_TRUTH"]
        assert await counts() == before
        coco["images"][0]["id"] = 7.5
        (tmp_path / "fraction.json").write_text(json.dumps(coco))
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_coco(tmp_path / "fraction.json", tmp_path / "images", "floats")
    assert "image 0 of fraction.json: id is a whole number or a string, not 7.5" in str(refused.value)


async def test_a_first_import_builds_each_annotations_records_once(served: Served, make_token: MakeToken,
                                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the file makes, to compare with what the set holds, was built for every annotation and
    held through the import (1.5 GB at 200,000 polygons): into an empty set it is not built, each
    annotation's records made once, as they are added; a rerun builds it to compare."""
    from documents.roles import Role
    from graphlake_client import coco

    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    built = []

    def counted(annotation: dict[str, Any], *args: Any) -> Any:
        built.append(annotation["id"])
        return records_of(annotation, *args)

    records_of = coco.records_of
    monkeypatch.setattr(coco, "records_of", counted)
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        await lake.import_coco(annotations, tmp_path / "images", "once")
        assert sorted(built) == [100, 101, 102, 103, 104]
        built.clear()
        assert (await lake.import_coco(annotations, tmp_path / "images", "once")).kept == ["GROUND_TRUTH"]
        assert sorted(built) == [100, 101, 102, 103, 104]
