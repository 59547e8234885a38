"""`graphlake import coco|voc|bundle` and `graphlake export coco|yolo|hf|bundle`: datasets in and out
of a running server, through the Python client (graphlake_client/coco.py, coco_export.py, voc.py,
yolo_export.py, hf_export.py, bundle_export.py, bundle_import.py), like `graphlake upload`."""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from graphlake.cli_support import ServerUrl, Token, client_run, errors, server_url

import_app = typer.Typer(help="Bring a dataset into the lake (COCO, Pascal VOC, a bundle from another lake).",
                         no_args_is_help=True)
export_app = typer.Typer(help="Write a dataset version out (COCO, YOLO, Hugging Face, a bundle for another lake).",
                         no_args_is_help=True)


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
    predictions: Annotated[Path | None, typer.Option(help="A COCO results file (annotations with score): the "
                                                          "PREDICTION set '<dataset> <model> predictions'.",
                                                     exists=True, dir_okay=False)] = None,
    model: Annotated[str, typer.Option(help="The predictions' MODEL source name, and their set's: import another "
                                            "model's results for the same images with their own --model, beside "
                                            "the ground truth imported already.")] = "coco-results",
    mount: Annotated[str | None, typer.Option(help="Store the images on this mount (default: the server's).")] = None,
    set_name: Annotated[str | None, typer.Option(help="Name the sets '<this> ground truth' / '<this> <model> "
                                                      "predictions' (default: the dataset's name).")] = None,
    split: Annotated[str, typer.Option(help="The images' split: TRAIN, VALIDATION, TEST or UNASSIGNED (a COCO file "
                                            "is usually one split, e.g. instances_train2017.json).")] = "UNASSIGNED",
    url: ServerUrl = None,
    token: Token = None,
) -> None:
    """Import COCO annotations and their images. A rerun uploads no image twice, makes no datum twice,
    and leaves an annotation set that already holds this file's records as it is (`kept`), or
    finishes one an interrupted import began (`resumed`). Each --model's predictions are a set of
    their own: a second model's, imported with the same annotations file, go in beside the ground
    truth, which is kept."""
    from graphlake_client import Client

    async def run() -> Any:
        async with Client(server_url(url), token) as lake:
            return await lake.import_coco(annotations, images, dataset, version=version, predictions=predictions,
                                          model=model, mount=mount, set_name=set_name, split=split,
                                          say=lambda line: errors.print(line))

    done = client_run(_needs_coco(run), token=token)
    summary = {"images_uploaded": done.images_uploaded, "images_unchanged": done.images_unchanged,  # type: ignore[attr-defined]
               "datums_created": done.datums_created, "schema": done.schema_id, "sets": done.set_ids,  # type: ignore[attr-defined]
               "records_added": done.records_added, "kept": done.kept, "resumed": done.resumed,  # type: ignore[attr-defined]
               "left_out": done.left_out,  # type: ignore[attr-defined]
               "version": done.version}  # type: ignore[attr-defined]
    typer.echo(json.dumps(summary, indent=2))


@export_app.command("coco")
def export_coco(
    version: Annotated[str, typer.Argument(help="DATASET/VERSION or a version id.")],
    dest: Annotated[Path, typer.Argument(help="Directory to write images/, annotations.json and the results files "
                                              "into.")],
    replace: Annotated[bool, typer.Option("--replace", help="DEST holds an earlier export: remove its images/, "
                                                            "annotations.json, results.json and results-*.json "
                                                            "first; without it, refused.")] = False,
    url: ServerUrl = None,
    token: Token = None,
) -> None:
    """Export a dataset version, as it was frozen, in COCO format: images/, annotations.json (the
    ground truth) and a COCO results list per prediction set, as pycocotools' COCO.loadRes reads one
    model's: results.json when the version holds one, results-<model>.json each when it holds
    several (results-<set name>.json for sets of one model). The summary's results_files says which
    file holds which set, and how many results."""
    from graphlake_client import Client

    async def run() -> Any:
        async with Client(server_url(url), token) as lake:
            return await lake.export_coco(version, dest, replace=replace)

    typer.echo(json.dumps(client_run(_needs_coco(run), token=token), indent=2))


SplitRatiosOption = Annotated[str | None, typer.Option(
    "--split-ratios", help="TRAIN,VALIDATION,TEST shares (e.g. 0.8,0.1,0.1): UNASSIGNED datums go to the split "
                           "trainingSplit gives them with these ratios and --seed (without it, to `unassigned`).")]
