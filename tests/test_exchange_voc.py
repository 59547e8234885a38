"""Pascal VOC import (#19) against the real server: a small VOC 2012 tree made here (Pillow JPEGs,
palette PNG masks with the void border, XML written by the test), imported with the `graphlake`
command, read back through the version, and exported again as YOLO."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from graphlake_client import Client
from graphlake_client.version_reading import find_version, version_datums
from tests.conftest import MakeToken, Served
from tests.test_exchange_coco import counts, graphlake

pytestmark = pytest.mark.asyncio

WIDTH, HEIGHT = 60, 40
DOG, PERSON, CAT, CAR = 12, 15, 8, 7  # VOC class indices


def palette() -> list[int]:
    """VOC's colour map (the devkit's bit-interleaving), as a flat PIL palette."""
    colours = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours += [r, g, b]
    return colours


def regions() -> tuple[np.ndarray, np.ndarray]:
    """Image 1's dog (object 1) and person (object 2), as boolean masks."""
    dog, person = np.zeros((HEIGHT, WIDTH), bool), np.zeros((HEIGHT, WIDTH), bool)
    dog[8:28, 6:24] = True
    dog[8, 6] = False  # not a plain rectangle
    person[4:36, 32:54] = True
    return dog, person


def save_palette_png(values: np.ndarray, path: Path) -> None:
    image = Image.fromarray(values.astype(np.uint8), mode="P")
    image.putpalette(palette())
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def xml(file_name: str, objects: list[str]) -> str:
    return (f"<annotation><folder>VOC2012</folder><filename>{file_name}</filename>"
            f"<size><width>{WIDTH}</width><height>{HEIGHT}</height><depth>3</depth></size>"
            f"<segmented>1</segmented>{''.join(objects)}</annotation>")


def voc_tree(root: Path) -> Path:
    """Three images: 2008_000001 (a dog and a person with layout parts, both segmentations),
    2008_000002 (a cat) in train; 2008_000003 (a car) in val."""
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for n in (1, 2, 3):
        pixels = np.random.default_rng(n).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "JPEGImages" / f"2008_00000{n}.jpg", quality=90)
    (root / "ImageSets/Main/train.txt").write_text("2008_000001\n2008_000002\n")
    (root / "ImageSets/Main/val.txt").write_text("2008_000003\n")
    (root / "Annotations/2008_000001.xml").write_text(xml("2008_000001.jpg", [
        "<object><name>dog</name><pose>Left</pose><truncated>1</truncated><occluded>1</occluded>"
        "<difficult>0</difficult><bndbox><xmin>7</xmin><ymin>9</ymin><xmax>24</xmax><ymax>28</ymax></bndbox></object>",
        "<object><name>person</name><pose>Unspecified</pose><truncated>0</truncated><difficult>1</difficult>"
        "<bndbox><xmin>33</xmin><ymin>5</ymin><xmax>54</xmax><ymax>36</ymax></bndbox>"
        "<part><name>head</name><bndbox><xmin>40</xmin><ymin>5</ymin><xmax>48</xmax><ymax>12</ymax></bndbox></part>"
        "<part><name>hand</name><bndbox><xmin>33.5</xmin><ymin>20</ymin><xmax>36</xmax><ymax>24</ymax></bndbox></part>"
        "</object>"]))
    (root / "Annotations/2008_000002.xml").write_text(xml("2008_000002.jpg", [
        "<object><name>cat</name><truncated>0</truncated>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>"]))
    (root / "Annotations/2008_000003.xml").write_text(xml("2008_000003.jpg", [
        "<object><name>car</name><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>50</xmax><ymax>30</ymax></bndbox></object>"]))
    dog, person = regions()
    border = np.zeros((HEIGHT, WIDTH), bool)
    for mask in (dog, person):  # VOC's void band around each object: one pixel here
        grown = mask.copy()
        grown[1:] |= mask[:-1]
        grown[:-1] |= mask[1:]
        grown[:, 1:] |= mask[:, :-1]
        grown[:, :-1] |= mask[:, 1:]
        border |= grown & ~mask
    objects = np.where(dog, 1, np.where(person, 2, 0))
    classes = np.where(dog, DOG, np.where(person, PERSON, 0))
    save_palette_png(np.where(border, 255, objects), root / "SegmentationObject/2008_000001.png")
    save_palette_png(np.where(border, 255, classes), root / "SegmentationClass/2008_000001.png")
    return root


