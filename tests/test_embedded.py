"""The embedded database of `make run`: FerretDB on SQLite under the data dir, shared, persistent."""

from __future__ import annotations

from pathlib import Path

from pymongo import MongoClient

from graphlake.local_services import embedded_database, free_port


def test_data_survives_a_restart_and_a_running_instance_is_shared(tmp_path: Path) -> None:
    port = free_port()
    first = embedded_database(None, tmp_path, port)
    assert first.service is not None
    try:
        with MongoClient(first.url, serverSelectionTimeoutMS=5000) as client:
            client.lake.notes.insert_one({"_id": "n1", "text": "kept"})
        shared = embedded_database(None, tmp_path, port)  # a CLI command next to a running server
        assert shared.service is None and shared.url == first.url
    finally:
        first.stop()
    assert (tmp_path / "ferretdb" / "sqlite").is_dir()

    second = embedded_database(None, tmp_path, port)
    try:
        with MongoClient(second.url, serverSelectionTimeoutMS=5000) as client:
            assert client.lake.notes.find_one({"_id": "n1"}) == {"_id": "n1", "text": "kept"}
    finally:
        second.stop()
