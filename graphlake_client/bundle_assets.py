"""A bundle import's assets: each found in the lake by SHA-256, or made (files uploaded through the
normal signed-URL path, values and texts stored, EXTERNAL objects registered again by URL).

New assets are filed in a collection named after the dataset (files at `bundle/<sha256>`), which
pins them (a mask a version does not pin by role stays) and lets the copy policy find its own
earlier uploads on a rerun: the server answers `unchanged` for a file filed there already.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphlake_client import operations as ops
from graphlake_client.bundle_files import digest_problem, payloads_refused, problems_in_threads
from graphlake_client.bundle_lookup import assets_by_sha, collection_named
from graphlake_client.dataset_import import chunks
from graphlake_client.direct import file_digest
from graphlake_client.errors import GraphlakeClientError, UploadsFailed
from graphlake_client.exit_loop import to_thread

if TYPE_CHECKING:
    from graphlake_client.bundle_import import Pass

UPLOAD_BATCH = 100  # files uploaded (and reported) at a time
STORED_KINDS = ("VALUE", "TEXT")


async def place_assets(job: Pass, write: bool) -> None:
    """Map every asset of the bundle to one of the lake (`job.asset_of`), making the missing ones if `write`."""
    assets = job.manifest["assets"]
    groups: dict[tuple[str, str], list[str]] = {}  # (kind, sha256) -> refs: one lake asset serves them all
    externals: dict[str, list[str]] = {}  # uri -> refs
    for ref, asset in assets.items():
        if asset["kind"] == "EXTERNAL":
            externals.setdefault(asset["uri"], []).append(ref)
        else:
            groups.setdefault((asset["kind"], asset["sha256"]), []).append(ref)
    referenced = referenced_files(job.manifest) if job.policy == "reference" else set()
    files = [key for key in groups if key[0] == "FILE" and key[1] not in referenced]
    if referenced and job.locate is None:
        raise GraphlakeClientError(
            "the reference policy registers payloads where they lie, as EXTERNAL assets, and a lake registers only "
            "objects of its S3 mounts or http(s) URLs: the files of a bundle in a directory or a tar cannot be "
            "referenced (a bundle on an S3 mount can, through commitBundleImport). Import it with --policy copy or "
            "copy-if-missing", "BAD_USER_INPUT", "policy")
    dataset = job.manifest["dataset"]["name"]
    collection = await collection_named(job.lake, dataset)
    # copy finds only its own earlier uploads (in the dataset's collection); copy-if-missing any file.
    if job.policy == "copy":
        found = await assets_by_sha(job.lake, files, collection) if collection else {}
    else:
        found = await assets_by_sha(job.lake, files, None)
    found.update(await assets_by_sha(job.lake, [key for key in groups if key[0] in STORED_KINDS], None))
    new = [key for key in groups if key not in found and key[1] not in referenced]
    job.to_read = {assets[groups[key][0]]["payload"]["path"] for key in new}
    job.report.assets.present = len(found)
    # Registering an object again is a no-op the server reports unchanged: counted new, made at most once.
    job.report.assets.new = len(new) + len(externals) + len(referenced)
    job.report.new_bytes = sum(assets[groups[key][0]]["payload"]["size"] for key in new)
    for uri, refs in externals.items():
        if not uri.startswith(("https://", "http://")):
            job.report.conflicts.append(f"asset {refs[0]} is an external object at {uri}: a bundle registers "
                                        "external objects again by http(s) URL only")
    if write and (new or externals or referenced):
        await job.check(job.to_read)  # what prepare found held, and the lake no longer holds
        collection = collection or await job.lake.collection_id(dataset)
        found.update(await _upload(job, [key for key in new if key[0] == "FILE"], groups, collection))
        found.update(await _store(job, [key for key in new if key[0] in STORED_KINDS], groups, collection))
        for uri, refs in externals.items():
            job.asset_of.update(dict.fromkeys(refs, await _register(job, {"url": uri, "collectionId": collection}, assets[refs[0]])))
        for key in [key for key in groups if key[1] in referenced]:
            entry = assets[groups[key][0]]
            where = {**job.locate(entry["payload"]["path"]), "collectionId": collection}  # type: ignore[misc]
            found[key] = await _register(job, where, entry)
    for key, refs in groups.items():
        if key in found:
            job.asset_of.update(dict.fromkeys(refs, found[key]))


def referenced_files(manifest: dict[str, Any]) -> set[str]:
    """The SHA-256s of the files the reference policy registers in place: every file but masks. A
    mask must be an image asset, and an EXTERNAL one has no media type the lake knows, so masks
    are copied."""
    masks = {record["geometry"]["mask"]["asset"] for datum in manifest["datums"] for record in datum["records"]
             if record["geometry"] and "mask" in record["geometry"]}
    files = {a["sha256"] for a in manifest["assets"].values() if a["kind"] == "FILE"}
    return files - {manifest["assets"][ref]["sha256"] for ref in masks}


def _fields(asset: dict[str, Any]) -> dict[str, Any]:
    """What an asset keeps of its source's description."""
    return {"name": asset["name"], "description": asset.get("description"), "labels": asset.get("labels") or None,
            "metadata": asset.get("metadata") or None}


def _same_digest(made: dict[str, Any], key: tuple[str, str], asset: dict[str, Any]) -> str:
    if made["sha256"] != key[1]:  # the version's hash names assets by digest: it would differ
        raise GraphlakeClientError(f"{asset['payload']['path']}: the lake stored this {key[0]} with SHA-256 "
                                   f"{made['sha256']}, the bundle names {key[1]}", "INTEGRITY")
    return made["id"]


