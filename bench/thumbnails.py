"""Thumbnails (issue #21): the asset grid showing 100 of them in Chromium, and one 10 MB image's
thumbnail made, then served.

    .venv/bin/python bench/thumbnails.py [--assets 10000] [--images 100] [--runs 5]

1. The grid. A lake of 10,000 assets (raw inserts, as bench/scale.py grows it) whose newest 100 are
   PNGs uploaded through the API to the local mount, their 256-px thumbnails made beforehand (one
   GET each). In Chromium (the OS package), a fresh browser context each run, a viewport of
   2560 x 2880 (the 100 cards on screen at once) and the grid as the saved view: from the sign-in
   form's submit to 100 thumbnails loaded (complete, with pixels); then from a reload of the
   signed-in app to the same (both by the page's own clock: bench/js/webapp_thumbnails.cjs). Baseline, in the same run: what the page needs, fetched by httpx: the app's AssetList
   query (100, with their thumbnailUrl), then the 100 thumbnails, 6 at a time (a browser's
   connections per host).

2. A 10 MB image, JPEG and PNG (noise: nothing compresses it), on the local mount and on MinIO:
   the first GET of its 512-px thumbnail URL (the thumbnail is made then; the 256-px one the web
   app shows is made as the upload completes, in the background, and waited for) against later GETs
   (served), medians of interleaved runs, each run a new image (so each first GET makes one).
   Baseline: a GET of a stored file of the thumbnail's size from the same store, as downloads are
   served (the local mount's signed blob route; a presigned GET of MinIO).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from graphql import parse, print_ast, separate_operations
from PIL import Image
from pymongo import AsyncMongoClient

from bench.scale import Lake
from bench.upload_server import ACCESS_KEY, BUCKET, SECRET_KEY, start_services
from documents.roles import Role
from graphlake import PROJECT_ROOT
from graphlake.app import create_app
from graphlake.local_services import free_port
from graphlake.settings import S3MountSettings, Settings
from services.auth import create_token
from tests.processes import serving
from tests.waiting import wait_for

WEBAPP = PROJECT_ROOT / "webapp"
CHROMIUM = os.environ.get("GRAPHLAKE_TEST_CHROMIUM", "/usr/bin/chromium")
GRID_PAGE = 100  # the grid's page size (webapp/src/pages/AssetList.tsx)
BROWSER_CONNECTIONS = 6  # per host, over HTTP/1.1
SIZE = 512  # timed for the big image: the web app's 256 is made as an upload completes, before anyone asks

CREATE = "mutation($input: CreateUploadInput!) { createUpload(input: $input) { id url headers } }"
THUMBNAIL = f"query($id: ID!) {{ asset(id: $id) {{ thumbnailUrl(size: {SIZE}) }} }}"
COMPLETE = ("mutation($input: CompleteUploadInput!) { completeUpload(input: $input) "
            "{ id status sha256 downloadUrl thumbnailUrl } }")


def app_query(name: str) -> str:
    """One of the app's operations with its fragments, as urql sends it."""
    text = "\n".join(p.read_text() for p in sorted((WEBAPP / "src" / "operations").glob("*.graphql")))
    return print_ast(separate_operations(parse(text))[name])


async def graphql(http: httpx.AsyncClient, query: str, variables: dict) -> dict:
    answer = (await http.post("/graphql", json={"query": query, "variables": variables})).json()
    assert not answer.get("errors"), answer["errors"]
    return answer["data"]


async def upload(http: httpx.AsyncClient, data: bytes, name: str, media_type: str, mount: str) -> dict:
    """createUpload -> PUT -> completeUpload, as any client does; the ACTIVE asset."""
    variables = {"input": {"name": name, "sizeBytes": len(data), "mediaType": media_type, "mount": mount,
                           "sha256": hashlib.sha256(data).hexdigest()}}
    session = (await graphql(http, CREATE, variables))["createUpload"]
    async with httpx.AsyncClient(timeout=120) as plain:  # no token: a signed URL carries its own authority
        put = await plain.put(session["url"], content=data, headers=session["headers"] or {})
    assert put.status_code == 200, put.text
    asset = (await graphql(http, COMPLETE, {"input": {"id": session["id"]}}))["completeUpload"]
    assert asset["status"] == "ACTIVE", asset
    return asset


