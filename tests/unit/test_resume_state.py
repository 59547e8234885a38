"""The client's resume state (graphlake_client/resume.py) shared by runs at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from graphlake import PROJECT_ROOT

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
    assert len(kept) == 600 and kept["a-299"] == kept["b-299"] == "session-299"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uploads.json", "uploads.json.lock"]  # no temporary left
