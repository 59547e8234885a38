"""docker-compose.yml cannot run here (no Docker engine), so check that what it sets is valid settings."""

from __future__ import annotations

import re

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
        # ${VAR:?message} / ${VAR:-default} / ${VAR}: stand in a sample value.
        monkeypatch.setenv(key, re.sub(r"\$\{([A-Z_]+)[^}]*\}", lambda m: f"sample-{m.group(1).lower()}", str(value)))
    settings = Settings(_env_file=None)
    lake = settings.mounts[settings.default_mount]
    assert isinstance(lake, S3MountSettings) and lake.endpoint_url == "http://minio:9000"
    assert not settings.embedded_database and settings.signing_secret is not None


def test_readme_documents_every_setting() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`GRAPHLAKE_{name.upper()}`" not in readme]
    assert not missing, f"add these settings to the README's configuration table: {missing}"
