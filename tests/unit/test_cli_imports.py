"""The `graphlake` command imports only what the verb it runs needs (graphlake/cli_support.py says why).

Each case runs in a fresh interpreter: this test process has long imported everything.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer.main
from typer.testing import CliRunner

from graphlake.cli import app

# What only the server side uses: each takes a noticeable part of a second (together about 5 s) to import.
SERVER_STACK = ("beanie", "strawberry", "graphql", "pymongo", "aioboto3", "botocore", "uvicorn", "starlette",
                "documents.registry", "resolvers", "services", "storage", "migrations")


def loaded_after(code: str, env: dict[str, str] | None = None) -> tuple[list[str], dict]:
    """The SERVER_STACK modules a fresh interpreter holds after running `code`, and what `code` left in `result`."""
    probe = (f"import sys, json\nresult = {{}}\n{code}\n"
             f"print(json.dumps([[m for m in {SERVER_STACK!r} if m in sys.modules], result]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, **(env or {})})
    loaded, result = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded, result


def free_port() -> int:
    with socket.socket() as closed:  # a port nothing listens on once this returns
        closed.bind(("127.0.0.1", 0))
        return closed.getsockname()[1]


def test_importing_the_command_and_its_settings_loads_none_of_the_server_stack() -> None:
    loaded, _ = loaded_after("import graphlake.cli\nfrom graphlake.cli_support import load_settings\nload_settings()")
    assert loaded == []


def test_a_client_verb_runs_without_the_server_stack() -> None:
    port = free_port()
    loaded, result = loaded_after(f"""
from typer.testing import CliRunner
from graphlake.cli import app
outcome = CliRunner().invoke(app, ["download", "some-alias", "--url", "http://127.0.0.1:{port}", "--token", "t"])
result.update(code=outcome.exit_code, output=outcome.output, settings="pydantic_settings" in sys.modules)
import httpx  # loaded by the verb itself; a no-op here
""")
    assert result["code"] == 1 and "cannot reach http://127.0.0.1" in result["output"], result
    assert loaded == []
    # Given its server, a client verb reads no settings: importing pydantic-settings took a fifth of a second.
    assert result["settings"] is False


def test_check_loads_the_driver_and_the_local_store_but_not_the_documents_graphql_or_s3(tmp_path: Path) -> None:
    loaded, result = loaded_after("""
from typer.testing import CliRunner
from graphlake.cli import app
outcome = CliRunner().invoke(app, ["check", "--seconds", "0.5"])
result.update(code=outcome.exit_code, output=outcome.output)
""", env={"GRAPHLAKE_MONGODB_URL": f"mongodb://127.0.0.1:{free_port()}/", "GRAPHLAKE_DATA_DIR": str(tmp_path)})
    # With the database unreachable, nothing tells whether this lake used the folder before (a file
    # system not mounted yet): it is reported missing, not made.
    assert result["code"] == 1 and "unreachable" in result["output"], result
    assert "mount local: " in result["output"] and "the folder is missing" in result["output"], result
    assert not (tmp_path / "objects" / "local").exists()
    assert {"pymongo", "storage"} <= set(loaded)  # what it checks with
    assert not set(loaded) & {"beanie", "strawberry", "graphql", "documents.registry", "resolvers"}, loaded
    assert not set(loaded) & {"aioboto3", "botocore"}, loaded  # the S3 backend: this lake has no S3 mount


def test_every_command_still_describes_itself() -> None:
    """Option types and defaults that once came from server modules (roles, the schema version) still render."""
    runner = CliRunner()

    def paths(command: Any, path: list[str]) -> list[list[str]]:  # typer's own (vendored) click types
        below = getattr(command, "commands", {})
        return [path] + [p for name, sub in below.items() for p in paths(sub, [*path, name])]

    commands = paths(typer.main.get_command(app), [])
    assert ["token", "create"] in commands and ["db", "migrate"] in commands and ["import", "coco"] in commands
    for path in commands:
        outcome = runner.invoke(app, [*path, "--help"])
        assert outcome.exit_code == 0 and "Usage:" in outcome.output, (path, outcome.output)
    assert "VIEWER" in runner.invoke(app, ["token", "create", "--help"]).output


def test_the_server_imports_the_s3_backend_only_for_a_lake_with_an_s3_mount() -> None:
    """`graphlake serve` on local mounts (the embedded default) starts without aioboto3 and botocore
    (storage/__init__.py: a second and a half of its start on a slow machine)."""
    loaded, _ = loaded_after("import graphlake.app")
    assert not set(loaded) & {"aioboto3", "botocore"}, loaded
    loaded, result = loaded_after("""
from storage import S3Store, as_s3
store = S3Store("lab", bucket="b", endpoint_url="http://127.0.0.1:1")
result.update(found=as_s3(store) is store)
""")
    assert result["found"] and {"aioboto3", "botocore"} <= set(loaded)
