"""Peer: Graphlake against MADSci's data manager, the same work over HTTP from the same client.

    .venv/bin/python bench/peer.py [--rounds 3] [--values 1000] [--files 100] [--file-size 1048576] [--blocks 10]

MADSci's data manager (madsci-data-manager 0.8.1 from PyPI, in a virtual environment of its own
under ~/.cache/graphlake/peer-venv, made on first use: 0.8.1 needs pydantic 2.10.x, newer pydantic
breaks its serializer) and `graphlake serve` each run as a process of their own on a FerretDB of
their own (the build cache's), each storing files on the local disk. This process is the client of
both, with httpx (keep-alive) for every request it sends itself. Each round times, for each system:

  store values, 1 client   `--values` JSON values {"sample": i, "group": i % 100}, one request at
                           a time (MADSci: POST /datapoint; Graphlake: storeValue)
  store values, 8 clients  as many again, from 8 clients at once
  get values by id         each value of the first step, by id (GET /datapoint/{id}; asset(id))
  query by value x20       the values whose group is 7 (1% of them), 20 times (POST
                           /datapoints/query {"value.group": 7}; assets with a value EQ predicate,
                           pages of 500, no totalCount)
  store files              `--files` files of `--file-size` random bytes, 4 at a time (MADSci: one
                           multipart POST /datapoint each; Graphlake: graphlake_client's directory
                           upload, over HTTP: createUploads, a signed PUT each, completeUploads)
  fetch files              each of them back into a file, 4 at a time (MADSci: GET
                           /datapoint/{id}/value; Graphlake: the client's download, asset(id) for
                           the signed URL then GET)

Both sides ask for the same fields: what a MADSci datapoint carries (id, label/name, type, value,
timestamp, ownership). Every step's answer is checked after it is timed (the values read back,
the query's count, the fetched files' SHA-256), so a broken path cannot look fast. Rounds
interleave the two systems step by step, alternating which goes first, and within the steps on values
block by block (`--blocks`, 10: a block of 100 stores on one, then on the other, and so on), so that
both meet the same phases of this machine, whose speed moves by a third within minutes; a system's
time for a step is the sum of its blocks. The table gives the median over rounds of each and their
ratio, Graphlake / MADSci (below 1.0x: Graphlake is faster; the target is 1.0x or better on every
row). Data accumulates over rounds, alike on both sides.

A second table gives the CPU each system's server process and its database process used in each
step, per operation (Linux: /proc), medians over rounds: where a row's time goes, and a measure
that a slow phase of the machine moves less than the time itself.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from peer_systems import CHUNK, CLIENTS, GROUPS, System, started_systems, value_of

QUERY_GROUP = 7
QUERIES = 20


# --- the work, and its checks


async def store_one_at_a_time(system: System, samples: range) -> list[str]:
    http = system.clients[0]
    return [await system.store_value(http, sample) for sample in samples]


async def store_from_clients(system: System, samples: range) -> list[str]:
    async def client(http: httpx.AsyncClient, mine: range) -> list[str]:
        return [await system.store_value(http, sample) for sample in mine]

    return [i for ids in await asyncio.gather(*(client(http, samples[k::CLIENTS]) for k, http in enumerate(system.clients)))
            for i in ids]


async def get_each(system: System, ids: list[str]) -> list[Any]:
    http = system.clients[0]
    return [await system.get_value(http, datapoint_id) for datapoint_id in ids]


async def query_repeatedly(system: System, times: int) -> list[list[Any]]:
    http = system.clients[0]
    return [await system.query_group(http, QUERY_GROUP) for _ in range(times)]


def check(system: System, ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(f"{system.name}: {what}")


def make_files(directory: Path, count: int, size: int) -> dict[str, str]:
    """`count` files of random bytes (new ones each round, so nothing can be deduplicated); name -> SHA-256."""
    directory.mkdir(parents=True)
    digests = {}
    for n in range(count):
        body = os.urandom(size)
        (directory / f"file-{n:04d}.bin").write_bytes(body)
        digests[f"file-{n:04d}.bin"] = hashlib.sha256(body).hexdigest()
    return digests


def digests_in(directory: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in directory.iterdir()}


def cpu_seconds(pid: int) -> float | None:
    """The CPU time a process has used so far, user and system, all its threads; None where /proc
    does not tell (not Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Rounds:
    """Runs each step on both systems in turn and keeps the times, per step and system, and the CPU
    their processes used, per operation."""

    def __init__(self, systems: list[System], args: argparse.Namespace, tmp: Path) -> None:
        self.systems, self.args, self.tmp = systems, args, tmp
        self.times: dict[str, dict[str, list[float]]] = {}
        self.cpu: dict[str, dict[str, dict[str, list[float]]]] = {}  # step -> system -> process -> s per operation

    async def step(self, label: str, order: list[System], blocks: list[Callable[[System], Awaitable[Any]]],
                   verify: Callable[[System, Any], None], operations: int) -> dict[str, Any]:
        """Each block of the step's work on each system in turn, which goes first alternating from
        block to block, so that both meet the same phases of the machine (a step of 1,000 requests
        one system after the other met phases a third apart). A system's time and CPU are the sums
        over its blocks, its result theirs joined (lists one after the other; one block's as it is)."""
        elapsed = {system.name: 0.0 for system in order}
        used: dict[str, dict[str, float | None]] = {system.name: dict.fromkeys(system.processes, 0.0) for system in order}
        parts: dict[str, list[Any]] = {system.name: [] for system in order}
        for b, block in enumerate(blocks):
            for system in order if b % 2 == 0 else order[::-1]:
                before = {role: cpu_seconds(pid) for role, pid in system.processes.items()}
                start = time.perf_counter()
                parts[system.name].append(await block(system))
                elapsed[system.name] += time.perf_counter() - start
                for role, then in before.items():
                    now, total = cpu_seconds(system.processes[role]), used[system.name][role]
                    used[system.name][role] = None if now is None or then is None or total is None else total + now - then
        results, line = {}, []
        for system in order:
            got = parts[system.name]
            results[system.name] = got[0] if len(got) == 1 else [item for part in got for item in part]
            verify(system, results[system.name])  # untimed
            self.times.setdefault(label, {}).setdefault(system.name, []).append(elapsed[system.name])
            for role, total in used[system.name].items():
                if total is not None:
                    self.cpu.setdefault(label, {}).setdefault(system.name, {}).setdefault(role, []).append(total / operations)
            line.append(f"{system.name} {elapsed[system.name]:7.3f} s")
        print(f"  {label:<30} {'   '.join(line)}", flush=True)
        return results

    async def run(self, r: int) -> None:
        args = self.args
        order = self.systems if r % 2 == 0 else self.systems[::-1]
        print(f"round {r + 1} of {args.rounds} ({order[0].name} first)", flush=True)
        first = r * 2 * args.values
        one_by_one = range(first, first + args.values)
        together = range(first + args.values, first + 2 * args.values)
        stored = range(first + 2 * args.values)  # every value so far, this round's included
        expected = sorted(s for s in stored if s % GROUPS == QUERY_GROUP)

        def all_stored(samples: range) -> Callable[[System, list[str]], None]:
            return lambda system, ids: check(system, len(set(ids)) == len(samples), "a store lost a value")

        def blocks(items: Any) -> list[Any]:  # `items` in args.blocks runs of (nearly) equal length, in order
            count = max(1, min(args.blocks, len(items)))
            return [items[len(items) * k // count:len(items) * (k + 1) // count] for k in range(count)]

        ids = await self.step(f"store {args.values} values, 1 client", order,
                              [lambda s, part=part: store_one_at_a_time(s, part) for part in blocks(one_by_one)],
                              all_stored(one_by_one), args.values)
        await self.step(f"store {args.values} values, {CLIENTS} clients", order,
                        [lambda s, part=part: store_from_clients(s, part) for part in blocks(together)],
                        all_stored(together), args.values)
        await self.step(f"get {args.values} values by id", order,
                        [lambda s, part=part: get_each(s, ids[s.name][part.start:part.stop]) for part in blocks(range(args.values))],
                        lambda s, values: check(s, values == [value_of(i) for i in one_by_one], "a value read back differs"),
                        args.values)
        await self.step(f"query by value x{QUERIES}", order,
                        [lambda s, part=part: query_repeatedly(s, len(part)) for part in blocks(range(QUERIES))],
                        lambda s, answers: check(s, len(answers) == QUERIES and all(
                            sorted(v["sample"] for v in values) == expected for values in answers),
                            f"the query did not find the {len(expected)} values of group {QUERY_GROUP}"),
                        QUERIES)

        source = self.tmp / f"files-{r}"
        digests = make_files(source, args.files, args.file_size)  # untimed
        size = f"{args.file_size / CHUNK:g} MiB" if args.file_size >= CHUNK else f"{args.file_size} B"
        file_ids = await self.step(f"store {args.files} files of {size}", order,
                                   [lambda s: s.store_files(sorted(source.iterdir()))],
                                   lambda s, found: check(s, sorted(found) == sorted(digests), "a file was not stored"),
                                   args.files)

        async def fetch(system: System) -> Path:
            dest = self.tmp / f"fetched-{r}-{system.name}"
            dest.mkdir()
            await system.fetch_files(file_ids[system.name], dest)
            return dest

        fetched = await self.step(f"fetch {args.files} files", order, [fetch],
                                  lambda s, dest: check(s, digests_in(dest) == digests, "a fetched file differs from the one stored"),
                                  args.files)
        for directory in [source, *fetched.values()]:  # the servers keep their own copies
            shutil.rmtree(directory)

    def report(self) -> None:
        names = [system.name for system in self.systems]
        print(f"\nmedians of {self.args.rounds} interleaved rounds (ratio = Graphlake / MADSci; target <= 1.0x)")
        print(f"  {'operation':<30} {names[0]:>10} {names[1]:>10}   ratio")
        for label, times in self.times.items():
            madsci, lake = statistics.median(times["MADSci"]), statistics.median(times["Graphlake"])
            print(f"  {label:<30} {madsci:8.3f} s {lake:8.3f} s   {lake / madsci:.2f}x")
        if not self.cpu:
            return
        print("\nCPU per operation of each system's server and database process, ms (medians of the rounds; "
              "ratio = Graphlake / MADSci)")
        print(f"  {'operation':<30} {'MADSci':>17} {'Graphlake':>17}   {'server':>6} {'database':>8}")
        print(f"  {'':<30} {'server':>8} {'database':>8} {'server':>8} {'database':>8}   {'ratio':>6} {'ratio':>8}")
        for label, by_system in self.cpu.items():
            cells, medians = [], {}
            for name in names:
                for role in ("server", "database"):
                    medians[name, role] = statistics.median(by_system[name][role]) * 1e3
                    cells.append(f"{medians[name, role]:8.3f}")
            ratios = [f"{medians['Graphlake', role] / medians['MADSci', role]:.2f}x" if medians["MADSci", role] else "-"
                      for role in ("server", "database")]
            print(f"  {label:<30} {' '.join(cells)}   {ratios[0]:>6} {ratios[1]:>8}")


async def warm_up(systems: list[System], tmp: Path) -> None:
    """A few of each request first (connections, imports, caches); samples -1 .. -20 are in no
    group the query asks for."""
    source = tmp / "files-warm-up"
    make_files(source, 2, 1024)
    for system in systems:
        ids = [await system.store_value(system.clients[0], -1 - n) for n in range(20)]
        await get_each(system, ids)
        await system.query_group(system.clients[0], QUERY_GROUP)
        dest = tmp / f"fetched-warm-up-{system.name}"
        dest.mkdir()
        await system.fetch_files(await system.store_files(sorted(source.iterdir())), dest)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--values", type=int, default=1000, help="values per store step (default 1000)")
    parser.add_argument("--files", type=int, default=100, help="files per round (default 100)")
    parser.add_argument("--file-size", type=int, default=CHUNK, help="bytes per file (default 1 MiB)")
    parser.add_argument("--blocks", type=int, default=10,
                        help="blocks each value step is run in, the systems taking turns (default 10)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="graphlake-peer-") as name:
        tmp = Path(name)
        async with started_systems(tmp) as systems:
            await warm_up(systems, tmp)
            rounds = Rounds(systems, args, tmp)
            for r in range(args.rounds):
                await rounds.run(r)
            rounds.report()


if __name__ == "__main__":
    asyncio.run(main())
