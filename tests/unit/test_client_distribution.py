"""The client's own distribution (graphlake_client/pyproject.toml) declares every third-party package
the client imports, so `pip install ./graphlake_client` alone gives a working client. (That it imports
no server package: tests/test_client_standalone.py, and the import-linter contract.)"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

# Import names that differ from the distribution that installs them.
DISTRIBUTIONS = {"PIL": "pillow", "yaml": "pyyaml"}
CLIENT = Path(__file__).resolve().parents[2] / "graphlake_client"


def test_the_client_distribution_declares_what_the_client_imports() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    # Extras count: coco.py imports pycocotools, Pillow and numpy only when the coco extra is installed
    # (and likewise yolo_export.py, hf_export.py and voc.py with theirs).
    requirements = project["dependencies"] + [r for extra in project.get("optional-dependencies", {}).values() for r in extra]
    declared = {re.split(r"[<>=!~ \[;]", requirement)[0].lower() for requirement in requirements}
    imported: set[str] = set()
    for path in CLIENT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    imported = {DISTRIBUTIONS.get(name, name) for name in imported}
    third_party = {name for name in imported if name not in sys.stdlib_module_names and name != "graphlake_client"}
    assert third_party, "the walk found no imports at all"
    assert third_party <= declared, f"imported but not declared in graphlake_client/pyproject.toml: {third_party - declared}"


def test_the_client_ships_its_type_hints() -> None:
    """PEP 561: without py.typed in the installed package, mypy treats every client result as Any
    (and --strict refuses the import)."""
    assert (CLIENT / "py.typed").is_file()
    for pyproject in (CLIENT / "pyproject.toml", CLIENT.parent / "pyproject.toml"):
        assert "py.typed" in tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["graphlake_client"]
