"""An export or download killed mid-way (kill -9: no cleanup runs) leaves its temporaries in the
destination; a rerun into it removes those of the client's own naming that no running process
holds, never a user's file nor another run's, and finishes (graphlake_client/debris.py)."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from graphlake_client import Client, ResumeState, debris
from tests.conftest import MakeToken, Served
from tests.test_exchange_coco import SIZES, coco_files, write_images
from tests.waiting import wait_for

pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

# `graphlake`, whose downloads stop for good once their bytes are in their temporary file (before
# the rename), having said so in the file named by argv[1]: where a kill leaves debris behind.
STALLED = """
import sys, time
from pathlib import Path
from graphlake_client import downloads

marker = Path(sys.argv.pop(1))
checked = downloads._check

def stalls(*args):
    checked(*args)
    marker.touch()
    while True:
        time.sleep(60)

downloads._check = stalls
from graphlake.cli import app
app()
"""


def environment(served: Served, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    env.update(GRAPHLAKE_URL=served.base_url, GRAPHLAKE_TOKEN=token)
    return env


def own_debris(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if debris.OWN.fullmatch(p.name))


@pytest.mark.parametrize("kind", ["coco", "bundle"])
async def test_a_killed_export_leaves_debris_a_rerun_removes(served: Served, make_token: MakeToken, tmp_path: Path,
                                                             kind: str) -> None:
    from documents.roles import Role

    token = await make_token(Role.CONTRIBUTOR)
    write_images(tmp_path / "images")
    annotations, _ = coco_files(tmp_path)
    async with Client(served.base_url, token, resume=ResumeState(tmp_path / "r.json")) as lake:
        await lake.import_coco(annotations, tmp_path / "images", "parts", version="v1")
    out = tmp_path / "out"
    dest = out / "parts.tar" if kind == "bundle" else out
    out.mkdir()
    # A user's files that look alike, and another run's temporary still held: none of them goes.
    users = [out / ".download-notes", out / "draft.partial", out / ".download-0123456789abcdeg"]
    for path in users:
        path.write_text("mine")
    held = (out / f".download-{secrets.token_hex(8)}").open("wb")
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)

    marker = tmp_path / "stalled"
    with open(tmp_path / "stalled.log", "wb") as log:  # noqa: ASYNC230 (opening a local file is instant)
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", STALLED, str(marker), "export", kind,
                                                       "parts/v1", str(dest), env=environment(served, token),
                                                       stdout=asyncio.subprocess.DEVNULL, stderr=log)
    try:
        await wait_for(lambda: marker.exists() or process.returncode is not None, timeout=60, what="a download to stall")
        assert process.returncode is None, (tmp_path / "stalled.log").read_text()
        process.send_signal(signal.SIGKILL)  # no cleanup runs
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    left = [p for p in own_debris(out) if p.name != Path(held.name).name]
    assert left, "the kill left no temporary: nothing tested"  # .download-* (COCO), .parts.tar.partial-* (bundle)
    # A rerun a while later (a temporary a minute old or less may be a run's just begun); a tar's files on
    # their way lie in a scratch folder beside it, whose own age is its folder's.
    aged(own_debris(out) + [p for p in out.iterdir() if debris.SCRATCH.fullmatch(p.name)])

    rerun = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "graphlake", "export", kind, "parts/v1", str(dest)],
                                    env=environment(served, token), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert own_debris(out) == [Path(held.name)]  # the killed run's went; the held one is another run's
    assert all(p.read_text() == "mine" for p in users)
    held.close()
    if kind == "coco":
        assert len(json.loads((out / "annotations.json").read_text())["images"]) == len(SIZES)
        for name in SIZES:
            assert (out / "images" / name).read_bytes() == (tmp_path / "images" / name).read_bytes()
    else:
        assert dest.is_file() and json.loads(rerun.stdout)["payloads"] >= len(SIZES)


def aged(paths: list[Path]) -> None:
    """Last written two minutes ago: past debris.GRACE_SECONDS."""
    then = time.time() - 2 * debris.GRACE_SECONDS
    for path in paths:
        os.utime(path, (then, then))


def test_only_unheld_files_of_its_own_names_are_removed(tmp_path: Path) -> None:
    """Names exactly of the client's temporaries, regular files, held by no process, older than a
    minute: a link of such a name (to a user's file) is neither followed nor removed."""
    mine = [tmp_path / f".download-{secrets.token_hex(8)}", tmp_path / f".x.tar.partial-{secrets.token_hex(4)}",
            tmp_path / "payloads" / f".{'a' * 64}.partial", tmp_path / ".manifest.json.partial"]
    theirs = [tmp_path / ".download-1", tmp_path / "a.partial", tmp_path / ".x.partial", tmp_path / "payloads" / "b.partial"]
    (tmp_path / "payloads").mkdir()
    for path in mine + theirs:
        path.write_text("x")
    link = tmp_path / f".download-{secrets.token_hex(8)}"
    link.symlink_to(theirs[0])
    young = tmp_path / f".download-{secrets.token_hex(8)}"  # a run's just begun: not taken yet, perhaps
    young.write_text("x")
    assert debris.sweep(tmp_path) == 0
    aged(mine + theirs)
    assert debris.sweep(tmp_path, recursive=False) == 3  # not into payloads/
    assert debris.sweep(tmp_path) == 1
    assert [p.exists() for p in mine] == [False] * 4 and all(p.exists() for p in theirs) and link.is_symlink()
    assert young.exists()


def test_downloads_into_one_folder_while_it_is_swept_all_land(tmp_path: Path) -> None:
    """Downloads in parallel each sweep their folder: a sweep never takes a file from a writer (each
    temporary is held until it has its result's name, and a young one is left alone), and a writer
    never fails for a sweep looking at its file."""
    stop = threading.Event()
    swept: list[int] = []
    looked = threading.Condition()

    def sweeping() -> None:
        while not stop.is_set():
            took = debris.sweep(tmp_path, recursive=False)
            with looked:
                swept.append(took)
                looked.notify_all()

    sweeper = threading.Thread(target=sweeping)
    sweeper.start()
    try:
        for i in range(2000):
            if i % 100 == 0:
                # A sweep begun since, at each hundredth file: how many sweeps met the writes depended on
                # how fast this machine creates files compared with listing them.
                with looked:
                    since = len(swept)
                    assert looked.wait_for(lambda since=since: len(swept) > since + 1, timeout=30), "no sweep"
            target = tmp_path / f"file-{i}"
            debris.write_held(debris.download_temp(target), str(i).encode(), target)
    finally:
        stop.set()
        sweeper.join()
    assert sum(swept) == 0  # it looked all along (two sweeps began at each hundredth file), and took nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"file-{i}" for i in range(2000))


def test_a_writer_never_removes_a_temporary_it_did_not_create(tmp_path: Path) -> None:
    """A name already taken (another writer's, held) is refused, not removed; bundle files get names
    of their own each time, so two exports into one folder, or a rerun right after a kill, never meet."""
    taken = tmp_path / ".x.partial-00000000"
    with debris.writing(taken) as out:
        out.write(b"another writer's")
        out.flush()
        with pytest.raises(FileExistsError):
            with debris.writing(taken):
                pass
        assert taken.read_bytes() == b"another writer's"
        os.replace(taken, tmp_path / "x")
    target = tmp_path / "manifest.json"
    assert debris.partial_temp(target) != debris.partial_temp(target)
    assert debris.OWN.fullmatch(debris.partial_temp(target).name)


def test_where_flock_is_refused_writes_go_on_unheld_and_nothing_is_swept(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")  # NFS without its lock manager

    monkeypatch.setattr(fcntl, "flock", no_locks)
    debris.write_held(debris.download_temp(tmp_path / "a"), b"a", tmp_path / "a")
    assert (tmp_path / "a").read_bytes() == b"a"
    stale = tmp_path / f".download-{secrets.token_hex(8)}"
    stale.write_bytes(b"x")
    aged([stale])
    assert debris.sweep(tmp_path) == 0 and stale.exists()  # nobody can say it is not another run's


def test_an_export_sweeps_where_it_writes_not_the_rest_of_the_tree(tmp_path: Path) -> None:
    """An export into a folder that holds other things (a home directory) looks only at the folder
    itself and the folders it writes into."""
    name = f".x.partial-{secrets.token_hex(4)}"
    ours, theirs, beside = tmp_path / "images" / "a" / name, tmp_path / "projects" / name, tmp_path / name
    for path in (ours, theirs, beside):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    aged([ours, theirs, beside])
    assert debris.sweep_export(tmp_path, ["images", "labels"]) == 2
    assert not ours.exists() and not beside.exists() and theirs.exists()
