"""The startup banner of `graphlake serve` follows GRAPHLAKE_LOG_JSON, as the log lines do."""

from __future__ import annotations

import json

import pytest

from graphlake.app import create_app
from graphlake.settings import Settings
from tests.processes import serving


async def test_banner_is_one_json_line_with_log_json(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    # The database is empty (each test starts so): the first admin token is made and shown.
    app = create_app(settings.model_copy(update={"log_json": True, "bootstrap_admin_token": True}), announce=True)
    async with serving(app):
        pass
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    banner = json.loads(lines[0])
    assert banner["level"] == "INFO" and banner["logger"] == "graphlake" and "is up" in banner["message"]
    assert banner["graphql_url"] == f"{settings.base_url}/graphql"
    assert banner["metrics"] == f"{settings.base_url}/metrics" and banner["database"] == settings.database
    assert banner["admin_token"].startswith("glk_")


async def test_banner_is_plain_text_without_it(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    async with serving(create_app(settings, announce=True)):
        pass
    out = capsys.readouterr().out
    assert "is up." in out and f"GraphQL endpoint : {settings.base_url}/graphql" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.strip().splitlines()[0])