async def _upload(job: Pass, keys: list[tuple[str, str]], groups: dict[tuple[str, str], list[str]],
                  collection: str) -> dict[tuple[str, str], str]:
    made: dict[tuple[str, str], str] = {}
    for n, chunk in enumerate(chunks(keys, UPLOAD_BATCH)):
        entries = [job.manifest["assets"][groups[key][0]] for key in chunk]
        async with _in_threads(job.reader.files([e["payload"]["path"] for e in entries])) as local:
            # The manifest's digest is declared as is: the files are not hashed here, and the lake
            # checks what it stores against it (Pass.hashing).
            files = [(local[e["payload"]["path"]], {**_fields(e), "mediaType": e.get("media_type"),
                                                    "collectionId": collection, "path": f"bundle/{key[1]}",
                                                    "sha256": key[1]})
                     for key, e in zip(chunk, entries, strict=True)]
            try:
                uploaded = await job.lake.upload_batch(files, progress=job.progress)
            except GraphlakeClientError as error:
                await _name_refused(job, [(e["payload"], local[e["payload"]["path"]]) for e in entries], error)
                raise
        made.update({key: _same_digest(a, key, e) for key, a, e in zip(chunk, uploaded, entries, strict=True)})
        job.say(f"uploaded {min((n + 1) * UPLOAD_BATCH, len(keys))} of {len(keys)} files")
    return made


async def _name_refused(job: Pass, sent: list[tuple[dict[str, Any], Path]], error: GraphlakeClientError) -> None:
    """Raise the payload check's error for files of a batch the lake refused (`sent`: each payload's
    manifest entry and the file the lake was given) if their bytes are not what the manifest says: a
    commit does not hash them first (Pass.hashing), and the lake names only the file it was given (a
    scratch copy, a descriptor) and the digest it found. Only then are they hashed again: the files
    sent (what the lake read, not the bundle's objects again), and of those only the ones that failed
    when the error says which. A refusal for another cause is left to the caller to raise."""
    failures = error.failures if isinstance(error, UploadsFailed) else {}
    codes = {e.code for e in failures.values()} or {error.code}
    if job.hashing or not codes & {"BAD_USER_INPUT", "INTEGRITY"}:
        return
    refused = [(payload, file) for payload, file in sent if str(file) in failures] or sent
    if problems := await problems_in_threads(lambda pair: digest_problem(pair[0], *file_digest(pair[1])), refused,
                                             job.lake.concurrency):
        raise payloads_refused(problems) from error


@asynccontextmanager
async def _in_threads(files: AbstractContextManager[dict[str, Path]]) -> AsyncIterator[dict[str, Path]]:
    """A reader's `files` entered and left in threads: a tar's members are extracted (and then removed)
    there, and an S3 bundle's downloaded, which on the server's event loop (commitBundleImport) held
    every other request for as long as a batch of files took to copy."""
    local = await to_thread(files.__enter__)
    try:
        yield local
    except BaseException as error:
        if not await to_thread(files.__exit__, type(error), error, error.__traceback__):
            raise
    else:
        await to_thread(files.__exit__, None, None, None)


async def _store(job: Pass, keys: list[tuple[str, str]], groups: dict[tuple[str, str], list[str]],
                 collection: str) -> dict[tuple[str, str], str]:
    made: dict[tuple[str, str], str] = {}
    for key in keys:
        entry = job.manifest["assets"][groups[key][0]]
        data = await to_thread(job.reader.read_bytes, entry["payload"]["path"])
        # Hashed here, not by the lake: a value or text stored is not refused for its digest, and is
        # small (what a commit does not hash first, Pass.hashing).
        if problem := digest_problem(entry["payload"], len(data), hashlib.sha256(data).hexdigest()):
            raise payloads_refused([problem])
        if key[0] == "VALUE":
            asset = (await job.lake.execute(ops.STORE_VALUE, {"input": {**_fields(entry), "value": json.loads(data)}}))["storeValue"]
        else:
            asset = (await job.lake.execute(ops.STORE_TEXT, {"input": {
                **_fields(entry), "text": data.decode(), "mediaType": entry.get("media_type") or "text/plain"}}))["storeText"]
        made[key] = _same_digest(asset, key, entry)
        await job.lake.execute(ops.ADD_TO_COLLECTION, {"input": {"collectionId": collection, "items": [
            {"assetId": asset["id"], "path": f"bundle/{key[0].lower()}/{key[1]}"}]}})
    if keys:
        job.say(f"stored {len(keys)} values and texts")
    return made


async def _register(job: Pass, where: dict[str, Any], asset: dict[str, Any]) -> str:
    """An object registered where it lies (an http(s) URL, or an S3 mount's object), keeping the
    asset's name and description; a no-op for an object registered already."""
    fields = {k: v for k, v in _fields(asset).items() if k not in ("name", "description")}  # not registerExternal's
    done = (await job.lake.execute(ops.REGISTER_EXTERNAL, {"input": {**where, **fields}}))["registerExternal"]
    found = done["assets"] + done["unchanged"]
    if len(found) != 1:
        raise GraphlakeClientError(f"registering {where} found {len(found)} objects, not one", "CONFLICT")
    if (found[0]["name"], found[0]["description"]) != (asset["name"], asset.get("description")):
        await job.lake.execute(ops.UPDATE_ASSET, {"input": {"id": found[0]["id"], "name": asset["name"],
                                                                 "description": asset.get("description")}})
    return found[0]["id"]
