"""`graphlake import coco|voc` and `graphlake export coco|yolo|hf`: datasets in and out of a running
server, through the Python client (graphlake_client/coco.py, coco_export.py, voc.py, yolo_export.py,
hf_export.py), like `graphlake upload`."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from graphlake.cli_support import ServerUrl, Token, client_run, errors, server_url

import_app = typer.Typer(help="Bring a dataset into the lake (COCO, Pascal VOC).", no_args_is_help=True)
export_app = typer.Typer(help="Write a dataset version out (COCO, YOLO, Hugging Face).", no_args_is_help=True)


FORMATS = {"coco": "COCO", "yolo": "YOLO", "hf": "The Hugging Face export", "voc": "Pascal VOC"}


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
    app.add_typer(export_app, name="export")


@import_app.command("coco")
def import_coco(
    annotations: Annotated[Path, typer.Argument(help="The COCO annotations file (JSON).", exists=True, dir_okay=False)],
    images: Annotated[Path, typer.Option(help="The directory the images' file_name are relative to.", exists=True,
                                         file_okay=False)],
    dataset: Annotated[str, typer.Option(help="The dataset (and the collection and schema named after it).")],
    version: Annotated[str | None, typer.Option(help="Finish with this dataset version of what was imported.")] = None,
    predictions: Annotated[Path | None, typer.Option(help="A COCO results file (annotations with score): a PREDICTION "
                                                          "set.", exists=True, dir_okay=False)] = None,
    model: Annotated[str, typer.Option(help="The predictions' MODEL source name.")] = "coco-results",
    mount: Annotated[str | None, typer.Option(help="Store the images on this mount (default: the server's).")] = None,
    set_name: Annotated[str | None, typer.Option(help="Name the sets '<this> ground truth' / '<this> predictions' "
                                                      "(default: the dataset's name).")] = None,
    url: ServerUrl = None,
    token: Token = None,
) -> None:
    """Import COCO annotations and their images. A rerun uploads no image twice, makes no datum twice,
    and leaves an annotation set that already holds this file's records as it is."""
    from graphlake_client import Client

    async def run() -> Any:
        async with Client(server_url(url), token) as lake:
            return await lake.import_coco(annotations, images, dataset, version=version, predictions=predictions,
                                          model=model, mount=mount, set_name=set_name, say=lambda line: errors.print(line))

    done = client_run(_needs_coco(run))
    summary = {"images_uploaded": done.images_uploaded, "images_unchanged": done.images_unchanged,  # type: ignore[attr-defined]
               "datums_created": done.datums_created, "schema": done.schema_id, "sets": done.set_ids,  # type: ignore[attr-defined]
               "records_added": done.records_added, "kept": done.kept, "version": done.version}  # type: ignore[attr-defined]
    typer.echo(json.dumps(summary, indent=2))


@export_app.command("coco")
def export_coco(
    version: Annotated[str, typer.Argument(help="DATASET/VERSION or a version id.")],
    dest: Annotated[Path, typer.Argument(help="Directory to write images/, annotations.json (and results.json) into.")],
    url: ServerUrl = None,
    token: Token = None,
) -> None:
    """Export a dataset version, as it was frozen, in COCO format."""
    from graphlake_client import Client

    async def run() -> Any:
        async with Client(server_url(url), token) as lake:
            return await lake.export_coco(version, dest)

    typer.echo(json.dumps(client_run(_needs_coco(run)), indent=2))


@export_app.command("yolo")
def export_yolo(
    version: Annotated[str, typer.Argument(help="DATASET/VERSION or a version id.")],
    dest: Annotated[Path, typer.Argument(help="Directory to write data.yaml, images/<split>/ and labels/<split>/ into.")],
    url: ServerUrl = None,
    token: Token = None,
) -> None:
    """Export a dataset version, as it was frozen, as an Ultralytics YOLO dataset: pose when every object
    has the same number of keypoints, else segment when every object has a polygon, else detect. What
    does not map (masks, predictions, keypoints outside a pose export) is counted under left_out."""
    from graphlake_client import Client

    async def run() -> Any:
        async with Client(server_url(url), token) as lake:
            return await lake.export_yolo(version, dest)

    typer.echo(json.dumps(client_run(_needs("yolo", ["PIL", "yaml"], run)), indent=2))


@export_app.command("hf")
def export_hf(
    version: Annotated[str, typer.Argument(help="DATASET/VERSION or a version id.")],
    dest: Annotated[Path, typer.Argument(help="Directory for datasets.load_dataset: <split>/ images, "
                                              "metadata.parquet, README.md.")],
    url: ServerUrl = None,
    token: Token = None,
) -> None:
    """Export a dataset version, as it was frozen, as a Hugging Face imagefolder (objects with bbox
    and category). What does not map (masks, keypoints, predictions) is counted under left_out."""
    from graphlake_client import Client

    async def run() -> Any:
        async with Client(server_url(url), token) as lake:
            return await lake.export_hf(version, dest)

    typer.echo(json.dumps(client_run(_needs("hf", ["PIL", "datasets", "pyarrow"], run)), indent=2))


@import_app.command("voc")
def import_voc(
    root: Annotated[Path, typer.Argument(help="The VOC tree (the folder holding ImageSets, Annotations, JPEGImages, "
                                              "SegmentationClass, SegmentationObject).", exists=True, file_okay=False)],
    split: Annotated[str, typer.Option(help="The image set: ImageSets/Main/<split>.txt (train, val, trainval, test).")],
    dataset: Annotated[str | None, typer.Option(help="The dataset (and the collection and schema named after it); "
                                                     "default: ROOT's folder name.")] = None,
    version: Annotated[str | None, typer.Option(help="Finish with this dataset version of what was imported.")] = None,
    mount: Annotated[str | None, typer.Option(help="Store the images and masks on this mount (default: the server's).")] = None,
    set_name: Annotated[str | None, typer.Option(help="Name the set '<this> ground truth' (default: the dataset's name).")] = None,
    url: ServerUrl = None,
    token: Token = None,
) -> None:
    """Import one split of a Pascal VOC 2012 tree: boxes with their difficult/truncated/occluded flags,
    and the class and object segmentation PNGs as masks. A rerun uploads and makes nothing twice."""
    from graphlake_client import Client

    async def run() -> Any:
        async with Client(server_url(url), token) as lake:
            return await lake.import_voc(root, split, dataset or root.resolve().name, version=version, mount=mount,
                                         set_name=set_name, say=lambda line: errors.print(line))

    done = client_run(_needs("voc", ["PIL", "numpy", "defusedxml"], run))
    summary = {k: v for k, v in dataclasses.asdict(done).items() if k != "datum_ids"}  # type: ignore[call-overload]
    typer.echo(json.dumps(summary, indent=2))  # (datum ids would be thousands of lines: the version has them)


async def _needs_coco(run: Any) -> Any:
    return await _needs("coco", ["numpy", "PIL", "pycocotools"], run)


async def _needs(extra: str, modules: list[str], run: Any) -> Any:
    """The command's coroutine, or one clear line when its extra is not installed."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            errors.print(f"[red]error:[/red] {FORMATS[extra]} needs the {extra} extra ({error.name} is missing): "
                         f"pip install 'graphlake[{extra}]'")
            raise typer.Exit(2) from None
    return await run()
