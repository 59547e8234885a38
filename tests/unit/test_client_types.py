"""The Python client is typed (py.typed ships with it): its own code type-checks, a script using it
passes `mypy --strict`, and the mistakes a type checker should catch in such a script are caught:
a misspelt key of a result, a word a parameter does not take, an unknown argument. mypy runs as a
user's would against an installed package: the client's own modules are read for their types but
not reported on there (`--follow-imports=silent`); the first test reports on them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path(__file__).resolve().parent / "typing"
MARKED = re.compile(r"#\s*error:")


def mypy(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # --ignore-missing-imports: pycocotools, boto3 and datasets ship no type hints.
    return subprocess.run([sys.executable, "-m", "mypy", "--ignore-missing-imports", "--no-error-summary",
                           "--cache-dir", str(ROOT / ".venv" / "mypy-cache"), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_client_type_checks() -> None:
    result = mypy("graphlake_client", "--exclude", "graphlake_client/build/")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_script_using_the_client_passes_strict_type_checking() -> None:
    result = mypy("--strict", "--follow-imports=silent", str(SAMPLES / "uses_the_client.py"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_mistakes_in_a_script_are_caught_where_they_are() -> None:
    sample = SAMPLES / "misuses_the_client.py"
    marked = {n for n, line in enumerate(sample.read_text().splitlines(), 1) if MARKED.search(line)}
    result = mypy("--strict", "--follow-imports=silent", str(sample))
    reported = {int(m.group(1)) for m in re.finditer(rf"{re.escape(sample.name)}:(\d+): error:", result.stdout)}
    assert len(marked) >= 9 and reported == marked, result.stdout


def test_a_script_outside_the_checkout_finds_the_clients_types(tmp_path: Path) -> None:
    """As a user's script in their own directory sees the installed client: setuptools' default
    editable install is an import hook mypy cannot follow ("Cannot find implementation or library
    stub", every call Any), so the Makefile installs in compat mode (a path in a .pth file)."""
    script = tmp_path / "analysis.py"
    script.write_text("from graphlake_client import Client\n\n\n"
                      "async def main() -> None:\n"
                      "    async with Client('http://127.0.0.1:8000', 'glk_x') as lake:\n"
                      "        await lake.save('a', {'x': 1}, replace='b')\n")
    result = mypy("--strict", "--follow-imports=silent", str(script), cwd=tmp_path)
    assert 'Unexpected keyword argument "replace" for "save"' in result.stdout, result.stdout + result.stderr
