"""YOLO and Hugging Face export (#19) against the real server, from a version with splits: the data is
the COCO test's (a few Pillow images, an annotation of every kind) imported through the client, one
image more without annotations, and each image given a split before the version freezes them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from graphlake_client import Client
from graphlake_client import operations as ops
from graphlake_client.coco import CocoImport
from graphlake_client.dataset_import import dataset_version
from tests.conftest import MakeToken, Served
from tests.test_exchange_coco import SIZES, coco_files, graphlake, write_images

pytestmark = [pytest.mark.asyncio, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

UPDATE_DATUM = """mutation ($input: UpdateDatumInput!) { updateDatum(input: $input) { id split } }"""
EMPTY = ("d.png", (24, 16))  # an image without annotations, alone in its split
SPLITS_YOLO = {"TRAIN": "train", "VALIDATION": "val", "TEST": "test", "UNASSIGNED": "unassigned"}


async def a_version(lake: Client, tmp_path: Path, splits: dict[str, str], *, mount: str | None = None,
                    coco: dict[str, Any] | None = None,
                    then: Callable[[CocoImport], Awaitable[None]] | None = None) -> str:
    """Import the COCO test's data (or `coco`, over the same images) plus EMPTY, give each image the
    split `splits` names for its file, run `then` on what was imported, and freeze version `data/v1`."""
    write_images(tmp_path / "images")
    pixels = np.random.default_rng(9).integers(0, 255, (EMPTY[1][1], EMPTY[1][0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "images" / EMPTY[0])
    annotations, results = coco_files(tmp_path)
    source = coco or json.loads(annotations.read_text())
    source["images"].append({"id": 10, "file_name": EMPTY[0], "width": EMPTY[1][0], "height": EMPTY[1][1]})
    annotations.write_text(json.dumps(source))
    done = await lake.import_coco(annotations, tmp_path / "images", "data", mount=mount, predictions=results)
    for image, datum in zip(source["images"], done.datum_ids, strict=True):
        await lake.execute(UPDATE_DATUM, {"input": {"id": datum, "split": splits[image["file_name"]]}})
    if then is not None:
        await then(done)
    await dataset_version(lake, "data", "v1", done.datum_ids, list(done.set_ids.values()))
    return "data/v1"


def ultralytics_label_path(image: Path) -> Path:
    """Where Ultralytics looks for an image's labels (its img2label_paths): the last /images/ in the
    path becomes /labels/, the extension .txt."""
    sa, sb = "/images/", "/labels/"
    return Path(sb.join(str(image).rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt")


def check_yolo_rules(out: Path) -> tuple[dict[str, Any], dict[str, list[list[float]]]]:
    """The format's rules on a whole export; its data.yaml and every image's lines, by image path."""
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["path"] == str(out.resolve())
    names = data["names"]
    assert sorted(names) == list(range(len(names)))  # 0-based, no gaps
    assert {"train", "val"} <= data.keys()
    for key in ("train", "val", "test"):
        if key in data:
            assert (out / data[key]).is_dir() and data[key] == f"images/{key}"
    kpt = data.get("kpt_shape")
    lines: dict[str, list[list[float]]] = {}
    widths = set()
    for image in sorted((out / "images").rglob("*.png")):
        label = ultralytics_label_path(image)
        assert label.is_file(), f"no label file where Ultralytics looks for {image}"
        rows = [line.split() for line in label.read_text().splitlines()]
        for row in rows:
            assert int(row[0]) in names and row[0] == str(int(row[0]))
            values = [float(v) for v in row[1:]]
            coordinates = [v for n, v in enumerate(values) if not (kpt and n >= 4 and (n - 4) % 3 == 2)]
            assert all(0 <= v <= 1 for v in coordinates), row  # a pose's visibility flags aside
            if kpt:  # pose: the box, then x y v for each of the same number of keypoints
                assert kpt[1] == 3 and len(values) == 4 + kpt[0] * 3, row
                assert all(v in (0, 1, 2) for v in values[4 + 2::3]), row
            else:
                assert len(values) == 4 or (len(values) >= 6 and len(values) % 2 == 0), row
            widths.add(len(values))
            if len(values) == 4:
                assert values[2] > 0 and values[3] > 0
        lines[str(image.relative_to(out / "images"))] = [[float(v) for v in row] for row in rows]
    assert len(widths) <= 1 or (not kpt and 4 not in widths), "a dataset is one task: detect, segment or pose"
    assert sorted(p.relative_to(out / "labels") for p in (out / "labels").rglob("*.txt")) == \
        sorted(p.relative_to(out / "images").with_suffix(".txt") for p in (out / "images").rglob("*.png"))
    return data, lines


def near(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) < 1e-5 for x, y in zip(a, b, strict=True))


def all_near(got: list[list[float]], expected: list[list[float]]) -> bool:
    """The same lines in any order, numbers to the six decimals the export writes."""
    return len(got) == len(expected) and all(near(a, b) for a, b in zip(sorted(got), sorted(expected), strict=True))


@pytest.mark.parametrize("mount", [None, "lab"])
async def test_yolo_export_follows_the_format(served: Served, make_token: MakeToken, tmp_path: Path,
                                              mount: str | None) -> None:
    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    coco = json.loads(coco_files(tmp_path)[0].read_text())
    # A box past the image's right and bottom edges (a is 64 x 48): cut at them.
    coco["annotations"].append({"id": 105, "image_id": 7, "category_id": 3, "bbox": [50, 40, 30, 20],
                                "area": 600.0, "iscrowd": 0})
    splits = {"a.png": "TRAIN", "b.png": "VALIDATION", "sub/c.png": "TEST", EMPTY[0]: "TRAIN"}
    async with Client(served.base_url, token) as lake:
        version = await a_version(lake, tmp_path, splits, mount=mount, coco=coco)
    out = tmp_path / "out"
    exported = await asyncio.to_thread(graphlake, served, token, "export", "yolo", version, str(out))
    assert exported.returncode == 0, exported.stderr
    summary = json.loads(exported.stdout)
    # Boxes only: not every object has a polygon. Keypoints and predictions do not map, nor do b.png's
    # two crowds (iscrowd 1, a box and a mask each): a region of many objects is not an object to learn.
    assert summary["format"] == "detect" and summary["images"] == 4 and summary["objects"] == 4
    assert summary["left_out"] == {"CROWD": 4, "KEYPOINTS": 1, "PREDICTION": 3}
    assert summary["splits"] == {"train": 2, "val": 1, "test": 1}
    data, lines = check_yolo_rules(out)
    assert data["names"] == {0: "scratch", 1: "dent", 2: "person"}
    assert data["train"] == "images/train" and data["val"] == "images/val" and data["test"] == "images/test"
    for name, split in splits.items():
        assert (out / "images" / SPLITS_YOLO[split] / name).read_bytes() == (tmp_path / "images" / name).read_bytes()
    assert lines["train/d.png"] == []  # a background image: an empty label file
    assert all_near(lines["train/a.png"], [
        [0, (10 + 10) / 64, (12 + 4.25) / 48, 20 / 64, 8.5 / 48],  # scratch 100
        [1, 12 / 64, 12 / 48, 20 / 64, 20 / 48],  # dent 101: its box (its polygon parts' bounds differ)
        [1, (50 + 64) / 2 / 64, (40 + 48) / 2 / 48, 14 / 64, 8 / 48]])  # 105, cut at the edges
    assert lines["val/b.png"] == [] and lines["test/sub/c.png"][0][0] == 2


async def test_yolo_export_writes_segments_when_every_object_has_a_polygon(served: Served, make_token: MakeToken,
                                                                           tmp_path: Path) -> None:
    from documents.roles import Role

    coco = json.loads(coco_files(tmp_path)[0].read_text())
    coco["annotations"] = [a for a in coco["annotations"] if a["id"] == 101]  # two polygon parts
    coco["annotations"].append({"id": 106, "image_id": 8, "category_id": 1, "iscrowd": 0, "area": 50.0,
                                "segmentation": [[70, 50, 90, 50, 90, 70, 70, 70]]})  # past b's edges (80 x 60)
    splits = {"a.png": "TRAIN", "b.png": "VALIDATION", "sub/c.png": "VALIDATION", EMPTY[0]: "UNASSIGNED"}
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        summary = await lake.export_yolo(await a_version(lake, tmp_path, splits, coco=coco), tmp_path / "out")
    assert summary["format"] == "segment" and summary["objects"] == 3  # one line per polygon part
    assert summary["left_out"] == {"PREDICTION": 3}
    data, lines = check_yolo_rules(tmp_path / "out")
    assert "test" not in data and (tmp_path / "out" / "images" / "unassigned" / EMPTY[0]).is_file()
    assert all_near(lines["train/a.png"], [
        [1, 2 / 64, 2 / 48, 20 / 64, 2 / 48, 20 / 64, 20 / 48],
        [1, 30 / 64, 30 / 48, 40 / 64, 30 / 48, 40 / 64, 40 / 48, 30 / 64, 40 / 48]])
    assert all_near(lines["val/b.png"], [[0, 70 / 80, 50 / 60, 1, 50 / 60, 1, 1, 70 / 80, 1]])


async def test_yolo_export_writes_poses_when_every_object_has_the_same_keypoints(served: Served, make_token: MakeToken,
                                                                                 tmp_path: Path) -> None:
    from documents.roles import Role

    coco = json.loads(coco_files(tmp_path)[0].read_text())
    coco["annotations"] = [a for a in coco["annotations"] if a["id"] == 104]  # nose seen, left eye hidden, right not labelled
    coco["annotations"].append({"id": 107, "image_id": 7, "category_id": 5, "bbox": [30, 10, 20, 30], "area": 600.0,
                                "iscrowd": 0, "keypoints": [35, 15, 2, 40, 15, 2, 45, 20, 1], "num_keypoints": 3})
    splits = {"a.png": "TRAIN", "b.png": "VALIDATION", "sub/c.png": "VALIDATION", EMPTY[0]: "TRAIN"}
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        summary = await lake.export_yolo(await a_version(lake, tmp_path, splits, coco=coco), tmp_path / "out")
    assert summary["format"] == "pose" and summary["objects"] == 2 and summary["left_out"] == {"PREDICTION": 3}
    data, lines = check_yolo_rules(tmp_path / "out")
    assert data["kpt_shape"] == [3, 3]
    assert all_near(lines["train/a.png"], [[2, 40 / 64, 25 / 48, 20 / 64, 30 / 48,
                                            35 / 64, 15 / 48, 2, 40 / 64, 15 / 48, 2, 45 / 64, 20 / 48, 1]])
    assert all_near(lines["val/sub/c.png"], [[2, 14 / 32, 19 / 40, 20 / 32, 30 / 40,
                                              10 / 32, 8 / 40, 2, 14 / 32, 7 / 40, 1, 0, 0, 0]])


@pytest.mark.parametrize("mount", [None, "lab"])
async def test_hf_export_loads_with_datasets(served: Served, make_token: MakeToken, tmp_path: Path,
                                             mount: str | None) -> None:
    import datasets

    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    # Every split the builder knows, and one it does not (unassigned: named in the README); the test
    # split's only image has no objects, which a JSON-lines metadata file could not type.
    splits = {"a.png": "TRAIN", "b.png": "TRAIN", "sub/c.png": "UNASSIGNED", EMPTY[0]: "TEST"}
    async with Client(served.base_url, token) as lake:
        await a_version(lake, tmp_path, {**splits}, mount=mount)
        b = (tmp_path / "images" / "b.png").read_bytes()
        await lake.execute(UPDATE_DATUM, {"input": {"id": (await lake.execute(ops.DATUMS_BY_METADATA, {
            "metadata": [{"path": "coco.file_name", "op": "EQ", "value": "b.png"}]}))["datums"]["edges"][0]["node"]["id"],
            "split": "VALIDATION"}})  # after the version froze: the export keeps TRAIN
    out = tmp_path / "out"
    exported = await asyncio.to_thread(graphlake, served, token, "export", "hf", "data/v1", str(out))
    assert exported.returncode == 0, exported.stderr
    summary = json.loads(exported.stdout)
    assert summary["splits"] == {"train": 2, "unassigned": 1, "test": 1} and summary["objects"] == 3
    assert summary["left_out"] == {"CROWD": 4, "KEYPOINTS": 1, "PREDICTION": 3}  # b.png's two crowds, as in YOLO

    loaded = await asyncio.to_thread(datasets.load_dataset, str(out), cache_dir=str(tmp_path / "hf-cache"))
    assert set(loaded) == {"train", "unassigned", "test"}
    category = loaded["train"].features["objects"]["category"].feature
    assert category.names == ["scratch", "dent", "person"]
    rows = {Path(row["image"].filename).name: row for split in loaded.values() for row in split}
    assert {name: rows[name]["image"].size for name in rows} == {Path(n).name: s for n, s in (*SIZES.items(), EMPTY)}
    assert (out / "train" / "b.png").read_bytes() == b
    named = {name: sorted(zip((category.int2str(c) for c in row["objects"]["category"]), row["objects"]["bbox"],
                              strict=True)) for name, row in rows.items()}
    assert named == {
        "a.png": [("dent", [2, 2, 20, 20]), ("scratch", [10, 12, 20, 8.5])],
        "b.png": [],
        "c.png": [("person", [4, 4, 20, 30])],
        "d.png": [],
    }
    assert loaded["test"][0]["objects"] == {"bbox": [], "category": [], "source": []}


async def test_every_export_says_which_labels_people_made(served: Served, make_token: MakeToken,
                                                          tmp_path: Path) -> None:
    """A ground-truth set may hold a model's labels (pre-labels accepted as they were) and derived
    ones beside people's: COCO (`graphlake_source`), Hugging Face (`objects.source`) and YOLO (a
    sources/ file beside each label file, line for line) each say which kind made each object. An
    object of records from several kinds is the least a person's: MODEL here."""
    import datasets

    from documents.roles import Role
    from graphlake_client import GraphlakeClientError

    async def prelabels(done: CocoImport) -> None:
        found = (await lake.execute(ops.DATUMS_BY_METADATA, {"metadata": [
            {"path": "coco.dataset", "op": "EQ", "value": "data"}]}))["datums"]["edges"]
        image = {e["node"]["metadata"]["coco"]["file_name"]: e["node"] for e in found}

        def record(name: str, label: str, kind: str, geometry: dict[str, Any], source: str, **attributes: Any) -> dict:
            return {"assetId": image[name]["roles"][0]["asset"]["id"], "datumId": image[name]["id"], "kind": kind,
                    "label": label, "geometry": geometry, "attributes": attributes or None,
                    "source": {"kind": source, "name": "prelabel" if source == "MODEL" else "bounds"}}

        await lake.execute(ops.ADD_ANNOTATIONS, {"setId": done.set_ids["GROUND_TRUTH"], "records": [
            record("a.png", "scratch", "BBOX", {"bbox": {"x": 40, "y": 30, "width": 10, "height": 10}}, "MODEL"),
            # A model's outline of annotation 100, whose box a person drew: one object, not all a person's.
            record("a.png", "scratch", "POLYGON", {"polygon": {"points": [{"x": 10, "y": 12}, {"x": 30, "y": 12},
                                                                         {"x": 30, "y": 20}]}}, "MODEL", coco_id=100),
            record("b.png", "dent", "BBOX", {"bbox": {"x": 50, "y": 40, "width": 10, "height": 10}}, "DERIVED")]})

    token = await make_token(Role.CONTRIBUTOR)
    splits = {"a.png": "TRAIN", "b.png": "VALIDATION", "sub/c.png": "TEST", EMPTY[0]: "TRAIN"}
    made = {"a.png": {(10, 12): "MODEL", (2, 2): "HUMAN", (40, 30): "MODEL"},  # by each object's box corner
            "b.png": {(5, 6): "HUMAN", (30, 20): "HUMAN", (50, 40): "DERIVED"}, "c.png": {(4, 4): "HUMAN"}, "d.png": {}}
    trained = {**made, "b.png": {(50, 40): "DERIVED"}}  # b.png's crowds are COCO's only
    async with Client(served.base_url, token) as lake:
        version = await a_version(lake, tmp_path, splits, then=prelabels)

        await lake.export_coco(version, tmp_path / "coco")
        coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
        name = {i["id"]: Path(i["file_name"]).name for i in coco["images"]}
        annotated: dict[str, dict[tuple[float, float], str]] = {n: {} for n in name.values()}
        for annotation in coco["annotations"]:
            annotated[name[annotation["image_id"]]][tuple(annotation["bbox"][:2])] = annotation["graphlake_source"]
        assert annotated == made
        results = json.loads((tmp_path / "coco" / "results.json").read_text())
        assert [r["graphlake_source"] for r in results] == ["MODEL"] * len(results) and results  # the import's model

        await lake.export_hf(version, tmp_path / "hf")
        loaded = await asyncio.to_thread(datasets.load_dataset, str(tmp_path / "hf"), cache_dir=str(tmp_path / "hf-cache"))
        rows = {Path(row["image"].filename).name: row["objects"] for split in loaded.values() for row in split}
        assert {n: {(b[0], b[1]): s for b, s in zip(o["bbox"], o["source"], strict=True)} for n, o in rows.items()} == trained

        summary = await lake.export_yolo(version, tmp_path / "yolo")
        assert summary["format"] == "detect" and summary["objects"] == 5
        out = tmp_path / "yolo"
        check_yolo_rules(out)  # the sources/ files change nothing Ultralytics reads
        sizes = {Path(n).name: size for n, size in (*SIZES.items(), EMPTY)}
        written: dict[str, dict[tuple[float, float], str]] = {}
        for label in (out / "labels").rglob("*.txt"):
            sources = (out / "sources" / label.relative_to(out / "labels")).read_text().splitlines()
            boxes = [[float(v) for v in line.split()[1:]] for line in label.read_text().splitlines()]
            assert len(sources) == len(boxes), label  # line for line
            width, height = sizes[label.with_suffix(".png").name]
            written[label.with_suffix(".png").name] = {
                (round((cx - w / 2) * width, 3), round((cy - h / 2) * height, 3)): source
                for (cx, cy, w, h), source in zip(boxes, sources, strict=True)}
        assert written == trained
        (tmp_path / "again" / "sources").mkdir(parents=True)  # an earlier export's sidecars: they would not line up
        (tmp_path / "again" / "sources" / "old.txt").write_text("HUMAN\n")
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.export_yolo(version, tmp_path / "again")
        assert (refused.value.code, refused.value.field) == ("CONFLICT", "dest") and "sources/" in str(refused.value)
        await lake.export_yolo(version, tmp_path / "again", replace=True)
        assert not (tmp_path / "again" / "sources" / "old.txt").exists()


