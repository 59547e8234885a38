"""`Client`, the one class a user needs. Its verbs come in layers, each a module: the transport
(transport.py), uploads (uploads.py), storing, getting and querying assets (assets.py), downloads and
save_to (downloads.py), save / load by alias (vault.py); here: events, dataset versions, and moving
datasets in and out.

    async with Client("http://127.0.0.1:8000", token) as lake:
        asset = await lake.store_file("scan.tif", metadata={"plate": 7})
        await lake.save_to(asset, "copy.tif")
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from graphlake_client import operations as ops
from graphlake_client.assets import PAGE_SIZE
from graphlake_client.errors import GraphlakeClientError, check_json, wire_time
from graphlake_client.follow import Follower
from graphlake_client.predicates import Predicate, filter_inputs, names
from graphlake_client.results import (
    BundleExport,
    BundleImport,
    CocoExport,
    DatasetVersion,
    Event,
    EventInput,
    EventPage,
    HfExport,
    Level,
    Policy,
    Source,
    VersionDatum,
    VersionRecord,
    YoloExport,
)
from graphlake_client.vault import Vault

if TYPE_CHECKING:
    from graphlake_client.coco import CocoImport
    from graphlake_client.voc import VocImport


def _silent(_: str) -> None:
    """The default `say` of the importers: no progress lines."""


def _event_filter(where: Sequence[Predicate], event_types: Sequence[str] | None, min_level: Level | None,
                  source: Source | None, origin: str | None, alert_only: bool, **more: Any) -> dict[str, Any]:
    """An EventFilter of the events verbs' arguments, without those not given."""
    return {k: v for k, v in {
        "eventTypes": names(event_types, "event_types"), "minLevel": min_level, "source": source, "origin": origin,
        "alertOnly": alert_only or None, **more, **filter_inputs(where, ("data",))}.items() if v is not None}


