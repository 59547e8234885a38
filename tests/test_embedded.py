"""The embedded database of `make run`: FerretDB on SQLite under the data dir, shared, persistent,
and the indexes Graphlake keeps on it."""

from __future__ import annotations

from pathlib import Path

from pymongo import MongoClient

from documents.api_token import ApiToken
from documents.event import Event
from graphlake.context import AppState
from graphlake.database import ensure_indexes, uses_secondary_indexes
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

    # Restarted fsyncing every commit (GRAPHLAKE_FERRETDB_SYNC_EVERY_COMMIT): the same files, the same data.
    second = embedded_database(None, tmp_path, port, sync_every_commit=True)
    assert second.service is not None and any("synchronous(full)" in arg for arg in second.service.args)
    assert any("synchronous(normal)" in arg for arg in first.service.args)
    try:
        with MongoClient(second.url, serverSelectionTimeoutMS=5000) as client:
            assert client.lake.notes.find_one({"_id": "n1"}) == {"_id": "n1", "text": "kept"}
    finally:
        second.stop()


async def test_id_lookups_use_the_index_and_unused_indexes_are_not_kept(state: AppState) -> None:
    """Our FerretDB build answers `_id` lookups from its index (scripts/build-services.sh), and
    indexes the server cannot use for queries are not kept, where it cannot (the SQLite backend)."""
    db = state.db
    on_ferretdb = "ferretdbVersion" in await db.client.admin.command("buildInfo")
    await db.notes.insert_many([{"_id": f"n{i}", "field": i} for i in range(50)])
    if on_ferretdb:
        for by_id in ({"_id": "n7"}, {"_id": {"$in": ["n7", "n9", "missing"]}}):  # DataLoaders use $in
            plan = (await db.command("explain", {"find": "notes", "filter": by_id}))["queryPlanner"]["Plan"]
            assert any("USING INDEX" in step for step in plan), (by_id, plan)
    # FerretDB still applies the whole filter to what the index returns.
    found = await db.notes.find({"_id": {"$in": ["n7", "n9", "missing"]}, "field": {"$gt": 8}}).to_list()
    assert found == [{"_id": "n9", "field": 9}]
    if on_ferretdb:
        await db.create_collection("graphlake_probe")  # as earlier versions left it there
    secondary = await uses_secondary_indexes(db)
    assert secondary is not on_ferretdb  # the suite runs FerretDB on SQLite, or a real MongoDB
    assert "graphlake_probe" not in await db.list_collection_names()  # asked of our own collection; the old probe is gone
    events = Event.get_pymongo_collection()
    await events.create_index("level", name="level_time")  # as an earlier start would have left it
    await ensure_indexes(Event, secondary=secondary)
    for model in (Event, ApiToken):
        names = set(await model.get_pymongo_collection().index_information())
        for index in model.get_settings().indexes:
            assert (index.name in names) == (secondary or index.index.document.get("unique", False)), index.name