TRAINING_SPLIT = """query ($version: ID!, $ratios: SplitRatios!, $seed: Int!) {
  trainingSplit(datasetVersion: $version, ratios: $ratios, seed: $seed) {
    train(first: 100) { edges { node { id } } }
    validation(first: 100) { edges { node { id } } }
    test(first: 100) { edges { node { id } } }
  } }"""


def tiny_coco(root: Path, count: int, prefix: str = "i") -> Path:
    """`count` small images, each with one box, as a COCO file (one category)."""
    images = []
    for n in range(count):
        name = f"{prefix}{n:02d}.png"
        Image.fromarray(np.full((8, 10, 3), n * 9 + len(prefix), dtype=np.uint8)).save(root / name)
        images.append({"id": n + 1, "file_name": name, "width": 10, "height": 8})
    annotations = [{"id": 100 + i["id"], "image_id": i["id"], "category_id": 1, "bbox": [1, 1, 4, 3], "area": 12.0,
                    "iscrowd": 0} for i in images]
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "thing"}]}))
    return path


async def test_unassigned_datums_are_exported_in_the_split_training_split_gives_them(
        served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """A COCO file imported without a split leaves its datums UNASSIGNED; `--split-ratios` and `--seed`
    put each in the split trainingSplit gives it (the same partition, computed by the exporter), so
    data.yaml has the train and val that Ultralytics needs."""
    from documents.roles import Role
    from graphlake_client import GraphlakeClientError

    token = await make_token(Role.CONTRIBUTOR)
    (tmp_path / "images").mkdir()
    annotations = tiny_coco(tmp_path / "images", 24)
    async with Client(served.base_url, token) as lake:
        done = await lake.import_coco(annotations, tmp_path / "images", "parts", version="v1")
        assert done.version is not None
        datum_name = {datum: f"i{n:02d}.png" for n, datum in enumerate(done.datum_ids)}
        # A seed whose partition of these datums (their ids are new each run) leaves no split empty,
        # so every check below is a real one: about one run in 500 has an empty split at a fixed seed.
        for seed in range(7, 40):
            parts = (await lake.execute(TRAINING_SPLIT, {"version": done.version["id"], "seed": seed, "ratios": {
                "train": 0.5, "validation": 0.25, "test": 0.25}}))["trainingSplit"]
            expected = {split: sorted(datum_name[e["node"]["id"]] for e in parts[key]["edges"])
                        for split, key in (("train", "train"), ("val", "validation"), ("test", "test"))}
            if all(expected.values()):
                break
        assert all(expected.values()) and sum(map(len, expected.values())) == 24

        out = tmp_path / "yolo"
        exported = await asyncio.to_thread(graphlake, served, token, "export", "yolo", "parts/v1", str(out),
                                           "--split-ratios", "0.5,0.25,0.25", "--seed", str(seed))
        assert exported.returncode == 0, exported.stderr
        assert json.loads(exported.stdout)["splits"] == {split: len(names) for split, names in expected.items() if names}
        data, _ = check_yolo_rules(out)
        assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "images/test")
        assert {split: sorted(p.name for p in (out / "images" / split).iterdir()) for split in expected} == expected

        # The same shares as other numbers (2:1:1) are the same ratios; Hugging Face calls val `validation`.
        summary = await lake.export_hf("parts/v1", tmp_path / "hf", split_ratios=(2, 1, 1), seed=seed)
        assert summary["splits"] == {"train": len(expected["train"]), "validation": len(expected["val"]),
                                     "test": len(expected["test"])}
        assert sorted(p.name for p in (tmp_path / "hf" / "validation").glob("*.png")) == expected["val"]
        with pytest.raises(GraphlakeClientError) as hf_again:  # its README globs each split's folder: the same rule
            await lake.export_hf("parts/v1", tmp_path / "hf", split_ratios=(2, 1, 1), seed=seed + 1)
        assert (hf_again.value.code, hf_again.value.field) == ("CONFLICT", "dest")
        unassigned = await lake.export_yolo("parts/v1", tmp_path / "plain")  # without ratios: as frozen
        assert unassigned["splits"] == {"unassigned": 24}
        # Again into the same folder, with another seed, would leave images in two splits: refused.
        with pytest.raises(GraphlakeClientError) as again:
            await lake.export_yolo("parts/v1", out, split_ratios=(2, 1, 1), seed=seed + 1)
        assert again.value.code == "CONFLICT" and again.value.field == "dest" and "earlier export" in str(again.value)
        assert {split: sorted(p.name for p in (out / "images" / split).iterdir()) for split in expected} == expected
        (out / "notes.txt").write_text("mine")  # ... and --replace removes those folders only, then exports
        replaced = await lake.export_yolo("parts/v1", out, split_ratios=(2, 1, 1), seed=seed + 1, replace=True)
        # seed + 1 is not checked as `seed` is: a split it leaves empty has no folder (glob: nothing).
        images = {split: {p.name for p in (out / "images" / split).glob("*")} for split in ("train", "val", "test")}
        assert sum(map(len, images.values())) == 24 == sum(replaced["splits"].values())  # each image in one split
        assert not set.intersection(*images.values()) and (out / "notes.txt").read_text() == "mine"

        with pytest.raises(GraphlakeClientError) as refused:
            await lake.export_yolo("parts/v1", tmp_path / "bad", split_ratios=(1, -1, 0))
        assert refused.value.code == "BAD_USER_INPUT" and refused.value.field == "split_ratios"
    malformed = await asyncio.to_thread(graphlake, served, token, "export", "hf", "parts/v1", str(tmp_path / "bad"),
                                        "--split-ratios", "0.8,0.2")
    assert malformed.returncode == 2 and "--split-ratios" in malformed.stderr


