"""The commands a shell script or an instrument's hook uses against a running lake (graphlake/cli_lake.py):
store a value or a text, get an asset, log an event, list events; each prints what the script reads next."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import Served
from tests.operations import Api
from tests.test_client import graphlake


def environment(served: Served, token: str, tmp_path: Path) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")},
            "GRAPHLAKE_URL": served.base_url, "GRAPHLAKE_TOKEN": token, "XDG_CACHE_HOME": str(tmp_path / "cache")}


async def test_store_get_log_and_list_from_a_shell(served: Served, api: Api, contributor: str, tmp_path: Path) -> None:
    env = environment(served, contributor, tmp_path)
    code, out, err = await graphlake(env, "store", "value", "plate 7", '{"od600": 0.42, "big": 12345678901234567890}',
                                     "--label", "raw", "--metadata", '{"plate": 7}', "--alias", "plates/7",
                                     "--collection", "run-42", "--node", "reader-1")
    assert code == 0, err
    value_id = out.strip()
    code, out, err = await graphlake(env, "get", "plates/7")
    assert code == 0, err
    got = json.loads(out)
    assert got["id"] == value_id and got["value"] == {"od600": 0.42, "big": 12345678901234567890}  # exact, big too
    assert got["labels"] == ["raw"] and got["metadata"] == {"plate": 7} and got["owner"]["nodeId"] == "reader-1"
    code, out, err = await graphlake(env, "store", "text", "notes.md", "# plate 7\nfine", "--media-type", "text/markdown")
    assert code == 0, err
    text = (await api.data("Asset", {"id": out.strip()}, token=contributor))["asset"]
    assert text["text"] == "# plate 7\nfine" and text["mediaType"] == "text/markdown"

    code, out, err = await graphlake(env, "log", "PLATE_READ", "plate 7 read", "--level", "warning",
                                     "--data", '{"od600": 0.42}', "--node", "reader-1", "--owner", '{"workcellId": "wc-1"}')
    assert code == 0, err
    event_id = out.strip()
    code, out, err = await graphlake(env, "events", "list", "--type", "PLATE_READ", "--json")
    assert code == 0, err
    [event] = [json.loads(line) for line in out.splitlines()]
    assert event["id"] == event_id and event["level"] == "WARNING" and event["data"] == {"od600": 0.42}
    assert event["source"]["nodeId"] == "reader-1" and event["source"]["workcellId"] == "wc-1" and event["origin"] == "CLIENT"
    code, out, err = await graphlake(env, "events", "list", "--lake", "--limit", "2", "--json")
    assert code == 0 and [json.loads(line)["eventType"] for line in out.splitlines()] == ["AUDIT", "AUDIT"], err
    # A hook that retries under its key stores the event once and prints the same ID; other content is refused.
    keyed = [await graphlake(env, "log", "RUN_DONE", "run 7 done", "--key", "run-7-done") for _ in range(2)]
    assert [code for code, _, _ in keyed] == [0, 0] and keyed[0][1] == keyed[1][1], keyed
    code, out, err = await graphlake(env, "log", "RUN_DONE", "run 7 failed", "--key", "run-7-done")
    assert code != 0 and "inputs[0].key" in err + out and "other content" in err + out, (code, out, err)
    code, out, err = await graphlake(env, "events", "list", "--type", "RUN_DONE", "--json")
    assert len(out.splitlines()) == 1, out


async def test_uploads_and_stores_name_who_produced_them(served: Served, api: Api, contributor: str,
                                                         tmp_path: Path) -> None:
    env = environment(served, contributor, tmp_path)
    run = tmp_path / "run-7"
    run.mkdir()
    (run / "plate.csv").write_text("a,b\n1,2\n")
    code, out, err = await graphlake(env, "upload", str(run), "--owner", '{"userId": "ann", "experimentId": "e-7"}',
                                     "--node", "reader-1")
    assert code == 0, err
    [row] = [line.split() for line in out.splitlines() if "plate.csv" in line]
    uploaded = (await api.data("Asset", {"id": row[0]}, token=contributor))["asset"]
    assert {k: v for k, v in uploaded["owner"].items() if v} == {"userId": "ann", "experimentId": "e-7", "nodeId": "reader-1"}
    code, out, err = await graphlake(env, "store", "value", "od", "0.4", "--owner", '{"managerId": "m-1"}')
    assert code == 0, err
    stored = (await api.data("Asset", {"id": out.strip()}, token=contributor))["asset"]
    assert {k: v for k, v in stored["owner"].items() if v} == {"managerId": "m-1"}


async def test_what_a_shell_user_gets_wrong_is_one_line(served: Served, viewer: str, tmp_path: Path) -> None:
    env = environment(served, viewer, tmp_path)
    code, _, err = await graphlake(env, "store", "value", "x", "{bad")
    assert code == 2 and "the value is not JSON" in err and "Traceback" not in err
    code, _, err = await graphlake(env, "store", "value", "x", "1", "--owner", '["ann"]')
    assert code == 2 and "--owner must be a JSON object" in err and "Traceback" not in err
    code, _, err = await graphlake(env, "store", "value", "x", "1")  # a VIEWER may not write
    assert code == 1 and "FORBIDDEN" in err and "Traceback" not in err
    code, _, err = await graphlake(env, "get", "no/such-alias")
    assert code == 1 and "NOT_FOUND" in err