class Client(Vault):
    """A Graphlake server, over HTTP: GraphQL calls (`execute`), the asset verbs, uploads, downloads,
    save / load, events, dataset versions. Use it as an async context manager, which closes its connections."""

    # --- events
    async def log_event(self, event_type: str, message: str | None = None, *, level: Level = "INFO",
                        data: Any = None, key: str | None = None, **fields: Any) -> str:
        """Log one event; `fields` are EventInput fields (source, alert, traceId, ...). Returns its ID.
        With a `key` (your own name for it: a UUID, say), sending it again stores nothing new and
        returns the same ID, so the call is sent again when its answer is lost (`_log`)."""
        return (await self._log([{"eventType": event_type, "message": message, "level": level, "data": data,
                                  "key": key, **fields}]))[0]

    async def log_events(self, events: Sequence[EventInput]) -> list[str]:
        """Log a batch of events (results.EventInput) with one request and one bulk write. Returns their IDs.
        When every event has a `key`, the batch is sent again if its answer is lost: the lake finds
        what an earlier attempt stored (the same IDs back), and stores each event once."""
        return await self._log([dict(e) for e in events])

    async def query_events(self, *where: Predicate, event_types: Sequence[str] | None = None,
                           min_level: Level | None = None, source: Source | None = None,
                           after: datetime | None = None, before: datetime | None = None,
                           origin: Literal["CLIENT", "LAKE"] | None = None, alert_only: bool = False,
                           include_archived: bool = False, by_received: bool = False, oldest_first: bool = False,
                           page_size: int = PAGE_SIZE, cursor: str | None = None) -> AsyncIterator[EventPage]:
        """Pages of the events matching every filter, newest first (by the sender's clock, or with
        `by_received` by when the lake stored them; `oldest_first` reverses): `where` holds predicates on
        their data (`data("od600") > 0.3`), `after` / `before` bound their time, `origin` picks the lab's
        own (CLIENT) or the lake's (LAKE). `cursor` resumes after a page's `end_cursor`."""
        event_filter = _event_filter(where, event_types, min_level, source, origin, alert_only,
                                     after=wire_time(after, "after"), before=wire_time(before, "before"),
                                     includeArchived=include_archived)
        variables = {"filter": event_filter, "first": page_size, "orderBy": "RECEIVED" if by_received else "TIMESTAMP",
                     "direction": "ASC" if oldest_first else "DESC"}
        async for nodes, end_cursor, has_next in self._walk(ops.EVENTS_PAGE, "events", variables, cursor):
            yield EventPage(nodes, end_cursor, has_next)

    async def follow_events(self, *where: Predicate, event_types: Sequence[str] | None = None,
                            min_level: Level | None = None, source: Source | None = None,
                            origin: Literal["CLIENT", "LAKE"] | None = None, alert_only: bool = False,
                            after: str | None = None) -> AsyncIterator[Event]:
        """The events matching every filter (as query_events takes them) as they are logged, each
        once, until the caller stops (break, or cancel: the stream is closed): the `events`
        subscription over SSE (follow.py). `after`, an event's ID (or a cursor of events by
        RECEIVED), starts with those received since it. A stream that ends (the server restarting,
        the network) is opened again with the retry policy, resuming where it stood; a revoked
        token stops it with an UNAUTHENTICATED GraphlakeClientError."""
        event_filter = _event_filter(where, event_types, min_level, source, origin, alert_only)
        async with aclosing(Follower(self, event_filter, after).events()) as events:
            async for event in events:
                yield event

    async def _log(self, events: list[dict[str, Any]]) -> list[str]:
        for n, event in enumerate(events):  # as a value or metadata: a datetime in data is refused, not made text
            check_json(event.get("data"), f"inputs[{n}].data")
            if event.get("timestamp") is not None:
                event["timestamp"] = wire_time(event["timestamp"], f"inputs[{n}].timestamp")
        inputs = [{k: v for k, v in e.items() if v is not None} for e in events]
        # Keyed, every event: safe to send twice (the lake finds them by key). One without a key would
        # be stored again, so such a batch is sent again only when it never reached the server.
        send = self._keyed if inputs and all("key" in e for e in inputs) else self.execute
        ids: list[str] = (await send(ops.LOG_EVENTS, {"inputs": inputs}))["logEvents"]["ids"]
        return ids

    # --- dataset versions
    async def dataset_id(self, name: str) -> str:
        """The id of the dataset named `name`, created if it does not exist."""
        found = (await self.execute(ops.DATASET, {"name": name}))["dataset"]
        return found["id"] if found else (await self.execute(ops.CREATE_DATASET, {"name": name}))["createDataset"]["id"]

    async def create_dataset_version(self, dataset: str, version: str, *, parent: str | None = None,
                                     description: str | None = None, add_datums: list[str] | None = None,
                                     remove_datums: list[str] | None = None, add_annotation_sets: list[str] | None = None,
                                     remove_annotation_sets: list[str] | None = None,
                                     from_collection: str | None = None) -> DatasetVersion:
        """Freeze a new version of `dataset` (by name, made if new) from a `parent` version name, datum and set IDs, or a collection."""
        inputs: dict[str, Any] = {"version": version, "description": description, "addDatums": add_datums,
                                  "removeDatums": remove_datums, "addAnnotationSets": add_annotation_sets,
                                  "removeAnnotationSets": remove_annotation_sets}
        # Both looked up before the dataset is made: a misspelt dataset name must not leave a dataset behind.
        if parent is not None:
            found = (await self.execute(ops.VERSION_ID, {"dataset": dataset, "version": parent}))["datasetVersion"]
            if found is None:
                raise GraphlakeClientError(f"dataset {dataset!r} has no version {parent!r}", "NOT_FOUND", "parent")
            inputs["parentId"] = found["id"]
        if from_collection is not None:
            inputs["fromCollection"] = await self.find_collection(from_collection)
            if inputs["fromCollection"] is None:
                raise GraphlakeClientError(f"no collection named {from_collection!r}", "NOT_FOUND", "from_collection")
        inputs["datasetId"] = await self.dataset_id(dataset)
        inputs = {k: v for k, v in inputs.items() if v is not None}
        made: DatasetVersion = (await self.execute(ops.CREATE_VERSION, {"input": inputs}))["createDatasetVersion"]
        return made

    # --- moving datasets in and out (the coco extra: pycocotools, Pillow)
    async def import_coco(self, annotations: Path, images: Path, dataset: str, *, version: str | None = None,
                          predictions: Path | None = None, model: str = "coco-results", mount: str | None = None,
                          set_name: str | None = None, split: str = "UNASSIGNED",
                          say: Callable[[str], None] = _silent) -> CocoImport:
        """Import a COCO annotations file and its images into `dataset` (graphlake_client.coco), the
        images in `split`, finishing with dataset version `version` if given; `predictions` into the
        set `<set_name or dataset> <model> predictions`, so each model's are a set of their own beside
        one ground truth. Returns a CocoImport."""
        from graphlake_client.coco import import_coco

        return await import_coco(self, annotations, images, dataset, version=version, predictions=predictions,
                                 model=model, mount=mount, set_name=set_name, split=split, say=say)

    async def read_version(self, version: str) -> AsyncGenerator[tuple[VersionDatum, list[VersionRecord]]]:
        """Every datum of a dataset version (an id, or DATASET/VERSION) as it was frozen, with its
        records: `(datum, records)` pairs in the version's order, read from its content file (one
        download) where it has one, else page by page. A datum holds `id`, `split`, `metadata`,
        `roles` and `asset` (its image, with `downloadUrl`); a record `id`, `key`, `kind`, `label`,
        `score`, `value`, `attributes`, `verified`, `source` (its `kind` alone: HUMAN, MODEL or
        DERIVED; null from the file of a version built before it was written there), `set`, `asset`
        (by id) and `geometry`, a mask's `asset` in full. What the exporters read (graphlake_client/version_reading.py)."""
        from graphlake_client.version_reading import find_version, version_datums

        found = await find_version(self, version)
        async with aclosing(version_datums(self, found["id"], from_file=True)) as pairs:
            async for datum, records in pairs:  # the readers' plain dicts, in the shapes results.py names
                yield cast(VersionDatum, datum), cast(list[VersionRecord], records)

    async def export_coco(self, version: str, dest: Path, *, replace: bool = False) -> CocoExport:
        """Write a dataset version (an id, or DATASET/VERSION) as COCO under `dest`: images/,
        annotations.json, and a results file per prediction set: results.json when it holds one,
        results-<model>.json each when several (graphlake_client.coco_export; `results_files` says
        which holds which). A `dest` holding an earlier export's images/, annotations.json or results
        files is refused (CONFLICT) unless `replace`, which removes those first."""
        from graphlake_client.coco_export import export_coco

        return await export_coco(self, version, dest, replace=replace)

    async def export_yolo(self, version: str, dest: Path, *, split_ratios: tuple[float, float, float] | None = None,
                          seed: int = 0, replace: bool = False) -> YoloExport:
        """Write a dataset version as an Ultralytics YOLO dataset under `dest`: images/<split>/,
        labels/<split>/*.txt, sources/<split>/*.txt (who made each label line), data.yaml
        (graphlake_client.yolo_export; the yolo extra). With `split_ratios` (train, validation,
        test), UNASSIGNED datums go where trainingSplit puts them with those ratios and `seed`. A
        `dest` holding an earlier export's images/, labels/ or sources/ is refused (CONFLICT) unless
        `replace`, which removes those folders first."""
        from graphlake_client.yolo_export import export_yolo

        return await export_yolo(self, version, dest, split_ratios=split_ratios, seed=seed, replace=replace)

    async def export_hf(self, version: str, dest: Path, *, split_ratios: tuple[float, float, float] | None = None,
                        seed: int = 0, replace: bool = False) -> HfExport:
        """Write a dataset version as a folder `datasets.load_dataset` loads: <split>/ images with
        metadata.parquet, and a README naming the splits (graphlake_client.hf_export; the hf extra).
        `split_ratios`, `seed` and `replace` (its split folders) as for export_yolo."""
        from graphlake_client.hf_export import export_hf

        return await export_hf(self, version, dest, split_ratios=split_ratios, seed=seed, replace=replace)

    async def import_voc(self, root: Path, split: str, dataset: str, *, version: str | None = None,
                         mount: str | None = None, set_name: str | None = None, image_set: str = "Main",
                         say: Callable[[str], None] = _silent) -> VocImport:
        """Import one split of a Pascal VOC tree (ImageSets/<image_set>/<split>.txt, `Main` or
        `Segmentation`, Annotations, JPEGImages, SegmentationClass, SegmentationObject) into
        `dataset` (graphlake_client.voc; the voc extra). Returns a VocImport."""
        from graphlake_client.voc import import_voc

        return await import_voc(self, root, split, dataset, version=version, mount=mount, set_name=set_name,
                                image_set=image_set, say=say)

    async def export_bundle(self, version: str, dest: Path | str, *,
                            progress: Callable[[int, int], None] | None = None, replace: bool = False) -> BundleExport:
        """Write a dataset version as a self-contained bundle at `dest`: a directory, or a path ending
        in .tar (graphlake_client.bundle_export; `progress(done, total)` in bytes). No extra needed;
        or an "s3://bucket/prefix" (a str), written with boto3's credentials (the s3 extra). A `dest`
        holding anything but this version's bundle is CONFLICT unless `replace`."""
        from graphlake_client.bundle_export import export_bundle

        return await export_bundle(self, version, dest, progress=progress, replace=replace)

    async def import_bundle(self, src: Path | str, *, policy: Policy = "copy", dry_run: bool = False,
                            mount: str | None = None, say: Callable[[str], None] = _silent,
                            progress: Callable[[int], None] | None = None,
                            locate: Callable[[str], dict[str, Any]] | None = None,
                            dataset: str | None = None) -> BundleImport:
        """Import a bundle (a directory or a .tar, or an "s3://bucket/prefix" read with boto3's
        credentials): prepare, then commit unless `dry_run` (graphlake_client.bundle_import: `policy`
        copy, copy-if-missing or reference, `mount` for reference from S3, `say`, `progress`;
        `dataset` imports it into a dataset of that name instead of the bundle's). Returns the report."""
        from graphlake_client.bundle_import import import_bundle

        return await import_bundle(self, src, policy=policy, dry_run=dry_run, mount=mount, say=say, progress=progress,
                                   locate=locate, dataset=dataset)

    async def import_bundle_on_mount(self, path: str, *, mount: str | None = None, policy: Policy = "copy",
                                     dry_run: bool = False, dataset: str | None = None) -> BundleImport:
        """Have the server import a bundle that lies on one of its mounts (`path` relative to the
        mount's root): prepareBundleImport, or commitBundleImport unless `dry_run`. The server's
        BundleImportReport, in import_bundle's shape (bundle_import.report_of). Nothing passes
        through this machine."""
        from graphlake_client.bundle_import import report_of

        document = ops.PREPARE_BUNDLE_IMPORT if dry_run else ops.COMMIT_BUNDLE_IMPORT
        answer = await self.execute(document, {"input": {"path": path, "mount": mount, "dataset": dataset,
                                                         "policy": policy.upper().replace("-", "_")}})
        return report_of(answer["prepareBundleImport" if dry_run else "commitBundleImport"])