async def test_a_coco_import_puts_its_images_in_the_split_it_is_given(served: Served, make_token: MakeToken,
                                                                      tmp_path: Path) -> None:
    """COCO ships one file per split (train2017, val2017): each is imported with its split into one
    dataset, into sets of its own, and one version holds both (the README's recipe)."""
    from documents.roles import Role
    from graphlake_client import GraphlakeClientError

    token = await make_token(Role.CONTRIBUTOR)
    for split, count in (("train", 3), ("val", 2)):
        (tmp_path / split).mkdir()
        annotations = tiny_coco(tmp_path / split, count, prefix=split)
        imported = await asyncio.to_thread(graphlake, served, token, "import", "coco", str(annotations), "--images",
                                           str(tmp_path / split), "--dataset", "coco2017",
                                           "--split", "train" if split == "train" else "validation")
        assert imported.returncode == 0, imported.stderr
    async with Client(served.base_url, token) as lake:
        # Found again, as a rerun finds them: the datums and sets each import made.
        train = await lake.import_coco(tmp_path / "train" / "instances.json", tmp_path / "train", "coco2017", split="TRAIN")
        val = await lake.import_coco(tmp_path / "val" / "instances.json", tmp_path / "val", "coco2017", split="VALIDATION")
        assert train.kept == val.kept == ["GROUND_TRUTH"] and train.datums_created == val.datums_created == 0
        made = await lake.create_dataset_version("coco2017", "v1", add_datums=train.datum_ids + val.datum_ids,
                                                 add_annotation_sets=[*train.set_ids.values(), *val.set_ids.values()])
        version = (await lake.execute(ops.BUNDLE_VERSION, {"id": made["id"]}))["datasetVersion"]
        assert {c["split"]: c["count"] for c in version["splitCounts"] if c["count"]} == {"TRAIN": 3, "VALIDATION": 2}
        assert sorted(s["name"] for s in version["annotationSets"]) == ["coco2017 ground truth (train)",
                                                                       "coco2017 ground truth (validation)"]
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_coco(tmp_path / "val" / "instances.json", tmp_path / "val", "other", split="holdout")
        assert refused.value.code == "BAD_USER_INPUT" and refused.value.field == "split"