def small_png(i: int) -> bytes:
    image = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    image.paste((i * 37 % 256, i * 91 % 256, 200), (20 + i % 400, 20, 200 + i % 400, 200))  # each one different
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def noise(kind: str) -> bytes:
    """About 10 MB of random pixels as a JPEG or a PNG (new ones each call: a new SHA-256)."""
    side = 2950 if kind == "JPEG" else 1870  # ~1.2 bytes a pixel at quality 95; ~3 for PNG
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, kind, **({"quality": 95} if kind == "JPEG" else {}))
    return out.getvalue()


async def timed_get(http: httpx.AsyncClient, url: str) -> tuple[float, bytes]:
    began = time.perf_counter()
    answer = await http.get(url)
    seconds = time.perf_counter() - began
    assert answer.status_code == 200, (answer.status_code, answer.text[:200])
    return seconds, answer.content


async def grid(base: str, secret: str, args: argparse.Namespace, http: httpx.AsyncClient) -> dict[str, float]:
    # What the page asks, as it asks: the first page and, beside it, the count.
    body = {"query": app_query("AssetList"), "operationName": "AssetList",
            "variables": {"filter": {}, "first": GRID_PAGE, "after": None, "withCount": False}}
    count = {"query": app_query("AssetCount"), "operationName": "AssetCount", "variables": {"filter": {}}}
    limits = httpx.Limits(max_connections=BROWSER_CONNECTIONS)
    baseline = []
    for _ in range(args.runs + 1):  # the first warms up
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60,
                                     headers={"Authorization": f"Bearer {secret}"}) as fresh:
            began = time.perf_counter()
            counting = asyncio.create_task(fresh.post("/graphql", json=count))
            edges = (await fresh.post("/graphql", json=body)).json()["data"]["assets"]["edges"]
            urls = [e["node"]["thumbnailUrl"] for e in edges if e["node"]["thumbnailUrl"]]
            assert len(urls) == args.images, len(urls)
            answers = await asyncio.gather(*(fresh.get(u) for u in urls))
            baseline.append(time.perf_counter() - began)
            assert all(a.status_code == 200 for a in answers)
            assert (await counting).json()["data"]["assets"]["totalCount"] == args.assets
    process = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node", str(PROJECT_ROOT / "bench" / "js" / "webapp_thumbnails.cjs"), base, secret,
        str(args.images), str(args.runs), CHROMIUM, env={**os.environ, "WEBAPP_NODE_MODULES": str(WEBAPP / "node_modules")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode:
        sys.exit(f"the browser run failed: {err.decode()}")
    browser = json.loads(out)
    return {"baseline": statistics.median(baseline[1:]), "signIn": statistics.median(browser["signIn"]) / 1000,
            "reload": statistics.median(browser["reload"]) / 1000}


async def big_image(http: httpx.AsyncClient, state, runs: int) -> dict[tuple[str, str], dict[str, float]]:
    cases = [(kind, mount) for kind in ("JPEG", "PNG") for mount in ("local", "lab")]
    times: dict[tuple[str, str], dict[str, list[float]]] = {c: {"first": [], "served": [], "static": []} for c in cases}
    sizes: dict[tuple[str, str], int] = {}
    static: dict[tuple[str, str], str] = {}
    async with httpx.AsyncClient(timeout=120, follow_redirects=True) as plain:
        for _ in range(runs):
            for case in cases:  # interleaved: each run goes through every case in turn
                kind, mount = case
                data = noise(kind)
                sizes[case] = len(data)
                asset = await upload(http, data, f"big.{kind.lower()}", f"image/{kind.lower()}", mount)
                # The grid's size, made as the upload completed: not timed here.
                await wait_for(lambda: not state.thumbnailer.busy, timeout=60, what="the eager thumbnail")
                url = (await graphql(http, THUMBNAIL, {"id": asset["id"]}))["asset"]["thumbnailUrl"]
                made = state.thumbnailer.made
                first, thumbnail = await timed_get(plain, url)
                assert state.thumbnailer.made == made + 1, "the first GET did not make the thumbnail"
                times[case]["first"].append(first)
                if case not in static:  # a stored file of the thumbnail's size, served as downloads are
                    # not image/webp: an image upload would have its own thumbnail made as it completes
                    static[case] = (await upload(http, thumbnail, "same-size.bin", "application/octet-stream", mount))["downloadUrl"]
                for _ in range(3):
                    times[case]["static"].append((await timed_get(plain, static[case]))[0])
                    times[case]["served"].append((await timed_get(plain, url))[0])
                assert state.thumbnailer.made == made + 1, "a later GET made the thumbnail again"
    return {case: {"bytes": sizes[case], **{k: statistics.median(v) for k, v in t.items()}} for case, t in times.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not (WEBAPP / "dist" / "index.html").is_file() or not Path(CHROMIUM).exists():
        sys.exit("needs the built web app (make webapp) and Chromium (make browser)")

    with tempfile.TemporaryDirectory(prefix="graphlake-bench-thumbnails-") as tmp, contextlib.ExitStack() as stack:
        url, endpoint = start_services(Path(tmp), stack)
        settings = Settings(
            _env_file=None, mongodb_url=url, database=f"graphlake_bench_thumbnails_{uuid.uuid4().hex[:8]}",
            data_dir=Path(tmp) / "data", bootstrap_admin_token=False, log_level="WARNING", port=free_port(),
            mounts={"lab": S3MountSettings(bucket=BUCKET, endpoint_url=endpoint, access_key_id=ACCESS_KEY,
                                           secret_access_key=SECRET_KEY)})
        raw = AsyncMongoClient(url, tz_aware=True)
        app = create_app(settings)
        async with serving(app, settings.port) as port:
            seconds = await Lake().grow(raw[settings.database], args.assets - args.images, 0)
            _, secret = await create_token("bench", Role.CONTRIBUTOR)
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=120, headers={"Authorization": f"Bearer {secret}"}) as http:
                began = time.perf_counter()
                for i in range(args.images):  # newer than the grown ones: the grid's first page
                    asset = await upload(http, small_png(i), f"plate-{i:03}.png", "image/png", "local")
                    assert (await http.get(asset["thumbnailUrl"])).status_code == 200  # made now, untimed
                print(f"{args.assets - args.images:,} assets grown in {seconds:.1f} s, {args.images} images uploaded "
                      f"and their thumbnails made in {time.perf_counter() - began:.1f} s", flush=True)
                shown = await grid(base, secret, args, http)
                big = await big_image(http, app.state.graphlake, args.runs)
        await raw.drop_database(settings.database)
        await raw.close()

    print(f"\nThe grid, {args.images} thumbnails of {args.assets:,} assets (made beforehand), medians of {args.runs} runs:")
    print(f"  {'query + 100 thumbnails by httpx (baseline)':<46}{shown['baseline'] * 1000:>8.0f} ms")
    for name, label in (("signIn", "sign-in submit -> 100 thumbnails, Chromium"), ("reload", "reload -> 100 thumbnails, in Chromium")):
        print(f"  {label:<46}{shown[name] * 1000:>8.0f} ms  {shown[name] / shown['baseline']:>5.1f}x the baseline"
              f"  (target 1000 ms)")
    print(f"\nA 10 MB image's {SIZE}-px thumbnail, medians of {args.runs} interleaved runs (later GETs: 3 a run):")
    for (kind, mount), t in big.items():
        print(f"  {kind:<5}{t['bytes'] / 1e6:>5.1f} MB on {mount:<6} first GET (made) {t['first'] * 1000:>7.0f} ms"
              f"   later GET {t['served'] * 1000:>6.1f} ms (target 50)   same-size static file {t['static'] * 1000:>6.1f} ms"
              f"  {t['served'] / t['static']:>5.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
