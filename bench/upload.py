"""Uploads: Graphlake's signed-URL flow against a raw baseline on the same store, in the same run.

    .venv/bin/python bench/upload.py [--sizes 1,64,512] [--runs 3] [--sha256] [--unsigned-baseline] [--quick]

For each file size (MiB; one temp file of random bytes per size) and each mount it times
  graphlake: createUpload over GraphQL -> PUT the bytes to the signed URL(s) it returns (one PUT,
             or the parts, 4 at a time, each read from the file as it is sent) -> completeUpload;
             on the local mount also as a client sharing its filesystem does (local/direct):
             createUpload(direct: true) -> copy the file into place (copyfile, rename) -> completeUpload;
  baseline:  what a program that skips Graphlake would do with the same bytes:
             S3 (MinIO)  raw aioboto3 with storage/s3.py's botocore Config: put_object below the
                         server's multipart threshold, else a multipart upload with the same part
                         size and concurrency;
             local       shutil.copyfile of the file, on the same disk.
and prints the median throughput of each, their ratio, and the median time of each phase of the
Graphlake flow. Graphlake never carries the bytes of an S3 upload itself, so the S3 ratio shows
what the GraphQL round trips and the server's bookkeeping cost; for the local mount over HTTP
(local/http) the bytes do pass through the server (its signed /blobs route), so that ratio
includes an HTTP hop; a direct write (local/direct) is the baseline's own copy plus the bookkeeping.

The GraphQL requests and the signed PUTs go through aiohttp, the HTTP client aioboto3 itself uses,
so both sides of the S3 comparison share a transport. The server runs in a process of its own, as it does for real users,
so the client's work does not share its event loop. In it, a middleware counts the request bytes
the server receives on /graphql per upload (and, separately, on /blobs, which for the local mount
is the file itself), and a PyMongo listener sums the database time of those GraphQL requests; the
bench reads both from the middleware's /bench/counters between uploads, untimed.

Without --sha256 no checksum is declared, so completeUpload does not read the object back; with
it the digest (computed once per size, untimed) is declared. Uses FerretDB and MinIO from the
build cache (or GRAPHLAKE_BENCH_MONGODB_URL); everything is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aioboto3
import aiohttp
from upload_clients import (
    MIB,
    GraphlakeUploader,
    Timing,
    bounded,
    copy_baseline,
    file_sha256,
    s3_baseline,
    write_random_file,
)
from upload_server import (
    ACCESS_KEY,
    BUCKET,
    COUNTERS_PATH,
    S3_MOUNT,
    SECRET_KEY,
    THRESHOLD,
    make_settings,
    s3_config,
    server_process,
    start_services,
)

from graphlake.mounts import build_stores
from graphlake.settings import Settings
from storage import ObjectStore

SETTLE_SECONDS = 0.5
WAKE_REQUESTS = 5


# --- running and reporting

@dataclass
class Row:
    size: int
    mount: str
    files: int = 1  # more: a directory of that many files of `size`, through the batch mutations
    direct: bool = False  # local mount: the client writes the files in place itself
    graphlake: list[Timing] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    graphql_bytes: list[int] = field(default_factory=list)
    blob_bytes: list[int] = field(default_factory=list)
    db_commands: list[int] = field(default_factory=list)
    db_seconds: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "s3" if self.mount == S3_MOUNT else f"{self.mount}/{'direct' if self.direct else 'http'}"

    @property
    def what(self) -> str:
        return f"{self.size // MIB} MiB" if self.files == 1 else f"{self.files}x{self.size // MIB} MiB"

    def mbps(self, seconds: float) -> float:
        return self.size * self.files / 1e6 / seconds

    @property
    def graphlake_mbps(self) -> float:
        return self.mbps(statistics.median(t.total for t in self.graphlake))

    @property
    def baseline_mbps(self) -> float:
        return self.mbps(statistics.median(self.baseline))

    @property
    def ratio(self) -> float:
        return self.graphlake_mbps / self.baseline_mbps

    @property
    def target(self) -> float:
        if self.mount == "local":
            return 0.7
        return 0.9 if self.size >= THRESHOLD else 0.7


async def settle() -> None:
    """Start the next run on a quiet machine: without the last one's dirty pages, and after the
    database has written back what it just took (its checkpoint otherwise lands in the next run,
    which made a copy baseline right after a Graphlake run take 7x as long as one before it).
    Each side then wakes its servers with untimed requests before it is timed."""
    os.sync()
    await asyncio.sleep(SETTLE_SECONDS)
    os.sync()


class Bench:
    """Holds the running services and clients; `measure` runs graphlake and baseline alternately."""

    def __init__(self, *, uploader: GraphlakeUploader, stores: dict[str, ObjectStore], s3, data_dir: Path) -> None:
        self.uploader, self.stores = uploader, stores
        self.s3, self.data_dir = s3, data_dir

    async def counters(self) -> dict[str, float]:
        async with self.uploader.graphql.get(COUNTERS_PATH) as response:
            response.raise_for_status()
            return await response.json()

    async def graphlake_once(self, row: Row, path: Path, digest: str | None) -> None:
        for _ in range(WAKE_REQUESTS):  # untimed: wake the server and its database after settle()
            await self.uploader.operation("Assets", {"first": 1})
        before = await self.counters()
        if row.files == 1:
            timing, key = await self.uploader.upload(path, row.size, row.mount, digest, row.direct)
            keys = [key]
        else:
            timing, keys = await self.uploader.upload_many(path, row.size, row.files, row.mount, digest, row.direct)
        after = await self.counters()
        row.graphlake.append(timing)
        row.db_commands.append(int(after["db_commands"] - before["db_commands"]))
        row.db_seconds.append(after["db_seconds"] - before["db_seconds"])
        row.graphql_bytes.append(int(after["graphql"] - before["graphql"]) // row.files)
        row.blob_bytes.append(int(after["blobs"] - before["blobs"]) // row.files)
        for key in keys:
            await self.remove_graphlake_object(row.mount, key)

    async def baseline_once(self, row: Row, path: Path) -> None:
        if row.mount == "local":
            targets = [self.data_dir / f"baseline-{uuid.uuid4().hex}" for _ in range(row.files)]
            start = time.perf_counter()
            for target in targets:
                copy_baseline(path, target)
            row.baseline.append(time.perf_counter() - start)
            for target in targets:
                target.unlink()
        else:
            await self.s3.head_bucket(Bucket=BUCKET)  # untimed: wake MinIO and the connection
            keys = [f"baseline/{uuid.uuid4().hex}" for _ in range(row.files)]
            start = time.perf_counter()  # several files: CONCURRENCY at a time, as the Graphlake side
            await bounded([lambda k=k: s3_baseline(self.s3, path, row.size, k) for k in keys])
            row.baseline.append(time.perf_counter() - start)
            for key in keys:
                await self.s3.delete_object(Bucket=BUCKET, Key=key)
        await settle()

    async def remove_graphlake_object(self, mount: str, key: str) -> None:
        await self.stores[mount].delete(key)  # this process's own handle on the server's mounts
        await settle()

    async def measure(self, size: int, mount: str, path: Path, digest: str | None, runs: int, files: int = 1,
                      direct: bool = False) -> Row:
        row = Row(size, mount, files, direct=direct)
        for i in range(runs):  # alternate which goes first, so neither always meets a warmer disk
            first_graphlake = i % 2 == 0
            if first_graphlake:
                await self.graphlake_once(row, path, digest)
            await self.baseline_once(row, path)
            if not first_graphlake:
                await self.graphlake_once(row, path, digest)
        return row


def print_report(rows: list[Row], args: argparse.Namespace) -> None:
    print()
    print(f"{'size':>12}  {'mount':<12} {'graphlake MB/s':>14} {'baseline MB/s':>14} {'ratio':>6}  target")
    for r in rows:
        verdict = "met" if r.ratio >= r.target else "MISSED"
        print(f"{r.what:>12}  {r.label:<12} {r.graphlake_mbps:>14.1f} {r.baseline_mbps:>14.1f} "
              f"{r.ratio:>5.2f}x  >= {r.target}x {verdict}")
    print()
    print("graphlake phases, median ms (create = createUpload, put = the signed PUTs, complete = completeUpload;")
    print("database = the server's database commands, summed over the upload):")
    for r in rows:
        med = {p: statistics.median(t.phases[p] for t in r.graphlake) * 1000 for p in ("create", "put", "complete")}
        runs = ", ".join(f"{t.total * 1000:.0f}" for t in r.graphlake)
        base = ", ".join(f"{t * 1000:.0f}" for t in r.baseline)
        db = statistics.median(r.db_seconds) * 1000
        print(f"  {r.what:>10} {r.label:<12} create {med['create']:7.1f}  put {med['put']:8.1f}  "
              f"complete {med['complete']:7.1f}  | database {db:5.1f} in {max(r.db_commands)} commands"
              f"   (graphlake runs: {runs}; baseline runs: {base})")
    print()
    for mount in ("s3", "local"):
        graphql = [b for r in rows if r.label.split("/")[0] == mount for b in r.graphql_bytes]
        if graphql:
            print(f"{mount}: server received {max(graphql)} bytes per upload (GraphQL; largest of {len(graphql)} uploads)"
                  + ("  target < 4096: " + ("met" if max(graphql) < 4096 else "MISSED") if mount == "s3" else ""))
    for r in rows:
        if r.mount == "local" and not r.direct:
            print(f"local: server received {max(r.blob_bytes)} bytes per upload on /blobs for {r.what} "
                  "(the file itself: the local mount's bytes go through the server by design)")
    blobs_s3 = [b for r in rows if r.label == "s3" for b in r.blob_bytes]
    if blobs_s3:
        print(f"s3: server received {max(blobs_s3)} bytes per upload on /blobs")
    print(f"(sha256 declared: {'yes' if args.sha256 else 'no'}; S3 baseline payload signing: "
          f"{'off' if args.unsigned_baseline else 'botocore default (SHA-256 of every byte)'}; "
          f"MB = 10^6 bytes; medians of {args.runs} runs)")


async def run(args: argparse.Namespace, tmp: Path, settings: Settings, secret: str) -> list[Row]:
    session = aioboto3.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
    stores = build_stores(settings)
    async with contextlib.AsyncExitStack() as stack:
        for store in stores.values():
            await store.open()
            stack.push_async_callback(store.close)
        s3 = await stack.enter_async_context(
            session.client("s3", endpoint_url=settings.mounts[S3_MOUNT].endpoint_url,
                           config=s3_config(False if args.unsigned_baseline else None)))
        puts = await stack.enter_async_context(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)))
        graphql = await stack.enter_async_context(aiohttp.ClientSession(
            base_url=f"http://127.0.0.1:{settings.port}", timeout=aiohttp.ClientTimeout(total=600),
            headers={"Authorization": f"Bearer {secret}"}))
        bench = Bench(uploader=GraphlakeUploader(graphql, puts), stores=stores, s3=s3, data_dir=settings.data_dir)
        return await measure_all(bench, args, tmp)


async def measure_all(bench: Bench, args: argparse.Namespace, tmp: Path) -> list[Row]:
    rows = []
    for size_mib in args.sizes:
        size = size_mib * MIB
        path = tmp / f"payload-{size_mib}MiB.bin"
        write_random_file(path, size)
        digest = file_sha256(path) if args.sha256 else None
        ways = [(S3_MOUNT, False), ("local", False), ("local", True)]  # (mount, direct write)
        if size_mib == args.sizes[0]:  # warm connections, caches and code paths once, untimed
            for mount, direct in ways:
                await bench.measure(size, mount, path, digest, runs=1, direct=direct)
        batch = [args.batch] if args.batch > 1 and size_mib == args.sizes[0] else []
        for files in [1, *batch]:
            for mount, direct in ways:
                row = await bench.measure(size, mount, path, digest, args.runs, files, direct=direct)
                print(f"  {row.what} on {row.label}: graphlake {row.graphlake_mbps:.1f} MB/s, "
                      f"baseline {row.baseline_mbps:.1f} MB/s", flush=True)
                rows.append(row)
        path.unlink()
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,64,512", help="file sizes in MiB, comma-separated (default 1,64,512)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per size and mount (default 3)")
    parser.add_argument("--sha256", action="store_true", help="declare each file's SHA-256 in createUpload")
    parser.add_argument("--batch", type=int, default=64,
                        help="also upload this many files of the smallest size as one directory, through "
                             "createUploads/completeUploads (default 64; 1 to skip)")
    parser.add_argument("--quick", action="store_true", help="smoke check: 1 and 64 MiB, one run each")
    parser.add_argument("--unsigned-baseline", action="store_true",
                        help="let the aioboto3 baseline skip SHA-256 payload signing, as presigned URLs do")
    args = parser.parse_args()
    args.sizes = [1, 64] if args.quick else sorted(int(s) for s in args.sizes.split(","))
    args.runs = 1 if args.quick else args.runs
    if not args.sizes or min(args.sizes) < 1 or args.runs < 1:
        parser.error("--sizes must be positive MiB counts and --runs at least 1")
    return args


def main() -> None:
    args = parse_args()
    # `timeout` and friends send SIGTERM: unwind like Ctrl-C, so MinIO, FerretDB and the files go too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="graphlake-bench-upload-") as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        settings = make_settings(tmp, *start_services(tmp, stack))
        secret = stack.enter_context(server_process(settings))
        rows = asyncio.run(run(args, tmp, settings, secret))
    print_report(rows, args)


if __name__ == "__main__":
    main()