async def read_version(lake: Client, version: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    found = await find_version(lake, version)
    return [item async for item in version_datums(lake, found["id"])]


def geometry(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record["geometry"].items() if k != "__typename"}


@pytest.mark.parametrize("mount", [None, "lab"])
async def test_voc_import_gives_the_expected_records(served: Served, make_token: MakeToken, tmp_path: Path,
                                                      mount: str | None) -> None:
    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    root = voc_tree(tmp_path / "VOC2012")
    args = ["import", "voc", str(root), "--split", "train", "--version", "v1", *(["--mount", mount] if mount else [])]
    first = await asyncio.to_thread(graphlake, served, token, *args)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["dataset"] == "VOC2012"  # the folder's name by default
    assert summary["images_uploaded"] == 2 and summary["datums_created"] == 2 and not summary["kept"]
    assert summary["records_added"] == 9  # 3 boxes, 2 parts, 2 object masks, 2 class masks
    before = await counts()
    assert before == (2 + 4, 2, 9)  # images and mask PNGs
    from documents.annotation import AnnotationRecord

    # Each record named in the dataset (services/record_keys.py): a rerun whose count raced a stopped
    # import's last batch finds those records by key instead of adding them again.
    assert sorted(await AnnotationRecord.get_pymongo_collection().distinct("key")) == [
        "voc:2008_000001:class:12:mask", "voc:2008_000001:class:15:mask", "voc:2008_000001:object:1",
        "voc:2008_000001:object:1:mask", "voc:2008_000001:object:2", "voc:2008_000001:object:2:mask",
        "voc:2008_000001:object:2:part:1", "voc:2008_000001:object:2:part:2", "voc:2008_000002:object:1"]

    async with Client(served.base_url, token) as lake:
        datums = await read_version(lake, "VOC2012/v1")
        assert sorted((d["split"], d["metadata"]["voc"]["id"], d["metadata"]["voc"]["width"]) for d, _ in datums) == \
            [("TRAIN", "2008_000001", WIDTH), ("TRAIN", "2008_000002", WIDTH)]
        records = {d["metadata"]["voc"]["id"]: r for d, r in datums}
        boxes = sorted((r["label"], geometry(r), r["attributes"]) for r in records["2008_000001"] if r["kind"] == "BBOX")
        assert boxes == [
            ("dog", {"x": 6, "y": 8, "width": 18, "height": 20},
             {"voc_object": 1, "difficult": False, "truncated": True, "occluded": True, "pose": "Left",
              "voc_bndbox": [7, 9, 24, 28]}),
            ("hand", {"x": 32.5, "y": 19, "width": 3.5, "height": 5}, {"voc_part_of": 2}),
            ("head", {"x": 39, "y": 4, "width": 9, "height": 8}, {"voc_part_of": 2}),
            ("person", {"x": 32, "y": 4, "width": 22, "height": 32},
             {"voc_object": 2, "difficult": True, "truncated": False, "voc_bndbox": [33, 5, 54, 36]}),
        ]
        assert [(r["label"], r["attributes"]) for r in records["2008_000002"]] == [
            ("cat", {"voc_object": 1, "difficult": False, "truncated": False, "voc_bndbox": [1, 1, 20, 20]})]
        dog, person = regions()
        masks = sorted((r for r in records["2008_000001"] if r["kind"] == "MASK"),
                       key=lambda r: (r["attributes"]["voc_segmentation"], r["label"]))
        assert [(r["label"], r["attributes"]) for r in masks] == [
            ("dog", {"voc_segmentation": "class"}), ("person", {"voc_segmentation": "class"}),
            ("dog", {"voc_object": 1, "voc_segmentation": "object"}),
            ("person", {"voc_object": 2, "voc_segmentation": "object"})]
        for record, expected in zip(masks, (dog, person, dog, person), strict=True):
            png = await lake.download(record["geometry"]["asset"]["id"], tmp_path / "mask.png")
            assert np.array_equal(np.asarray(Image.open(png)) > 0, expected)  # the void border left out

    from documents.asset import Asset

    assert await Asset.get_pymongo_collection().distinct("storage.mount", {"kind": "FILE"}) == [mount or "local"]

    again = await asyncio.to_thread(graphlake, served, token, *args)
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert rerun["images_unchanged"] == 2 and rerun["datums_created"] == 0 and rerun["kept"]
    assert rerun["records_added"] == 0 and rerun["version"]["id"] == summary["version"]["id"]
    assert await counts() == before

    val = await asyncio.to_thread(graphlake, served, token, "import", "voc", str(root), "--split", "val",
                                  "--dataset", "VOC2012", "--version", "v2")
    assert val.returncode == 0, val.stderr
    assert json.loads(val.stdout)["records_added"] == 1 and json.loads(val.stdout)["set_id"] != summary["set_id"]
    async with Client(served.base_url, token) as lake:
        assert [(d["split"], [r["label"] for r in rs]) for d, rs in await read_version(lake, "VOC2012/v2")] == \
            [("VALIDATION", ["car"])]

        # Out again as YOLO: one line per object; an object's mask joins its box (voc_object) and is left
        # out with the class masks, which are no objects; the difficult person and its layout parts are
        # left out (test_voc_flags_and_parts_in_each_export).
        exported = await lake.export_yolo("VOC2012/v1", tmp_path / "yolo")
        # ... and as COCO, which COCO's own tools read: each image's size, one annotation per object
        # (its box, and its object mask as its segmentation), every one with a bbox; the class masks left out.
        as_coco = await lake.export_coco("VOC2012/v1", tmp_path / "coco")
    assert as_coco["annotations"] == 5 and as_coco["left_out"] == {"MASK": 2}, as_coco
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert all((i["width"], i["height"]) == (WIDTH, HEIGHT) for i in coco["images"])
    assert all(len(a["bbox"]) == 4 and a["area"] > 0 for a in coco["annotations"])
    assert sum(isinstance(a.get("segmentation"), dict) for a in coco["annotations"]) == 2  # the object masks
    truth = COCO(str(tmp_path / "coco" / "annotations.json"))
    found = truth.loadRes([{**a, "score": 1.0} for a in coco["annotations"]])
    evaluation = COCOeval(truth, found, "bbox")
    evaluation.evaluate()
    evaluation.accumulate()  # the file is whole to COCO's evaluator (a missing bbox was a KeyError)
    assert exported["objects"] == 2 and exported["format"] == "detect"
    assert exported["left_out"] == {"MASK": 4, "DIFFICULT": 1, "PART": 2}, exported
    data_yaml = (tmp_path / "yolo" / "data.yaml").read_text()
    assert "dog" in data_yaml and "head" in data_yaml
    assert len((tmp_path / "yolo" / "labels" / "train" / "2008_000001.txt").read_text().splitlines()) == 1


async def test_hostile_voc_files_are_refused_before_anything_is_written(served: Served, make_token: MakeToken,
                                                                       tmp_path: Path) -> None:
    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    root = voc_tree(tmp_path / "VOC2012")
    clean = (root / "Annotations/2008_000002.xml").read_text()
    # An entity expansion (a "billion laughs" in small): defusedxml refuses any entity declaration.
    (root / "Annotations/2008_000002.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE annotation [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        + clean.replace("<folder>VOC2012</folder>", "<folder>&b;</folder>"))
    refused = await asyncio.to_thread(graphlake, served, token, "import", "voc", str(root), "--split", "train")
    assert refused.returncode == 1 and "2008_000002.xml: not a VOC annotation" in refused.stderr, refused.stderr
    (root / "Annotations/2008_000002.xml").write_text(clean)
    (root / "ImageSets/Main/train.txt").write_text("2008_000001\n../../secret\n")
    refused = await asyncio.to_thread(graphlake, served, token, "import", "voc", str(root), "--split", "train")
    assert refused.returncode == 1 and "not plain names" in refused.stderr, refused.stderr
    (root / "ImageSets/Main/train.txt").write_text("2008_000001\n")
    save_palette_png(np.full((HEIGHT, WIDTH), 3), root / "SegmentationObject/2008_000001.png")  # 2 objects in the XML
    refused = await asyncio.to_thread(graphlake, served, token, "import", "voc", str(root), "--split", "train")
    assert refused.returncode == 1 and "has object 3" in refused.stderr, refused.stderr
    assert await counts() == (0, 0, 0)


async def test_two_ids_naming_one_image_are_refused(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """Both would share the image's asset, and so its datum: refused before anything is written."""
    from documents.roles import Role
    from graphlake_client.errors import GraphlakeClientError

    root = voc_tree(tmp_path / "VOC2012")
    (root / "Annotations/2008_000009.xml").write_text(xml("2008_000001.jpg", []))
    (root / "ImageSets/Main/train.txt").write_text("2008_000001\n2008_000009\n")
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        with pytest.raises(GraphlakeClientError, match=r"images 2008_000001 and 2008_000009 are both 2008_000001\.jpg"):
            await lake.import_voc(root, "train", "VOC2012")
    assert await counts() == (0, 0, 0)


async def test_a_rerun_finishes_an_interrupted_voc_import(served: Served, make_token: MakeToken, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection lost at the second image's records (one image a stage): a rerun adds that
    image's records alone, and the set holds each record once."""
    from documents.roles import Role
    from graphlake_client import dataset_import, voc
    from graphlake_client import operations as ops
    from graphlake_client.errors import GraphlakeClientError

    monkeypatch.setattr(voc, "STAGE_IMAGES", 1)
    monkeypatch.setattr(dataset_import, "CHUNKS_PER_STEP", 1)  # which records go before the loss is then certain
    root = voc_tree(tmp_path / "VOC2012")
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        execute, sent = lake.execute, []

        async def losing(document: str, variables: dict | None = None) -> Any:
            if document == ops.ADD_ANNOTATIONS:
                sent.append(variables)
                if len(sent) == 2:
                    raise GraphlakeClientError("connection lost", "UNAVAILABLE")
            return await execute(document, variables)

        lake.execute = losing  # type: ignore[method-assign]
        with pytest.raises(GraphlakeClientError, match="connection lost"):
            await lake.import_voc(root, "train", "VOC2012", version="v1")
        lake.execute = execute  # type: ignore[method-assign]
        assert (await counts())[2] == 8  # the first image's records, whole
        done = await lake.import_voc(root, "train", "VOC2012", version="v1")
        assert done.resumed and not done.kept and done.records_added == 1 and done.datums_created == 0
        assert await counts() == (2 + 4, 2, 9)
        datums = await read_version(lake, "VOC2012/v1")
    assert sorted((d["metadata"]["voc"]["id"], len(records)) for d, records in datums) == \
        [("2008_000001", 8), ("2008_000002", 1)]


async def test_flags_other_tools_write_and_a_missing_xml_are_said(served: Served, make_token: MakeToken,
                                                                  tmp_path: Path) -> None:
    """Tools other than the devkit write a flag as true / false: read as 1 / 0 (a ValueError's traceback
    named no file). A flag that is neither is refused naming its file and object, before anything is
    written. An id of the split without its XML is imported without objects, and the result says so."""
    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    root = voc_tree(tmp_path / "VOC2012")
    clean = (root / "Annotations/2008_000002.xml").read_text()
    (root / "Annotations/2008_000002.xml").write_text(clean.replace("<truncated>0</truncated>", "<truncated>maybe</truncated>"))
    refused = await asyncio.to_thread(graphlake, served, token, "import", "voc", str(root), "--split", "train")
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 1 and "2008_000002.xml object 1: truncated is 0 or 1" in said and "Traceback" not in said, said
    assert await counts() == (0, 0, 0)
    (root / "Annotations/2008_000002.xml").write_text(
        clean.replace("<truncated>0</truncated>", "<truncated>True</truncated><difficult>false</difficult>"))
    (root / "Annotations/2008_000001.xml").unlink()
    (root / "SegmentationObject/2008_000001.png").unlink()  # its objects are the XML's
    done = await asyncio.to_thread(graphlake, served, token, "import", "voc", str(root), "--split", "train",
                                   "--version", "v1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["without_xml"] == ["2008_000001"]
    assert "1 images have no Annotations/<id>.xml, e.g. 2008_000001" in " ".join(done.stderr.split())
    async with Client(served.base_url, token) as lake:
        read = await read_version(lake, "VOC2012/v1")
    cat = next(r for _, records in read for r in records if r["label"] == "cat")
    assert cat["attributes"]["truncated"] is True and cat["attributes"]["difficult"] is False


async def test_a_file_pillow_cannot_read_is_refused_naming_it_before_anything_is_written(
        served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """An empty or damaged JPEG, or a segmentation PNG that is not one, was PIL's
    UnidentifiedImageError as a traceback: now BAD_USER_INPUT naming the file and its image, from
    the reading that comes before anything is written."""
    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    for broken, contents, said in (("JPEGImages/2008_000002.jpg", b"", "image 2008_000002: JPEGImages/2008_000002.jpg"),
                                   ("JPEGImages/2008_000002.jpg", b"not a jpeg", "image 2008_000002: JPEGImages/2008_000002.jpg"),
                                   ("SegmentationObject/2008_000001.png", b"\x89PNG garbage",
                                    "image 2008_000001: SegmentationObject/2008_000001.png")):
        root = voc_tree(tmp_path / broken.replace("/", "-"))
        (root / broken).write_bytes(contents)
        refused = await asyncio.to_thread(graphlake, served, token, "import", "voc", str(root), "--split", "train")
        text = " ".join(refused.stderr.split())
        assert refused.returncode == 1 and "Traceback" not in text and text.count("error:") == 1, text
        assert f"{said} is not an image Pillow can read" in text and "(BAD_USER_INPUT)" in text, text
    assert await counts() == (0, 0, 0)


async def test_voc_flags_and_parts_in_each_export(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """Every export dropped VOC's flags: a difficult object (one VOC's evaluation ignores) became an
    ordinary ground truth in COCO and YOLO. The COCO export carries difficult, truncated, occluded
    (0 or 1) and pose as keys of each annotation, and a layout part's `voc_part_of`; YOLO and
    Hugging Face leave difficult objects out, as Ultralytics' VOC converter does, and layout parts
    (labelled on a few persons only) too."""
    from documents.roles import Role

    root = voc_tree(tmp_path / "VOC2012")  # 2008_000001: a truncated, occluded dog (Left), a difficult person
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        await lake.import_voc(root, "train", "voc", version="v1")
        await lake.export_coco("voc/v1", tmp_path / "coco")
        yolo = await lake.export_yolo("voc/v1", tmp_path / "yolo")
        hf = await lake.export_hf("voc/v1", tmp_path / "hf")
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    named = {c["id"]: c["name"] for c in coco["categories"]}
    flags = sorted((named[a["category_id"]], {k: a[k] for k in ("difficult", "truncated", "occluded", "pose",
                                                                 "voc_part_of", "iscrowd") if k in a})
                   for a in coco["annotations"])
    assert flags == [("cat", {"difficult": 0, "truncated": 0, "iscrowd": 0}),
                     ("dog", {"difficult": 0, "truncated": 1, "occluded": 1, "pose": "Left", "iscrowd": 0}),
                     ("hand", {"voc_part_of": 2, "iscrowd": 0}),
                     ("head", {"voc_part_of": 2, "iscrowd": 0}),
                     ("person", {"difficult": 1, "truncated": 0, "iscrowd": 0})]
    lines = tmp_path / "yolo" / "labels" / "train" / "2008_000001.txt"
    assert [line.split()[0] for line in lines.read_text().splitlines()] == ["11"]  # the dog alone (VOC's class 12)
    for summary in (yolo, hf):
        assert summary["objects"] == 2 and summary["left_out"]["DIFFICULT"] == 1 and summary["left_out"]["PART"] == 2


async def test_the_segmentation_lists_are_imported_and_share_the_main_lists_images(served: Served, make_token: MakeToken,
                                                                                   tmp_path: Path) -> None:
    """VOC 2012 lists the images that have segmentation PNGs under ImageSets/Segmentation/ (1,464 train
    images), not Main/: `--image-set Segmentation` reads them. An image is one datum, its objects one
    ground truth, whichever list named it: Main's train imported after finds it there already."""
    from documents.roles import Role
    from graphlake_client.errors import GraphlakeClientError

    root = voc_tree(tmp_path / "VOC2012")
    (root / "ImageSets/Segmentation").mkdir()
    (root / "ImageSets/Segmentation/train.txt").write_text("2008_000001\n")
    token = await make_token(Role.CONTRIBUTOR)
    first = await asyncio.to_thread(graphlake, served, token, "import", "voc", str(root), "--split", "train",
                                    "--image-set", "segmentation", "--dataset", "VOC2012")
    assert first.returncode == 0, first.stderr
    done = json.loads(first.stdout)
    assert done["datums_created"] == 1 and done["records_added"] == 8
    assert await counts() == (1 + 4, 1, 8)  # its image and four mask PNGs, its datum, its records
    async with Client(served.base_url, token) as lake:
        main = await lake.import_voc(root, "train", "VOC2012")
        assert main.datums_created == 1 and main.records_added == 1  # 2008_000002's; 2008_000001's found
        assert await counts() == (2 + 4, 2, 9)
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_voc(root, "train", "VOC2012", image_set="Layouts")
    assert refused.value.field == "image_set" and "Main, Segmentation, Layout, Action" in str(refused.value)


async def set_names() -> list[str]:
    from documents.annotation import AnnotationSet

    return sorted(s["name"] for s in await AnnotationSet.get_pymongo_collection().find({}).to_list())


async def test_the_segmentation_list_after_mains_finds_its_images_there(served: Served, make_token: MakeToken,
                                                                        tmp_path: Path) -> None:
    """The usual order: Main's train, then the Segmentation list's (a subset). The set also holds
    records on Main's other images, which stopped the import with CONFLICT: only the images a list
    names are compared, so it is `kept`, and a rerun of either list makes nothing. Records changed
    on an image the list names are still a CONFLICT (its 8 records), which says so."""
    from documents.roles import Role
    from graphlake_client.errors import GraphlakeClientError

    root = voc_tree(tmp_path / "VOC2012")
    (root / "ImageSets/Segmentation").mkdir()
    (root / "ImageSets/Segmentation/train.txt").write_text("2008_000001\n")
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        main = await lake.import_voc(root, "train", "VOC2012")
        assert main.records_added == 9 and await counts() == (2 + 4, 2, 9)
        for image_set in ("Segmentation", "Main", "Segmentation"):
            again = await lake.import_voc(root, "train", "VOC2012", image_set=image_set)
            assert again.kept and again.records_added == 0 and again.datums_created == 0, image_set
            assert again.set_id == main.set_id
        assert await counts() == (2 + 4, 2, 9) and await set_names() == ["VOC2012 ground truth (train)"]
        changed = (root / "Annotations/2008_000001.xml").read_text().replace("<xmax>24</xmax>", "<xmax>25</xmax>")
        (root / "Annotations/2008_000001.xml").write_text(changed)
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_voc(root, "train", "VOC2012", image_set="Segmentation")
    assert refused.value.code == "CONFLICT" and "8 of them not as this list makes them (changed annotations or " \
        "images since this list was imported)" in str(refused.value), refused.value
    assert await counts() == (2 + 4, 2, 9)


async def test_lists_whose_xmls_name_other_parts_share_one_set(served: Served, make_token: MakeToken,
                                                               tmp_path: Path) -> None:
    """The Segmentation list's images name head and hand, Main's a foot too: the labels differed, so
    Main's import made a schema version and a second set of the same name, with 2008_000001's
    records again. VOC's layout parts are labels of every import, so Main adds its other image's
    records to the one set. A part name outside VOC's, which the set's schema lacks, is a CONFLICT
    naming it; a new set gets a schema version with it, which keeps the earlier versions' labels."""
    from documents.roles import Role
    from graphlake_client.errors import GraphlakeClientError

    root = voc_tree(tmp_path / "VOC2012")
    cat = (root / "Annotations/2008_000002.xml").read_text()
    with_part = cat.replace("</bndbox></object>", "</bndbox><part><name>foot</name><bndbox><xmin>2</xmin><ymin>2</ymin>"
                            "<xmax>5</xmax><ymax>5</ymax></bndbox></part></object>")
    (root / "Annotations/2008_000002.xml").write_text(with_part)
    (root / "ImageSets/Segmentation").mkdir()
    (root / "ImageSets/Segmentation/train.txt").write_text("2008_000001\n")
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        seg = await lake.import_voc(root, "train", "VOC2012", image_set="Segmentation")
        main = await lake.import_voc(root, "train", "VOC2012")
        assert main.set_id == seg.set_id and main.records_added == 2  # the cat and its foot
        assert (await lake.import_voc(root, "train", "VOC2012", image_set="Segmentation")).kept
        assert await counts() == (2 + 4, 2, 10) and await set_names() == ["VOC2012 ground truth (train)"]
        (root / "Annotations/2008_000002.xml").write_text(with_part.replace("foot", "tail"))
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_voc(root, "train", "VOC2012")
        assert refused.value.code == "CONFLICT" and "'VOC2012' version 1, whose labels lack 'tail'" in str(refused.value)
        assert await counts() == (2 + 4, 2, 10)
        (root / "Annotations/2008_000003.xml").write_text(with_part.replace("foot", "tail"))
        val = await lake.import_voc(root, "val", "VOC2012")  # a new set: on a version with a tail
        (root / "Annotations/2008_000003.xml").write_text(cat)
        (root / "ImageSets/Main/trainval.txt").write_text("2008_000003\n")
        plain = await lake.import_voc(root, "trainval", "VOC2012")  # no tail, but the newest version has one
    assert val.schema_id == plain.schema_id != seg.schema_id
    assert await set_names() == ["VOC2012 ground truth (train)", "VOC2012 ground truth (trainval)",
                                 "VOC2012 ground truth (val)"]


async def test_the_jpeg_is_the_xmls_filename_if_there_else_the_ids(served: Served, make_token: MakeToken,
                                                                    tmp_path: Path) -> None:
    """LabelImg writes <filename> without its extension, and renamed trees keep the old one: the
    devkit, torchvision and Detectron2 read JPEGImages/<id>.jpg, and so does the import when the
    file <filename> names is not there. With neither, the refusal names both."""
    from documents.roles import Role
    from graphlake_client.errors import GraphlakeClientError

    root = voc_tree(tmp_path / "VOC2012")
    cat = (root / "Annotations/2008_000002.xml").read_text()
    (root / "Annotations/2008_000002.xml").write_text(cat.replace("<filename>2008_000002.jpg", "<filename>2008_000002"))
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        done = await lake.import_voc(root, "train", "VOC2012")
        assert done.records_added == 9 and await counts() == (2 + 4, 2, 9)
        (root / "JPEGImages/2008_000002.jpg").rename(root / "JPEGImages/renamed.jpg")
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_voc(root, "train", "VOC2012")
    assert str(refused.value) == ("image 2008_000002: neither JPEGImages/2008_000002 (its XML's filename) nor "
                                  "JPEGImages/2008_000002.jpg is there")


async def test_a_part_without_a_name_is_refused_naming_it(served: Served, make_token: MakeToken, tmp_path: Path) -> None:
    """Its box was dropped without a word: refused as an object without a name is, before anything
    is written."""
    from documents.roles import Role
    from graphlake_client.errors import GraphlakeClientError

    root = voc_tree(tmp_path / "VOC2012")
    cat = (root / "Annotations/2008_000002.xml").read_text()
    (root / "Annotations/2008_000002.xml").write_text(cat.replace("</bndbox></object>", "</bndbox><part><bndbox>"
        "<xmin>2</xmin><ymin>2</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></part></object>"))
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_voc(root, "train", "VOC2012")
    assert refused.value.code == "BAD_USER_INPUT" and str(refused.value) == "2008_000002.xml object 1 part 1 has no name"
    assert await counts() == (0, 0, 0)


async def test_an_id_is_any_file_name_that_stays_in_its_folder(served: Served, make_token: MakeToken,
                                                               tmp_path: Path) -> None:
    """Custom trees name images img(2) or foto_ñ: only ids that could lead out of the folders
    (separators, `..`) are refused, naming one."""
    from documents.roles import Role
    from graphlake_client.errors import GraphlakeClientError

    root = voc_tree(tmp_path / "VOC2012")
    (root / "JPEGImages/img(2).jpg").write_bytes((root / "JPEGImages/2008_000002.jpg").read_bytes())
    (root / "JPEGImages/foto_ñ.jpg").write_bytes((root / "JPEGImages/2008_000003.jpg").read_bytes())
    (root / "Annotations/img(2).xml").write_text((root / "Annotations/2008_000002.xml").read_text())
    (root / "ImageSets/Main/train.txt").write_text("img(2)\nfoto_ñ\n")
    async with Client(served.base_url, await make_token(Role.CONTRIBUTOR)) as lake:
        done = await lake.import_voc(root, "train", "VOC2012")
        assert done.datums_created == 2 and done.records_added == 1 and done.without_xml == ["foto_ñ"]
        (root / "ImageSets/Main/train.txt").write_text("img(2)\nsub\\img\n")
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.import_voc(root, "train", "VOC2012")
    assert str(refused.value) == "1 ids in train.txt are not plain names, e.g. 'sub\\\\img'"