SeedOption = Annotated[int, typer.Option(help="The seed of --split-ratios' partition (trainingSplit's `seed`).")]
ReplaceOption = Annotated[bool, typer.Option("--replace", help="DEST holds an earlier export: remove its folders of "
                                                              "images, labels and sources (or splits) first; without it, refused.")]


def _ratios(text: str | None) -> tuple[float, float, float] | None:
    """--split-ratios as three numbers; the exporter checks their values (splits.normalised)."""
    if text is None:
        return None
    try:
        train, validation, test = (float(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"three numbers separated by commas, such as 0.8,0.1,0.1: not {text!r}",
                                 param_hint="--split-ratios") from None
    return train, validation, test


@export_app.command("yolo")
def export_yolo(
    version: Annotated[str, typer.Argument(help="DATASET/VERSION or a version id.")],
    dest: Annotated[Path, typer.Argument(help="Directory to write data.yaml, images/<split>/, labels/<split>/ and "
                                                 "sources/<split>/ into.")],
    split_ratios: SplitRatiosOption = None,
    seed: SeedOption = 0,
    replace: ReplaceOption = False,
    url: ServerUrl = None,
    token: Token = None,
) -> None:
    """Export a dataset version, as it was frozen, as an Ultralytics YOLO dataset: pose when every object
    has the same number of keypoints, else segment when every object has a polygon, else detect. What
    does not map (masks, predictions, keypoints outside a pose export) is counted under left_out."""
    from graphlake_client import Client

    ratios = _ratios(split_ratios)

    async def run() -> Any:
        async with Client(server_url(url), token) as lake:
            return await lake.export_yolo(version, dest, split_ratios=ratios, seed=seed, replace=replace)

    typer.echo(json.dumps(client_run(_needs("yolo", ["PIL", "yaml"], run), token=token), indent=2))


@export_app.command("hf")
def export_hf(
    version: Annotated[str, typer.Argument(help="DATASET/VERSION or a version id.")],
    dest: Annotated[Path, typer.Argument(help="Directory for datasets.load_dataset: <split>/ images, "
                                              "metadata.parquet, README.md.")],
    split_ratios: SplitRatiosOption = None,
    seed: SeedOption = 0,
    replace: ReplaceOption = False,
    url: ServerUrl = None,
    token: Token = None,
) -> None:
    """Export a dataset version, as it was frozen, as a Hugging Face imagefolder (objects with bbox
    and category). What does not map (masks, keypoints, predictions) is counted under left_out."""
    from graphlake_client import Client

    ratios = _ratios(split_ratios)

    async def run() -> Any:
        async with Client(server_url(url), token) as lake:
            return await lake.export_hf(version, dest, split_ratios=ratios, seed=seed, replace=replace)

    typer.echo(json.dumps(client_run(_needs("hf", ["PIL", "datasets", "pyarrow"], run), token=token), indent=2))


@import_app.command("voc")
def import_voc(
    root: Annotated[Path, typer.Argument(help="The VOC tree (the folder holding ImageSets, Annotations, JPEGImages, "
                                              "SegmentationClass, SegmentationObject).", exists=True, file_okay=False)],
    split: Annotated[str, typer.Option(help="The image set: ImageSets/Main/<split>.txt (train, val, trainval, test); "
                                            "see --image-set.")],
    dataset: Annotated[str | None, typer.Option(help="The dataset (and the collection and schema named after it); "
                                                     "default: ROOT's folder name.")] = None,
    version: Annotated[str | None, typer.Option(help="Finish with this dataset version of what was imported.")] = None,
    mount: Annotated[str | None, typer.Option(help="Store the images and masks on this mount (default: the server's).")] = None,
    set_name: Annotated[str | None, typer.Option(help="Name the set '<this> ground truth' (default: the dataset's name).")] = None,
    image_set: Annotated[str, typer.Option(help="The list folder under ImageSets: Main, or Segmentation for VOC 2012's "
                                                "lists of the images that have segmentation PNGs (Layout, Action).")] = "Main",
    url: ServerUrl = None,
    token: Token = None,
) -> None:
    """Import one split of a Pascal VOC 2012 tree: boxes with their difficult/truncated/occluded flags,
    and the class and object segmentation PNGs as masks. A rerun uploads and makes nothing twice."""
    from graphlake_client import Client

    async def run() -> Any:
        async with Client(server_url(url), token) as lake:
            return await lake.import_voc(root, split, dataset or root.resolve().name, version=version, mount=mount,
                                         set_name=set_name, image_set=image_set, say=lambda line: errors.print(line))

    done = client_run(_needs("voc", ["PIL", "numpy", "defusedxml"], run), token=token)
    summary = {k: v for k, v in dataclasses.asdict(done).items() if k != "datum_ids"}  # type: ignore[call-overload]
    typer.echo(json.dumps(summary, indent=2))  # (datum ids would be thousands of lines: the version has them)


@export_app.command("bundle")
def export_bundle(
    version: Annotated[str, typer.Argument(help="DATASET/VERSION or a version id.")],
    dest: Annotated[str, typer.Argument(help="A directory, or a path ending in .tar, to write manifest.json and "
                                             "payloads/<sha256> into; or s3://BUCKET/PREFIX (boto3's credentials: "
                                             "AWS_ACCESS_KEY_ID, AWS_PROFILE..., and AWS_ENDPOINT_URL for a store "
                                             "other than AWS).")],
    replace: Annotated[bool, typer.Option("--replace", help="DEST holds something else than this version's bundle "
                                                            "(another version's, other files, an existing .tar): write "
                                                            "over it, and remove the payloads the new manifest does "
                                                            "not name.")] = False,
    url: ServerUrl = None,
    token: Token = None,
) -> None:
    """Export a dataset version, as it was frozen, as a self-contained bundle that `graphlake import
    bundle` brings into another lake with the same manifest hash. Into a directory, a rerun after
    an interruption downloads only what is missing."""
    from graphlake_client import Client

    async def run() -> Any:
        with _bytes_bar("exporting") as advance:
            async with Client(server_url(url), token) as lake:
                return await lake.export_bundle(version, dest if dest.startswith("s3://") else Path(dest),
                                                progress=lambda done, total: advance(done, total), replace=replace)

    typer.echo(json.dumps(client_run(run(), token=token), indent=2))


@import_app.command("bundle")
def import_bundle(
    src: Annotated[str, typer.Argument(help="A bundle: its directory, or its .tar, or s3://BUCKET/PREFIX (boto3's "
                                            "credentials, AWS_ENDPOINT_URL); with --mount, its path on that mount of "
                                            "the server.")],
    policy: Annotated[str, typer.Option(help="copy: upload every payload; copy-if-missing: reuse assets the lake "
                                             "holds with the same SHA-256; reference: register payloads in place "
                                             "(EXTERNAL): a bundle on an S3 mount (--mount) or at s3://.")] = "copy",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Prepare only: check the bundle and report what is new, "
                                                            "present or conflicting, writing nothing.")] = False,
    mount: Annotated[str | None, typer.Option(help="SRC lies on this mount of the server: the server imports it "
                                                   "(prepareBundleImport / commitBundleImport), nothing passes through "
                                                   "here. With an s3:// SRC: the lake's S3 mount that registers its "
                                                   "files under --policy reference (default: the lake's only one).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Import it into the dataset of this name, not the bundle's "
                                                     "(when this lake has another version of that name there).")] = None,
    url: ServerUrl = None,
    token: Token = None,
) -> None:
    """Import a bundle written by `graphlake export bundle`: prepare (check it, report), then commit
    (upload what is missing, make datums, schemas, sets, records, then the version). A rerun after a
    crash finishes the job; importing twice makes nothing new."""
    from graphlake_client import Client

    s3 = src.startswith("s3://")
    if mount is not None and not s3:
        async def on_mount() -> Any:
            async with Client(server_url(url), token) as lake:
                return await lake.import_bundle_on_mount(src, mount=mount, policy=policy, dry_run=dry_run, dataset=dataset)

        typer.echo(json.dumps(client_run(on_mount(), token=token), indent=2))
        return
    if not s3 and not Path(src).exists():
        errors.print(f"[red]error:[/red] {src}: no such file or directory (a bundle on a server mount needs --mount)")
        raise typer.Exit(2)

    async def run() -> Any:
        with _bytes_bar("uploading") as advance:
            sent = 0

            def count(n: int) -> None:
                nonlocal sent
                sent += n
                advance(sent, None)

            async with Client(server_url(url), token) as lake:
                return await lake.import_bundle(src if s3 else Path(src), policy=policy, dry_run=dry_run,
                                                progress=count, say=lambda line: errors.print(line), mount=mount,
                                                dataset=dataset)

    typer.echo(json.dumps(client_run(run(), token=token), indent=2))


@contextmanager
def _bytes_bar(what: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar on stderr in bytes, as `graphlake upload` shows; gone once done."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=errors, transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


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
