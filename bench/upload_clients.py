"""The upload bench's uploaders: the file helpers (random bytes, SHA-256, byte ranges), GraphlakeUploader
(createUpload(s) -> the signed PUTs or direct writes -> completeUpload(s), timing each phase) and the
baselines that skip Graphlake (raw aioboto3 on MinIO, shutil.copyfile on the local disk); `bounded`
keeps at most CONCURRENCY parts or files in flight, on both sides (bench/upload.py times them)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from upload_server import BUCKET, THRESHOLD

from graphlake_client.direct import write_in_place
from services.uploads.sessions import part_size_for
from storage.concurrency import bounded_gather
from tests.operations import document

MIB = 1024 * 1024
CONCURRENCY = 4  # parts in flight at once, on both sides
MEDIA_TYPE = "application/octet-stream"
# --- the bytes

def write_random_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for offset in range(0, size, 8 * MIB):
            out.write(os.urandom(min(8 * MIB, size - offset)))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def read_range(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as source:
        source.seek(offset)
        return source.read(length)


async def bounded(jobs: list[Callable[[], Awaitable[object]]]) -> None:
    """Runs the jobs with at most CONCURRENCY in flight, as both sides of the comparison do."""
    await bounded_gather(jobs, CONCURRENCY)


# --- the Graphlake flow

@dataclass
class Timing:
    """Wall times of one upload, and of the Graphlake flow's phases (empty for a baseline)."""

    total: float
    phases: dict[str, float] = field(default_factory=dict)


class GraphlakeUploader:
    """A client of the upload API: createUpload, PUT the bytes where it says, completeUpload."""

    def __init__(self, graphql: aiohttp.ClientSession, puts: aiohttp.ClientSession) -> None:
        self.graphql = graphql  # with the server's base URL and the token
        self.puts = puts  # without either: the signed URLs carry their own authorization

    async def operation(self, name: str, variables: dict) -> dict:
        body = {"query": document(name), "operationName": name, "variables": variables}
        async with self.graphql.post("/graphql", json=body) as response:
            response.raise_for_status()
            answer = await response.json()
        if answer.get("errors"):
            raise RuntimeError(f"{name}: {answer['errors']}")
        return answer["data"]

    async def put(self, url: str, data: bytes, headers: dict | None = None) -> None:
        async with self.puts.put(url, data=data, headers=headers or {}) as response:
            if response.status != 200:
                raise RuntimeError(f"PUT {url.split('?')[0]}: {response.status} {await response.text()}")

    async def upload(self, path: Path, size: int, mount: str, sha256: str | None, direct: bool) -> tuple[Timing, str]:
        """Times one upload; returns the timing and the stored object's key."""
        start = time.perf_counter()
        fields = {"name": path.name, "sizeBytes": size, "mediaType": MEDIA_TYPE, "mount": mount, "direct": direct}
        session = (await self.operation("CreateUpload", {"input": {**fields, "sha256": sha256}}))["createUpload"]
        created = time.perf_counter()
        if session["directPath"]:
            await asyncio.to_thread(write_in_place, path, Path(session["directPath"]))
        elif session["parts"]:
            part_size = session["partSizeBytes"]
            await bounded([self._part_job(path, size, part_size, part) for part in session["parts"]])
        else:
            await self.put(session["url"], await asyncio.to_thread(read_range, path, 0, size), session["headers"])
        sent = time.perf_counter()
        asset = (await self.operation("CompleteUpload", {"input": {"id": session["id"]}}))["completeUpload"]
        done = time.perf_counter()
        if asset["status"] != "ACTIVE" or asset["sizeBytes"] != size:
            raise RuntimeError(f"upload did not complete: {asset}")
        phases = {"create": created - start, "put": sent - created, "complete": done - sent}
        return Timing(done - start, phases), asset["storage"]["key"]

    async def upload_many(self, path: Path, size: int, files: int, mount: str, sha256: str | None,
                          direct: bool) -> tuple[Timing, list[str]]:
        """Times `files` uploads of the file's bytes as a client uploading a directory does:
        one createUploads, the PUTs (or direct writes) CONCURRENCY at a time, one completeUploads."""
        start = time.perf_counter()
        inputs = [{"name": f"{i}-{path.name}", "sizeBytes": size, "mediaType": MEDIA_TYPE, "mount": mount, "sha256": sha256,
                   "direct": direct} for i in range(files)]
        sessions = (await self.operation("CreateUploads", {"inputs": inputs}))["createUploads"]
        created = time.perf_counter()
        if direct:
            await bounded([lambda s=s: asyncio.to_thread(write_in_place, path, Path(s["directPath"])) for s in sessions])
        else:
            data = await asyncio.to_thread(read_range, path, 0, size)
            await bounded([lambda s=s: self.put(s["url"], data, s["headers"]) for s in sessions])
        sent = time.perf_counter()
        done = (await self.operation("CompleteUploads", {"ids": [s["id"] for s in sessions]}))["completeUploads"]
        finished = time.perf_counter()
        if done["failures"] or len(done["assets"]) != files:
            raise RuntimeError(f"uploads did not complete: {done['failures']}")
        phases = {"create": created - start, "put": sent - created, "complete": finished - sent}
        return Timing(finished - start, phases), [f"assets/{a['id']}" for a in done["assets"]]

    def _part_job(self, path: Path, size: int, part_size: int, part: dict) -> Callable[[], Awaitable[None]]:
        offset = (part["partNumber"] - 1) * part_size

        async def job() -> None:
            data = await asyncio.to_thread(read_range, path, offset, min(part_size, size - offset))
            await self.put(part["url"], data)

        return job


# --- the baselines

async def s3_baseline(s3, path: Path, size: int, key: str) -> None:
    """Raw aioboto3: put_object below the threshold, else multipart with the server's part size."""
    part_size = part_size_for(size, THRESHOLD)
    if part_size is None:
        body = await asyncio.to_thread(read_range, path, 0, size)
        await s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=MEDIA_TYPE)
        return
    upload_id = (await s3.create_multipart_upload(Bucket=BUCKET, Key=key, ContentType=MEDIA_TYPE))["UploadId"]
    etags: dict[int, str] = {}

    def part_job(number: int) -> Callable[[], Awaitable[None]]:
        offset = (number - 1) * part_size

        async def job() -> None:
            data = await asyncio.to_thread(read_range, path, offset, min(part_size, size - offset))
            answer = await s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=data)
            etags[number] = answer["ETag"]

        return job

    await bounded([part_job(n) for n in range(1, -(-size // part_size) + 1)])
    await s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]})


def copy_baseline(path: Path, target: Path) -> None:
    shutil.copyfile(path, target)

