"""Pure unit tests: no database, no object store, no server. `pytest tests/unit` starts no service.

tests/conftest.py still applies here (pytest loads every conftest above a test), and its autouse
`clean_database` would start FerretDB, MinIO and the app for each test. The fixtures below override
it, and the service fixtures too, by name: the closest definition wins. A test here that asks for a
service fails at once saying where it belongs, instead of quietly starting one.
"""

from __future__ import annotations

import os

import pytest

from graphlake.settings import Settings

BELONGS_ELSEWHERE = "tests/unit runs without services: a test that needs {} belongs in tests/, not tests/unit/"


@pytest.fixture(autouse=True)
def clean_database() -> None:
    """Nothing to clean: no database here."""


@pytest.fixture(scope="session")
def mongodb_url() -> str:
    pytest.fail(BELONGS_ELSEWHERE.format("the database"))


@pytest.fixture(scope="session")
def s3() -> None:
    pytest.fail(BELONGS_ELSEWHERE.format("MinIO"))


@pytest.fixture(scope="session")
def served() -> None:
    pytest.fail(BELONGS_ELSEWHERE.format("the served app"))


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Default settings, whatever GRAPHLAKE_* variables the shell has; nothing is connected to."""
    for key in [k for k in os.environ if k.startswith("GRAPHLAKE_")]:
        monkeypatch.delenv(key)
    return Settings(_env_file=None)
