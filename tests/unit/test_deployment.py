"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine): check what they set and copy."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from graphlake import PROJECT_ROOT
from graphlake.settings import S3MountSettings, Settings


def test_compose_environment_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    environment = compose["services"]["graphlake"]["environment"]
    for key in [k for k in __import__("os").environ if k.startswith("GRAPHLAKE_")]:
        monkeypatch.delenv(key)
    for key, value in environment.items():
        # ${VAR:-default}: its default, as compose gives it; ${VAR:?message} / ${VAR}: a sample value.
        monkeypatch.setenv(key, re.sub(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?[^}]*\}",
                                       lambda m: m.group(2) if m.group(2) is not None else f"sample-{m.group(1).lower()}",
                                       str(value)))
    settings = Settings(_env_file=None)
    lake = settings.mounts[settings.default_mount]
    assert isinstance(lake, S3MountSettings) and lake.endpoint_url == "http://minio:9000"
    assert not settings.embedded_database and settings.signing_secret is not None


def test_readme_documents_every_setting() -> None:
    """Each setting has a row of its own in the configuration table (a mention elsewhere, such as the
    Limits table, is not where an operator looks), and each row names a setting."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration"):readme.index("## Operating Graphlake")]
    rows = set(re.findall(r"^\| `GRAPHLAKE_(\w+)` \|", table, flags=re.M))
    assert len(rows) > 50, "the table's rows were not found: the pattern checks nothing"
    missing = [name for name in Settings.model_fields if name.upper() not in rows]
    assert not missing, f"add these settings to the README's configuration table: {missing}"
    known = {name.upper() for name in Settings.model_fields}
    # Rows for what is not a field of Settings itself: the nested mount variables and the services' own.
    stray = {row for row in rows if row not in known and not row.startswith(("MOUNTS__", "FERRETDB_", "MINIO_"))}
    assert not stray, f"configuration rows that name no setting: {sorted(stray)}"


def test_the_image_copies_every_package_it_installs() -> None:
    """The Dockerfile copies each package pyproject.toml installs (a new one, such as services/, would
    otherwise build an image that fails at its first import)."""
    root = PROJECT_ROOT
    include = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = set(re.findall(r"^COPY (\w+) \1$", (root / "Dockerfile").read_text(), flags=re.M))
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"


def test_the_image_serves_the_web_app() -> None:
    """The image builds the web app in a node stage and points the server at that build: without
    GRAPHLAKE_WEBAPP_DIR the server would look in the installed package's directory and find none."""
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "COPY --from=webapp /app/webapp/dist /app/webapp/dist" in dockerfile
    assert "GRAPHLAKE_WEBAPP_DIR=/app/webapp/dist" in dockerfile
    assert "COPY graphql/schema.graphql" in dockerfile  # the app's types are generated from it


def test_the_image_installs_the_versions_the_suite_passed_with() -> None:
    """The code leans on private parts of Strawberry and graphql-core: the image constrains its
    install to requirements.lock's versions rather than resolving open ranges on the day it is built."""
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "COPY pyproject.toml README.md requirements.lock ./" in dockerfile
    assert 'pip install --no-cache-dir -c /tmp/constraints.txt ".[brotli,tracing]"' in dockerfile
    # What the image's grep and sed keep: each requirement line, marker and all, without its continuation.
    command = re.search(r"RUN (grep .*?) > /tmp/constraints.txt", dockerfile)
    assert command is not None
    import subprocess
    kept = subprocess.run(["sh", "-c", command.group(1)], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    lines = kept.stdout.splitlines()
    assert any(line.startswith("strawberry-graphql==") for line in lines)
    assert any(line.startswith("graphql-core==") for line in lines)
    assert not any(line.endswith("\\") or "--hash" in line for line in lines)
    # Two pins of one package are fine only under markers that never both hold.
    names = [line.split("==")[0].lower() for line in lines]
    twice = {name for name in names if names.count(name) > 1}
    assert all(";" in line for line in lines if line.split("==")[0].lower() in twice), twice


def test_the_compose_stack_hands_clients_urls_they_can_reach() -> None:
    """Inside the stack MinIO is http://minio:9000, which no client resolves: the signed URLs name
    the public address; and scrapes, which never come from loopback there, use the token."""
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    environment = compose["services"]["graphlake"]["environment"]
    assert environment["GRAPHLAKE_MOUNTS__LAKE__ENDPOINT_URL"] == "http://minio:9000"
    assert "localhost:9000" in environment["GRAPHLAKE_MOUNTS__LAKE__PUBLIC_ENDPOINT_URL"]
    assert environment["GRAPHLAKE_METRICS"] == "token" and "GRAPHLAKE_METRICS_TOKEN" in environment
    assert compose["services"]["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]


def test_the_stack_restarts_and_the_image_context_leaves_secrets_out() -> None:
    """The long-running services come back after a crash or a reboot; the build context (sent whole to
    the Docker daemon) leaves out a local data dir (its signing key and database), .venv and node_modules;
    the health check asks the port the server listens on."""
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    assert {name for name, service in compose["services"].items() if service.get("restart") == "unless-stopped"} \
        == {"mongo", "minio", "graphlake"}
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert {".git", ".env", ".venv", ".graphlake", "**/node_modules"} <= set(ignored)
    healthcheck = next(line for line in (PROJECT_ROOT / "Dockerfile").read_text().splitlines() if line.startswith("HEALTHCHECK"))
    assert "GRAPHLAKE_PORT" in healthcheck and "127.0.0.1:8000" not in healthcheck
