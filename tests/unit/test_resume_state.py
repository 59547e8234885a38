"""The client's resume state (graphlake_client/resume.py): shared by runs at once, bounded (an entry
lives as long as its session may still be resumed, and while its file is still the one it was made
for), and read whatever is in the file (a corrupt one is started anew, not a crash of the upload)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from graphlake import PROJECT_ROOT
from graphlake_client.resume import DEFAULT_LIFETIME_SECONDS, ResumeState

WRITER = """
import sys
from pathlib import Path
from graphlake_client import ResumeState
state = ResumeState(Path(sys.argv[1]))
for i in range(300):
    state.put(f"{sys.argv[2]}-{i}", f"session-{i}")
"""


def test_two_runs_at_once_keep_each_others_sessions(tmp_path: Path) -> None:
    """Two `graphlake upload`s share the default file: each run's read, change and write of it went
    over the other's, and a read of a file half written was taken for none (600 written, 51 kept)."""
    path = tmp_path / "uploads.json"
    runs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name], cwd=PROJECT_ROOT) for name in ("a", "b")]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    kept = json.loads(path.read_text())
    assert len(kept) == 600 and kept["a-299"]["id"] == kept["b-299"]["id"] == "session-299"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uploads.json", "uploads.json.lock"]  # no temporary left


SERVER = "http://127.0.0.1:8000"


def session(session_id: str, expires_in: float) -> dict[str, str]:
    """A session as createUpload answers it: its ID and when the server expires it."""
    return {"id": session_id, "expiresAt": (datetime.now(UTC) + timedelta(seconds=expires_in)).isoformat()}


def a_file(tmp_path: Path, name: str) -> tuple[str, Path]:
    path = tmp_path / name
    path.write_bytes(name.encode())
    key, _ = ResumeState.key_and_size(SERVER, path, {"name": name})
    return key, path


@pytest.mark.parametrize("corrupt", [b"\xff\xfe\x00garbage", b"[1, 2]", b'"text"', b'{"k": 5, "j": {"id": 7}}',
                                     b'{"cut short', b""])
def test_a_corrupt_state_is_read_as_empty_and_written_anew(tmp_path: Path, corrupt: bytes,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    """Bytes that are no UTF-8, or JSON that is no object of entries, raised out of the upload
    (UnicodeDecodeError, AttributeError: 'list' object has no attribute 'get')."""
    state = ResumeState(tmp_path / "uploads.json")
    state.path.write_bytes(corrupt)
    key, path = a_file(tmp_path, "a.bin")
    assert state.get(key) is None and state.get_many([key, "k"]) == [None, None]
    state.put(key, session("s1", 3600), path)
    assert state.get(key) == "s1"
    assert list(json.loads(state.path.read_text())) == [key]  # the corrupt rest is gone
    if corrupt:
        assert "started anew" in capfd.readouterr().err


def test_an_entry_under_a_key_no_client_makes_is_dropped(tmp_path: Path) -> None:
    """A key edited by hand: checking its file must not raise out of the upload that writes next."""
    state = ResumeState(tmp_path / "uploads.json")
    state.path.write_text(json.dumps({"no key": {"id": "s", "expires": time.time() + 3600, "file": str(tmp_path)}}))
    key, path = a_file(tmp_path, "a.bin")
    state.put(key, session("s1", 3600), path)
    assert list(json.loads(state.path.read_text())) == [key]


def test_entries_of_expired_sessions_are_dropped(tmp_path: Path) -> None:
    """Every upload ever interrupted and never rerun stayed in the file for good."""
    state = ResumeState(tmp_path / "uploads.json")
    old_key, old_path = a_file(tmp_path, "old.bin")
    live_key, live_path = a_file(tmp_path, "live.bin")
    state.put(old_key, session("expired", -1), old_path)
    state.put(live_key, session("open", 3600), live_path)
    assert state.get(old_key) is None and state.get(live_key) == "open"
    assert list(json.loads(state.path.read_text())) == [live_key]


def test_entries_of_files_gone_or_changed_are_dropped_by_a_later_client(tmp_path: Path) -> None:
    """A file deleted, or changed (its key holds its size and time), can never be asked for
    again under that key: its entry is dropped by the next client that writes the state."""
    first = ResumeState(tmp_path / "uploads.json")
    keys = {}
    for name in ("kept.bin", "gone.bin", "changed.bin"):
        key, path = a_file(tmp_path, name)
        first.put(key, session(name, 3600), path)
        keys[name] = key
    (tmp_path / "gone.bin").unlink()
    changed = tmp_path / "changed.bin"
    changed.write_bytes(b"other bytes")
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    later = ResumeState(tmp_path / "uploads.json")
    new_key, new_path = a_file(tmp_path, "new.bin")
    later.put(new_key, session("new", 3600), new_path)
    assert sorted(json.loads(later.path.read_text())) == sorted([keys["kept.bin"], new_key])


def test_entries_without_an_expiry_live_the_default_lifetime(tmp_path: Path) -> None:
    """A session put by its ID alone, and an entry of the earlier format (key: ID), are kept for
    the server's default session lifetime from when they are read, then dropped."""
    path = tmp_path / "uploads.json"
    path.write_text(json.dumps({"legacy": "s-old"}))
    state = ResumeState(path)
    assert state.get("legacy") == "s-old"
    state.put("by-id", "s-new")
    stored = json.loads(path.read_text())
    assert {key: entry["id"] for key, entry in stored.items()} == {"legacy": "s-old", "by-id": "s-new"}
    assert all(abs(entry["expires"] - time.time() - DEFAULT_LIFETIME_SECONDS) < 60 for entry in stored.values())


def test_another_machines_entries_are_left_to_expire(tmp_path: Path) -> None:
    """A home directory shared between machines (NFS on a cluster) shares the file: a run on one
    machine dropped every entry whose file it could not see, another machine's interrupted uploads
    among them. Those go by their expiry alone; this machine's, and entries from before hosts were
    kept (taken for this machine's), still go when their file is gone."""
    path = tmp_path / "uploads.json"
    elsewhere = str(tmp_path / "on-node-7" / "frame.bin")  # a file of that machine's local disk
    future, past = time.time() + 3600, time.time() - 1
    path.write_text(json.dumps({
        f"{SERVER}|{elsewhere}|5|1|d": {"id": "node-7", "expires": future, "file": elsewhere, "host": "node-7"},
        f"{SERVER}|{elsewhere}|5|2|d": {"id": "node-7-expired", "expires": past, "file": elsewhere, "host": "node-7"},
        f"{SERVER}|{elsewhere}|5|3|d": {"id": "here", "expires": future, "file": elsewhere, "host": socket.gethostname()},
        f"{SERVER}|{elsewhere}|5|4|d": {"id": "no-host", "expires": future, "file": elsewhere},
    }))
    key, file = a_file(tmp_path, "a.bin")
    ResumeState(path).put(key, session("new", 3600), file)
    stored = json.loads(path.read_text())
    assert sorted(entry["id"] for entry in stored.values()) == ["new", "node-7"]
    assert stored[key]["host"] == socket.gethostname()
