"""The web app in Chromium on a lake of 10,000 assets: how long the first page of assets takes to show.

    .venv/bin/python bench/webapp.py [--assets 10000] [--runs 7]

Grows a lake as bench/scale.py does (raw inserts), serves it, and times in Chromium (the OS
package, as the browser tests use it), each run in a fresh browser context:

  sign-in -> first page   from clicking Sign in to the 50 rows of the first page shown (the `me`
                          check, the app switching to the list, the AssetList query, rendering)
  reload -> first page    a reload of the signed-in app (files from the browser's cache) to the same

Baseline, measured in the same run: the app's own AssetList query (first page, with its count) sent
over HTTP by httpx. The ratio is what the browser adds on top of the query. Also prints the app's
JavaScript, gzipped (issue #21's budget: 500 KB). The grid's thumbnails are timed by bench/thumbnails.py.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from graphql import parse, print_ast, separate_operations
from pymongo import AsyncMongoClient

from bench.scale import Lake
from documents.roles import Role
from graphlake import PROJECT_ROOT
from graphlake.app import create_app
from graphlake.settings import Settings
from services.auth import create_token
from tests.processes import bench_database, serving

WEBAPP = PROJECT_ROOT / "webapp"
CHROMIUM = os.environ.get("GRAPHLAKE_TEST_CHROMIUM", "/usr/bin/chromium")
ROWS = 50  # the app's page size (webapp/src/pages/AssetList.tsx)


def asset_list_query() -> str:
    """The app's AssetList operation with the fragment it uses, as urql sends it."""
    text = "\n".join(p.read_text() for p in sorted((WEBAPP / "src" / "operations").glob("*.graphql")))
    return print_ast(separate_operations(parse(text))["AssetList"])


async def time_query(http: httpx.AsyncClient, runs: int) -> list[float]:
    body = {"query": asset_list_query(), "operationName": "AssetList",
            "variables": {"filter": {}, "first": ROWS, "after": None, "withCount": True}}
    times = []
    for _ in range(runs + 1):  # the first warms up
        began = time.perf_counter()
        answer = await http.post("/graphql", json=body)
        times.append(time.perf_counter() - began)
        assert answer.status_code == 200 and len(answer.json()["data"]["assets"]["edges"]) == ROWS, answer.text[:300]
    return times[1:]


async def time_browser(url: str, token: str, runs: int) -> dict[str, list[float]]:
    process = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node", str(PROJECT_ROOT / "bench" / "js" / "webapp_first_page.cjs"), url, token,
        str(ROWS), str(runs), CHROMIUM, env={**os.environ, "WEBAPP_NODE_MODULES": str(WEBAPP / "node_modules")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode:
        sys.exit(f"the browser run failed: {err.decode()}")
    return {name: [ms / 1000 for ms in values] for name, values in json.loads(out).items()}


def javascript_kb() -> float:
    return sum(len(gzip.compress(p.read_bytes(), 6)) for p in (WEBAPP / "dist" / "assets").glob("*.js")) / 1024


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if not (WEBAPP / "dist" / "index.html").is_file() or not Path(CHROMIUM).exists():
        sys.exit("needs the built web app (make webapp) and Chromium (make browser)")

    with tempfile.TemporaryDirectory() as tmp, bench_database(Path(tmp)) as url:
        settings = Settings(_env_file=None, mongodb_url=url, database="graphlake_bench_webapp", data_dir=Path(tmp) / "data",
                            bootstrap_admin_token=False, log_level="WARNING")
        raw = AsyncMongoClient(url, tz_aware=True)
        await raw.drop_database(settings.database)
        async with serving(create_app(settings)) as port:
            seconds = await Lake().grow(raw[settings.database], args.assets, 0)
            print(f"{args.assets:,} assets loaded in {seconds:.1f} s", flush=True)
            _, secret = await create_token("bench", Role.VIEWER)
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=60, headers={"Authorization": f"Bearer {secret}"}) as http:
                query = statistics.median(await time_query(http, args.runs))
            browser = await time_browser(base, secret, args.runs)
        await raw.close()

    print(f"\nThe first page ({ROWS} assets of {args.assets:,}), medians of {args.runs} runs:")
    print(f"  {'AssetList query over HTTP (baseline)':<40}{query * 1000:>8.0f} ms")
    for name, label in (("signIn", "sign-in -> first page, in Chromium"), ("reload", "reload -> first page, in Chromium")):
        median = statistics.median(browser[name])
        print(f"  {label:<40}{median * 1000:>8.0f} ms  {median / query:>6.1f}x the query")
    print(f"  {'the app JavaScript, gzipped':<40}{javascript_kb():>8.0f} KB  (budget 500 KB)")


if __name__ == "__main__":
    asyncio.run(main())