async def test_an_image_pillow_cannot_read_is_left_out_and_a_failed_export_leaves_nothing(
        served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """A datum whose image role is a file Pillow cannot read (a scan format it does not know, here
    text) crashed the YOLO and Hugging Face exports while reading its size, leaving a half-written
    DEST the rerun refused as an earlier export's. It is left out, named under `unreadable` and
    counted under `left_out` as IMAGE; an export that fails anyway removes what it wrote, so the
    rerun needs no --replace."""
    import datasets

    from documents.roles import Role
    from graphlake_client.errors import GraphlakeClientError

    token = await make_token(Role.CONTRIBUTOR)
    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    (tmp_path / "scan.png").write_bytes(b"not an image at all")
    async with Client(served.base_url, token) as lake:
        done = await lake.import_coco(annotations, tmp_path / "images", "data")
        [scan] = await lake.upload_batch([(tmp_path / "scan.png", {"name": "scan.png"})])
        [datum] = (await lake.execute(ops.CREATE_DATUMS, {"inputs": [{
            "roles": [{"role": "image", "assetId": scan["id"]}], "split": "TRAIN"}]}))["createDatums"]
        await dataset_version(lake, "data", "v1", [*done.datum_ids, datum["id"]], list(done.set_ids.values()))
        for export in ("export_yolo", "export_hf"):
            fetch, fetched = lake._fetch, []

            async def failing(*args: Any, fetch: Any = fetch, fetched: list[Any] = fetched) -> None:
                fetched.append(args)
                if len(fetched) == 3:
                    raise GraphlakeClientError("the store went away", "UNAVAILABLE")
                await fetch(*args)

            lake._fetch = failing  # type: ignore[method-assign]
            with pytest.raises(GraphlakeClientError, match="the store went away"):
                await getattr(lake, export)("data/v1", tmp_path / export)
            lake._fetch = fetch  # type: ignore[method-assign]
            assert not [p for p in (tmp_path / export).rglob("*") if p.is_file()]  # nothing a rerun would refuse
            written = await getattr(lake, export)("data/v1", tmp_path / export)  # no --replace needed
            assert written["images"] == 3 and written["left_out"]["IMAGE"] == 1, written
            assert [Path(p).name for p in written["unreadable"]] == ["scan.png"]
            assert not list((tmp_path / export).rglob("scan.png"))
    loaded = await asyncio.to_thread(datasets.load_dataset, str(tmp_path / "export_hf"), cache_dir=str(tmp_path / "cache"))
    assert sum(len(split) for split in loaded.values()) == 3


# The reviewed defects below build their versions record by record, without the COCO importer.

def a_png(path: Path, width: int, height: int, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


async def a_set(lake: Client, labels: list[str], name: str = "truth") -> str:
    """A GROUND_TRUTH set of a schema with these labels (none: any label)."""
    schema = (await lake.execute(ops.CREATE_SCHEMA, {"input": {
        "name": name, "kinds": ["BBOX", "POLYGON", "KEYPOINTS"], "labels": [{"name": label} for label in labels]}}))
    made = await lake.execute(ops.CREATE_SET, {"input": {
        "name": f"{name} set", "purpose": "GROUND_TRUTH", "schemaId": schema["createAnnotationSchema"]["id"],
        "source": {"kind": "HUMAN", "name": "me"}}})
    return made["createAnnotationSet"]["id"]


async def some_datums(lake: Client, files: list[tuple[Path, str, str]], role: str = "image") -> list[dict[str, str]]:
    """A datum per (file, asset name, split), its file in `role`; each as {"id", "asset"}."""
    assets = await lake.upload_batch([(path, {"name": name}) for path, name, _ in files])
    return [await a_datum(lake, asset["id"], split, role) for (_, _, split), asset in zip(files, assets, strict=True)]


async def a_datum(lake: Client, asset: str, split: str, role: str = "image") -> dict[str, str]:
    [datum] = (await lake.execute(ops.CREATE_DATUMS, {"inputs": [{"roles": [{"role": role, "assetId": asset}],
                                                                  "split": split}]}))["createDatums"]
    return {"id": datum["id"], "asset": asset}


def a_record(datum: dict[str, str], label: str, kind: str, geometry: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    return {"assetId": datum["asset"], "datumId": datum["id"], "kind": kind, "label": label,
            "geometry": geometry, "attributes": attributes or None}


def a_box(datum: dict[str, str], label: str, x: float, y: float, width: float, height: float, **attributes: Any) -> dict:
    return a_record(datum, label, "BBOX", {"bbox": {"x": x, "y": y, "width": width, "height": height}}, **attributes)


def a_polygon(datum: dict[str, str], label: str, points: list[tuple[float, float]], **attributes: Any) -> dict:
    return a_record(datum, label, "POLYGON", {"polygon": {"points": [{"x": x, "y": y} for x, y in points]}}, **attributes)


async def freeze(lake: Client, set_id: str, datums: list[dict[str, str]], records: list[dict[str, Any]],
                 dataset: str = "made") -> str:
    if records:
        await lake.execute(ops.ADD_ANNOTATIONS, {"setId": set_id, "records": records})
    await lake.create_dataset_version(dataset, "v1", add_datums=[d["id"] for d in datums], add_annotation_sets=[set_id])
    return f"{dataset}/v1"


async def load_hf(out: Path, cache: Path) -> Any:
    import datasets

    return await asyncio.to_thread(datasets.load_dataset, str(out), cache_dir=str(cache))


async def test_a_schema_without_labels_exports_the_labels_its_records_carry(served: Served, make_token: MakeToken,
                                                                            tmp_path: Path) -> None:
    """A schema with no labels allows any label: its classes are its records' labels, in the order the
    version first uses them (before, it exported no object at all, each counted as a BBOX)."""
    from documents.roles import Role

    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        set_id = await a_set(lake, [])
        a, b = await some_datums(lake, [(a_png(tmp_path / "a.png", 64, 48), "a.png", "TRAIN"),
                                        (a_png(tmp_path / "b.png", 64, 48, 1), "b.png", "VALIDATION")])
        version = await freeze(lake, set_id, [a, b], [a_box(a, "car", 0, 0, 32, 24), a_box(b, "dog", 32, 24, 32, 24),
                                                      a_box(b, "car", 0, 24, 16, 24)])
        yolo = await lake.export_yolo(version, tmp_path / "yolo")
        hf = await lake.export_hf(version, tmp_path / "hf")
    assert yolo["objects"] == hf["objects"] == 3 and yolo["left_out"] == hf["left_out"] == {}
    data, lines = check_yolo_rules(tmp_path / "yolo")
    names = data["names"]
    assert sorted(names.values()) == ["car", "dog"]
    named = {image: sorted((names[int(line[0])], *line[1:]) for line in got) for image, got in lines.items()}
    assert named == {"train/a.png": [("car", 0.25, 0.25, 0.5, 0.5)],
                     "val/b.png": [("car", 0.125, 0.75, 0.25, 0.5), ("dog", 0.75, 0.75, 0.5, 0.5)]}
    loaded = await load_hf(tmp_path / "hf", tmp_path / "cache")
    category = loaded["train"].features["objects"]["category"].feature
    assert category.names == list(names.values())  # the same classes, numbered alike
    assert [category.int2str(c) for c in loaded["validation"][0]["objects"]["category"]] == ["dog", "car"]


async def test_a_version_without_an_image_role_is_refused_and_such_datums_are_counted(
        served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """A datum whose image is in another role (`photo`) has none to export: counted as NO_IMAGE. A
    version of such datums only is refused naming `version`, and nothing is written (before, YOLO
    raised a bare FileNotFoundError, or wrote a data.yaml without splits; Hugging Face a README
    `load_dataset` could not read)."""
    from documents.roles import Role
    from graphlake_client import GraphlakeClientError

    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        set_id = await a_set(lake, ["car"])
        photos = await some_datums(lake, [(a_png(tmp_path / "a.png", 64, 48), "a.png", "TRAIN"),
                                          (a_png(tmp_path / "b.png", 64, 48, 1), "b.png", "VALIDATION")], role="photo")
        only_photos = await freeze(lake, set_id, photos, [a_box(photos[0], "car", 1, 2, 10, 10)], dataset="photos")
        (tmp_path / "present").mkdir()
        for export, dest in (("export_yolo", tmp_path / "yolo"), ("export_yolo", tmp_path / "present"),
                             ("export_hf", tmp_path / "hf")):
            with pytest.raises(GraphlakeClientError) as refused:
                await getattr(lake, export)(only_photos, dest)
            assert (refused.value.code, refused.value.field) == ("BAD_USER_INPUT", "version")
            assert "`image` role" in str(refused.value)
            assert not dest.exists() or not list(dest.iterdir())

        [image] = await some_datums(lake, [(a_png(tmp_path / "c.png", 64, 48, 2), "c.png", "TRAIN")])
        mixed = await freeze(lake, set_id, [*photos, image], [a_box(image, "car", 1, 2, 10, 10)], dataset="mixed")
        yolo = await lake.export_yolo(mixed, tmp_path / "yolo")
        hf = await lake.export_hf(mixed, tmp_path / "hf")
    assert yolo["images"] == hf["images"] == 1 and yolo["left_out"] == hf["left_out"] == {"NO_IMAGE": 2}


async def test_the_same_image_in_three_datums_of_a_split_is_written_three_times(served: Served, make_token: MakeToken,
                                                                                tmp_path: Path) -> None:
    """The second datum of an image gets the asset id in its name; the third got the very same name,
    and its label file replaced the second's. Each gets a name of its own."""
    from documents.roles import Role

    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        set_id = await a_set(lake, ["car"])
        first, b = await some_datums(lake, [(a_png(tmp_path / "a.png", 64, 48), "a.png", "TRAIN"),
                                            (a_png(tmp_path / "b.png", 64, 48, 1), "b.png", "VALIDATION")])
        second, third = [await a_datum(lake, first["asset"], "TRAIN") for _ in range(2)]
        version = await freeze(lake, set_id, [first, second, third, b], [
            a_box(first, "car", 0, 0, 32, 24), a_box(second, "car", 32, 0, 32, 24),
            a_box(third, "car", 0, 24, 32, 24), a_box(third, "car", 32, 24, 32, 24)])
        yolo = await lake.export_yolo(version, tmp_path / "yolo")
        hf = await lake.export_hf(version, tmp_path / "hf")
        await lake.export_coco(version, tmp_path / "coco")
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert len({image["file_name"] for image in coco["images"]}) == 4 == len(list((tmp_path / "coco" / "images").iterdir()))
    assert yolo["images"] == hf["images"] == 4 and yolo["objects"] == hf["objects"] == 4
    _, lines = check_yolo_rules(tmp_path / "yolo")
    assert lines.pop("val/b.png") == [] and len(lines) == 3 and sorted(sorted(got) for got in lines.values()) == [
        [[0, 0.25, 0.25, 0.5, 0.5]], [[0, 0.25, 0.75, 0.5, 0.5], [0, 0.75, 0.75, 0.5, 0.5]], [[0, 0.75, 0.25, 0.5, 0.5]]]
    loaded = await load_hf(tmp_path / "hf", tmp_path / "cache")
    assert len({row["image"].filename for row in loaded["train"]}) == 3
    assert sorted(len(row["objects"]["bbox"]) for row in loaded["train"]) == [1, 1, 2]


async def test_hf_boxes_are_cut_at_the_image_and_left_out_outside_it(served: Served, make_token: MakeToken,
                                                                     tmp_path: Path) -> None:
    """The Hugging Face objects are the YOLO export's: a box past the edge is cut at it, one wholly
    outside (or of no size) left out and counted (before, both went into `objects.bbox` as they were)."""
    from documents.roles import Role

    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        set_id = await a_set(lake, ["car"])
        [a] = await some_datums(lake, [(a_png(tmp_path / "a.png", 64, 48), "a.png", "TRAIN")])
        version = await freeze(lake, set_id, [a], [a_box(a, "car", 100, 100, 10, 10), a_box(a, "car", 50, 40, 30, 20),
                                                   a_box(a, "car", -5, -5, 15, 10)])
        yolo = await lake.export_yolo(version, tmp_path / "yolo")
        hf = await lake.export_hf(version, tmp_path / "hf")
    assert yolo["left_out"] == hf["left_out"] == {"BBOX": 1} and yolo["objects"] == hf["objects"] == 2
    loaded = await load_hf(tmp_path / "hf", tmp_path / "cache")
    assert sorted(loaded["train"][0]["objects"]["bbox"]) == [[0, 0, 10, 5], [50, 40, 14, 8]]


async def test_a_segment_wholly_outside_the_image_is_left_out(served: Served, make_token: MakeToken,
                                                              tmp_path: Path) -> None:
    """A polygon wholly outside its image, its points clipped to the edge, was a segment line of no
    area; it is left out and counted, as a box wholly outside is."""
    from documents.roles import Role

    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        set_id = await a_set(lake, ["cat"])
        a, b = await some_datums(lake, [(a_png(tmp_path / "a.png", 64, 48), "a.png", "TRAIN"),
                                        (a_png(tmp_path / "b.png", 64, 48, 1), "b.png", "VALIDATION")])
        version = await freeze(lake, set_id, [a, b], [a_polygon(a, "cat", [(16, 12), (48, 12), (48, 36)]),
                                                      a_polygon(b, "cat", [(100, 10), (120, 10), (120, 20)])])
        summary = await lake.export_yolo(version, tmp_path / "yolo")
    assert summary["format"] == "segment" and summary["objects"] == 1 and summary["left_out"] == {"POLYGON": 1}
    _, lines = check_yolo_rules(tmp_path / "yolo")
    assert lines == {"train/a.png": [[0, 0.25, 0.25, 0.75, 0.25, 0.75, 0.75]], "val/b.png": []}


async def test_a_pose_export_counts_the_polygons_it_leaves_out(served: Served, make_token: MakeToken,
                                                               tmp_path: Path) -> None:
    """A pose line has a box and points: the objects' outlines are left out, and now counted."""
    from documents.roles import Role

    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        set_id = await a_set(lake, ["person"])
        [a] = await some_datums(lake, [(a_png(tmp_path / "a.png", 64, 48), "a.png", "TRAIN")])
        points = [{"name": name, "x": x, "y": 8, "visible": True} for name, x in (("nose", 10), ("left_eye", 14))]
        version = await freeze(lake, set_id, [a], [
            a_box(a, "person", 4, 4, 20, 30, coco_id=1), a_polygon(a, "person", [(4, 4), (24, 4), (24, 34)], coco_id=1),
            a_record(a, "person", "KEYPOINTS", {"keypoints": {"points": points}}, coco_id=1)])
        summary = await lake.export_yolo(version, tmp_path / "yolo")
    assert summary["format"] == "pose" and summary["objects"] == 1 and summary["left_out"] == {"POLYGON": 1}


async def test_an_export_does_not_overwrite_a_data_yaml_or_readme_it_did_not_write(
        served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """DEST's data.yaml (YOLO) or README.md (Hugging Face: the dataset card) is an earlier export's or
    the user's own: refused as CONFLICT, as the folders are, and replaced only with `replace`."""
    from documents.roles import Role
    from graphlake_client import GraphlakeClientError

    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        set_id = await a_set(lake, ["car"])
        [a] = await some_datums(lake, [(a_png(tmp_path / "a.png", 64, 48), "a.png", "TRAIN")])
        version = await freeze(lake, set_id, [a], [a_box(a, "car", 1, 2, 10, 10)])
        for export, own in (("export_yolo", "data.yaml"), ("export_hf", "README.md")):
            dest = tmp_path / export
            dest.mkdir()
            (dest / own).write_text("# mine, hand written\n")
            with pytest.raises(GraphlakeClientError) as refused:
                await getattr(lake, export)(version, dest)
            assert (refused.value.code, refused.value.field) == ("CONFLICT", "dest") and own in str(refused.value)
            assert (dest / own).read_text() == "# mine, hand written\n" and sorted(dest.iterdir()) == [dest / own]
            await getattr(lake, export)(version, dest, replace=True)
            assert "mine" not in (dest / own).read_text()


async def test_an_exif_rotated_photo_is_sized_as_its_loaders_turn_it(served: Served, make_token: MakeToken,
                                                                     tmp_path: Path) -> None:
    """A phone's JPEG stored 40 x 20 with EXIF orientation 6 is shown, and loaded by `datasets` and
    Ultralytics, 20 x 40: its records are in that frame, and the labels are normalised by it (before,
    by the stored size: this box near the bottom was thrown away as wholly outside)."""
    from documents.roles import Role

    stored = Image.fromarray(np.zeros((20, 40, 3), dtype=np.uint8))
    exif = stored.getexif()
    exif[0x0112] = 6
    stored.save(tmp_path / "p.jpg", exif=exif.tobytes())
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        set_id = await a_set(lake, ["car"])
        p, q = await some_datums(lake, [(tmp_path / "p.jpg", "p.jpg", "TRAIN"),
                                        (a_png(tmp_path / "q.png", 40, 20), "q.png", "VALIDATION")])
        version = await freeze(lake, set_id, [p, q], [a_box(p, "car", 2, 30, 16, 8)])
        yolo = await lake.export_yolo(version, tmp_path / "yolo")
        await lake.export_hf(version, tmp_path / "hf")
    assert yolo["objects"] == 1 and yolo["left_out"] == {}
    label = (tmp_path / "yolo" / "labels" / "train" / "p.txt").read_text().split()
    assert near([float(v) for v in label], [0, 10 / 20, 34 / 40, 16 / 20, 8 / 40])
    loaded = await load_hf(tmp_path / "hf", tmp_path / "cache")
    row = loaded["train"][0]
    assert (row["width"], row["height"]) == row["image"].size == (20, 40)
    assert row["objects"]["bbox"] == [[2, 30, 16, 8]]
    assert (loaded["validation"][0]["width"], loaded["validation"][0]["height"]) == (40, 20)  # no EXIF: as stored


async def test_an_unknown_version_is_not_found_naming_the_version(served: Served, make_token: MakeToken,
                                                                  tmp_path: Path) -> None:
    from documents.roles import Role
    from graphlake_client import GraphlakeClientError

    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        for export in ("export_yolo", "export_hf"):
            with pytest.raises(GraphlakeClientError) as refused:
                await getattr(lake, export)("nothing/v9", tmp_path / export)
            assert (refused.value.code, refused.value.field) == ("NOT_FOUND", "version")


async def test_a_pose_export_needs_the_same_keypoint_names_on_every_object(served: Served, make_token: MakeToken,
                                                                           tmp_path: Path) -> None:
    """Ultralytics gives point i one meaning for every class: a person's (nose, left_eye, right_eye)
    and a cat's (tail, left_ear, right_ear) are not one pose dataset, though they count alike. The
    export falls back to detect and counts the keypoints, as for differing counts."""
    from documents.roles import Role

    def keypoints(datum: dict[str, str], label: str, names: tuple[str, ...], coco_id: int) -> dict[str, Any]:
        points = [{"name": name, "x": 10 + 4 * n, "y": 10, "visible": True} for n, name in enumerate(names)]
        return a_record(datum, label, "KEYPOINTS", {"keypoints": {"points": points}}, coco_id=coco_id)

    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        set_id = await a_set(lake, ["person", "cat"])
        a, b = await some_datums(lake, [(a_png(tmp_path / "a.png", 64, 48), "a.png", "TRAIN"),
                                        (a_png(tmp_path / "b.png", 64, 48, 1), "b.png", "VALIDATION")])
        version = await freeze(lake, set_id, [a, b], [
            a_box(a, "person", 4, 4, 20, 30, coco_id=1), keypoints(a, "person", ("nose", "left_eye", "right_eye"), 1),
            a_box(b, "cat", 4, 4, 20, 30, coco_id=2), keypoints(b, "cat", ("tail", "left_ear", "right_ear"), 2)])
        summary = await lake.export_yolo(version, tmp_path / "yolo")
    assert summary["format"] == "detect" and summary["objects"] == 2 and summary["left_out"] == {"KEYPOINTS": 2}
    data, _ = check_yolo_rules(tmp_path / "yolo")
    assert "kpt_shape" not in data


async def test_replace_refuses_a_linked_folder_holding_an_earlier_export(served: Served, make_token: MakeToken,
                                                                         tmp_path: Path) -> None:
    """DEST/images as a link to another disk: --replace removes DEST's own folders, never what a link
    points at, so the earlier export's images stayed (in splits they had left, without labels).
    Refused as CONFLICT naming the folder, with nothing removed."""
    from documents.roles import Role
    from graphlake_client import GraphlakeClientError

    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        set_id = await a_set(lake, ["car"])
        [a] = await some_datums(lake, [(a_png(tmp_path / "a.png", 64, 48), "a.png", "TRAIN")])
        version = await freeze(lake, set_id, [a], [a_box(a, "car", 1, 2, 10, 10)])
        dest = tmp_path / "yolo"
        (tmp_path / "bigdisk").mkdir()
        dest.mkdir()
        (dest / "images").symlink_to(tmp_path / "bigdisk")
        await lake.export_yolo(version, dest)
        assert (tmp_path / "bigdisk" / "train" / "a.png").is_file()
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.export_yolo(version, dest, replace=True)
    assert (refused.value.code, refused.value.field) == ("CONFLICT", "dest") and str(dest / "images") in str(refused.value)
    assert (dest / "labels" / "train" / "a.txt").is_file() and (tmp_path / "bigdisk" / "train" / "a.png").is_file()


async def test_an_image_ultralytics_would_not_list_gets_its_formats_suffix_or_is_left_out(
        served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """Ultralytics lists under images/ only files whose suffix is an image format's: a PNG named
    `frame_0001`, and a GIF (a video to it), were written, labelled and counted, then never trained
    on. The first gets its format's suffix; the second is left out, counted and named."""
    from documents.roles import Role

    gif = tmp_path / "g.gif"
    Image.new("RGB", (64, 48), "red").save(gif, format="GIF")
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        set_id = await a_set(lake, ["car"])
        frame, moving, plain, scan, scan_png = await some_datums(lake, [
            (a_png(tmp_path / "f.png", 64, 48), "frame_0001", "TRAIN"), (gif, "g.gif", "TRAIN"),
            (a_png(tmp_path / "b.png", 64, 48, 1), "b.png", "VALIDATION"),
            # `scan.dat` (a PNG) would become scan.dat.png, another image's name and label file: a count
            # follows (the image was dropped, or the labels of one overwrote the other's).
            (a_png(tmp_path / "s.png", 64, 48, 2), "scan.dat", "VALIDATION"),
            (a_png(tmp_path / "s2.png", 64, 48, 4), "scan.dat.png", "VALIDATION")])
        datums = [frame, moving, plain, scan, scan_png]
        version = await freeze(lake, set_id, datums, [a_box(d, "car", 0, 0, 32, 24 if d is not scan else 12)
                                                      for d in datums])
        yolo = await lake.export_yolo(version, tmp_path / "yolo")
    assert yolo["images"] == 4 and yolo["objects"] == 4 and yolo["left_out"] == {"IMAGE": 1}
    assert yolo["unreadable"] == ["train/g.gif"]
    _, lines = check_yolo_rules(tmp_path / "yolo")
    box = [[0, 0.25, 0.25, 0.5, 0.5]]
    assert lines == {"train/frame_0001.png": box, "val/b.png": box, "val/scan.dat.png": box,
                     "val/scan.dat-2.png": [[0, 0.25, 0.125, 0.5, 0.25]]}
    assert sorted(p.name for p in (tmp_path / "yolo" / "images" / "train").iterdir()) == ["frame_0001.png"]
