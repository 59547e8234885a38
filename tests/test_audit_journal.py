"""The audit journal (services/events/journal.py): a mutation's lone AUDIT event is on disk before
the answer and in the event log moments later; what a killed server left is stored by the next
start; nothing is stored twice, and a torn last entry is dropped."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from pathlib import Path

import bson
import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from documents.event import AUDIT, Event, new_event_id
from documents.json_value import StoredJson
from documents.sparse import stored
from graphlake.runtime import open_state
from graphlake.settings import Settings
from resolvers.context import AppState
from services.errors import Conflict
from services.events.journal import (
    IDS,
    STALE_MAKING_SECONDS,
    AuditJournal,
    complete_entries,
    live_writers,
    set_aside,
    store_left,
)
from tests.operations import Api, object_id
from tests.processes import start_server_process
from tests.test_batches import admin_token, post
from tests.waiting import wait_for

pytestmark = pytest.mark.asyncio


def audit(n: int) -> Event:
    return Event.model_construct(id=new_event_id(), event_type=AUDIT, level=20, message=f"m{n} by test",
                                 data=StoredJson.encode({"mutation": f"m{n}", "ids": []}))


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.bson"))


async def test_the_answer_comes_first_and_reads_of_events_wait_for_the_journal(api: Api, contributor: str,
                                                                               state: AppState) -> None:
    journal = state.feed.ahead
    assert journal is not None  # on by default
    journal.delay_seconds = 60  # nothing is stored by time alone while this test looks
    try:
        stored_value = (await api.data("StoreValue", {"input": {"name": "v", "value": 1}}, token=contributor))["storeValue"]
        assert await Event.find({"event_type": AUDIT}).count() == 0  # answered; not in the log yet
        on_disk = [e for path in segments(journal.directory) for e in complete_entries(path.read_bytes())[0]]
        assert [e["message"].split("-")[0] for e in on_disk] == ["storeValue by token:contributor"]
        assert StoredJson.model_validate(on_disk[0]["data"]).decode()["ids"] == [stored_value["id"]]
        later = (await api.data("LogEvents", {"inputs": [{"eventType": "CALIBRATED"}]}, token=contributor))["logEvents"]
        # The events query waits for this process's journal, so the entry is there at once; its ID is
        # made as it is stored, so it sorts after the event stored before it (a subscriber resuming
        # from that one gets it).
        shown = (await api.data("Events", {"filter": {"eventTypes": [AUDIT]}, "first": 5}, token=contributor))["events"]["edges"]
        assert on_disk[0]["message"] in [e["node"]["message"] for e in shown]  # with logEvents' own, stored at once
        [stored_audit] = await Event.find({"event_type": AUDIT, "message": on_disk[0]["message"]}).to_list()
        assert stored_audit.id > object_id(later["ids"][0]) > on_disk[0]["_id"]
        assert all(path.stat().st_size == 0 for path in segments(journal.directory))  # emptied once stored
    finally:
        journal.delay_seconds = state.settings.audit_flush_seconds


async def test_logevents_answers_once_its_events_are_stored_and_journals_its_audit(api: Api, contributor: str,
                                                                                  state: AppState) -> None:
    """logEvents answers with its events' IDs, made as they are stored: they are stored before it
    answers, and its AUDIT event, then all the mutation has left to log, is journaled as any lone one."""
    journal = state.feed.ahead
    assert journal is not None
    journal.delay_seconds = 60
    try:
        await api.data("LogEvents", {"inputs": [{"eventType": "CALIBRATED"}]}, token=contributor)
        assert [e.event_type for e in await Event.find().to_list()] == ["CALIBRATED"]
        on_disk = [e for path in segments(journal.directory) for e in complete_entries(path.read_bytes())[0]]
        assert [e["message"].split(" ")[0] for e in on_disk] == ["logEvents"]
    finally:
        journal.delay_seconds = state.settings.audit_flush_seconds


async def test_a_journal_the_disk_refuses_stores_directly(api: Api, contributor: str, state: AppState,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    journal = state.feed.ahead
    assert journal is not None

    def full_disk() -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal, "_current", full_disk)
    await api.data("StoreValue", {"input": {"name": "v", "value": 1}}, token=contributor)
    assert await Event.find({"event_type": AUDIT}).count() == 1  # stored before the answer, as without a journal


async def test_a_killed_server_leaves_its_journal_to_the_next_start(scratch_db: AsyncDatabase, mongodb_url: str,
                                                                    tmp_path: Path) -> None:
    # The longest flush delay: the entry is only in the journal when the server dies.
    process, url = await start_server_process(mongodb_url, scratch_db.name, tmp_path, AUDIT_JOURNAL="true",
                                              AUDIT_FLUSH_SECONDS="10")
    token = await admin_token(scratch_db)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            stored_value = (await post(http, token, "StoreValue", {"input": {"name": "v", "value": 1}}))["storeValue"]
        process.kill()  # no chance to store it
        await process.wait()
        assert await scratch_db.events.count_documents({"event_type": AUDIT}) == 0
        journal = tmp_path / "audit-journal" / scratch_db.name
        left = segments(journal)
        assert len(left) == 1 and complete_entries(left[0].read_bytes())[0]

        # The server comes back, without the journal this time: what it left is stored all the same.
        process, url = await start_server_process(mongodb_url, scratch_db.name, tmp_path, AUDIT_JOURNAL="false")
        [entry] = await scratch_db.events.find({"event_type": AUDIT}).to_list()
        assert entry["message"] == "storeValue by token:admin"
        assert StoredJson.model_validate(entry["data"]).decode()["ids"] == [stored_value["id"]]
        assert segments(journal) == []
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def test_a_replay_stores_each_entry_once_drops_a_torn_tail_and_leaves_live_segments(
        state: AppState, tmp_path: Path) -> None:
    first, second, third, live = audit(1), audit(2), audit(3), audit(4)
    # A flush gave the first its ID (recorded after it) and stored it before the process died; the
    # second was never sent, and gets an ID as it is replayed.
    given = new_event_id()
    await Event.get_pymongo_collection().insert_one({**stored(first), "_id": given})
    dead = tmp_path / "dead-1.bson"
    whole = b"".join(bson.encode(doc) for doc in (stored(first), {IDS: [[first.id, given]]}, stored(second)))
    dead.write_bytes(whole + bson.encode(stored(third))[:-7])  # died inside the third write
    held = tmp_path / "alive-1.bson"
    held.write_bytes(bson.encode(stored(live)))
    holder = os.open(held, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # its process lives
    before = new_event_id()  # the last event stored before the replay, say
    try:
        journal = AuditJournal(tmp_path, "this", state.feed.write_numbered, 0)
        async with state.events.listen() as live:
            assert await journal.replay() == 1  # the second: the first was in the log already
            sent = await asyncio.wait_for(anext(live), 5)
        assert await journal.replay() == 0  # nothing left to store
    finally:
        os.close(holder)
    in_log = {e.message: e.id for e in await Event.find({"event_type": AUDIT}).to_list()}
    assert sorted(in_log) == ["m1 by test", "m2 by test"]  # once each; the torn third was never answered for
    # The second gets an ID as it is stored, after every event stored before: sent live, and a
    # subscription resuming from an earlier event reads it.
    assert in_log["m1 by test"] == given and in_log["m2 by test"] > before
    assert sent.message == "m2 by test"
    assert not dead.exists() and held.exists()


async def test_a_replay_cut_short_stores_nothing_twice(state: AppState, tmp_path: Path) -> None:
    """A replay that records new IDs and stores the entries, then dies before deleting the segment
    (or loses the insert's reply): the next one finds them under the recorded IDs and stores none again."""
    (tmp_path / "dead-1.bson").write_bytes(bson.encode(stored(audit(12))) + bson.encode(stored(audit(13))))

    async def dies(events: list[Event]) -> None:
        await state.feed.write_numbered(events[:1])  # the first is stored; then the process dies
        raise RuntimeError("died")

    with pytest.raises(RuntimeError, match="died"):
        await store_left(tmp_path, Event.get_pymongo_collection(), store=dies)
    entries = complete_entries((tmp_path / "dead-1.bson").read_bytes())[0]
    assert [IDS in entry for entry in entries] == [False, False, True]  # the IDs were recorded first
    assert await store_left(tmp_path, Event.get_pymongo_collection(), store=state.feed.write_numbered) == 1
    for n in (12, 13):
        assert await Event.find({"message": f"m{n} by test"}).count() == 1
    assert segments(tmp_path) == []


async def test_a_damaged_segment_is_kept_aside(state: AppState, tmp_path: Path) -> None:
    """Bytes that are no torn last write (a whole entry that does not decode) are not deleted."""
    (tmp_path / "damaged-1.bson").write_bytes(bson.encode(stored(audit(5))) + b"\x10\x00\x00\x00" + b"\xff" * 12)
    journal = AuditJournal(tmp_path, "this", state.feed.write_numbered, 0)
    assert await journal.replay() == 1
    assert await journal.replay() == 0  # kept aside, not replayed again
    assert (tmp_path / "damaged-1.corrupt").exists() and segments(tmp_path) == []


async def test_the_journal_is_on_where_it_is_as_durable_as_the_database(tmp_path: Path) -> None:
    def journals(**given: object) -> bool:
        return Settings(_env_file=None, data_dir=tmp_path, **given).journals_audit

    assert journals()  # the embedded database, beside it in the data dir
    assert not journals(ferretdb_sync_every_commit=True)  # the database syncs each commit; the journal would not
    assert not journals(mongodb_url="mongodb://db.example:27017/")  # the app host's disk may not outlive it
    assert journals(mongodb_url="mongodb://db.example:27017/", audit_journal=True)
    assert not journals(audit_journal=False)


async def test_a_server_finds_what_a_stopped_process_left_while_it_runs(state: AppState, tmp_path: Path) -> None:
    """A worker that died beside a running one: its segment is stored at the next look, even while
    writes keep the running process busy."""
    journal = AuditJournal(tmp_path, "running", state.feed.write_numbered, 0, replay_every=0.2)
    await journal.open()
    try:
        (tmp_path / "died-1.bson").write_bytes(bson.encode(stored(audit(7))))
        for _ in range(20):  # writes all the while
            assert journal.write([audit(8)])
            await asyncio.sleep(0.05)
        await wait_for(lambda: not (tmp_path / "died-1.bson").exists(), timeout=10, what="the dead segment's replay")
        assert await Event.find({"message": "m7 by test"}).count() == 1
    finally:
        await journal.close()
    assert await Event.find({"message": "m8 by test"}).count() == 20  # closing stored what was left
    assert segments(tmp_path) == []
    assert not journal.write([audit(10)])  # closed: the caller stores it itself


async def test_an_open_journal_is_seen_live_before_it_writes_and_cannot_be_moved_aside(state: AppState,
                                                                                        tmp_path: Path) -> None:
    """What a restore checks (live_writers, set_aside): a journal open in a live process, written to
    or not, holds its ALIVE file; a stopped process's is removed by the next replay."""
    (tmp_path / "stopped.alive").write_bytes(b"")  # a process that died with its journal open
    # One that died making its ALIVE file (before locking it), long ago: removed. One as old as a
    # process between making and locking its own could be: left for that process.
    died_making, making = tmp_path / "died.alive.alive-making", tmp_path / "starting.alive.alive-making"
    died_making.write_bytes(b"")
    long_ago = time.time() - 2 * STALE_MAKING_SECONDS
    os.utime(died_making, (long_ago, long_ago))
    making.write_bytes(b"")
    journal = AuditJournal(tmp_path, "quiet", state.feed.write_numbered, 0)
    await journal.open()
    try:
        assert not (tmp_path / "stopped.alive").exists()
        assert not died_making.exists() and making.exists()
        making.unlink()
        assert live_writers(tmp_path) == [tmp_path / "quiet.alive"]
        with pytest.raises(Conflict, match=r"quiet\.alive"):
            set_aside(tmp_path, "replaced")
        assert (tmp_path / "quiet.alive").exists()
    finally:
        await journal.close()
    assert live_writers(tmp_path) == [] and list(tmp_path.iterdir()) == []
    (tmp_path / "left-1.bson").write_bytes(bson.encode(stored(audit(11))))
    aside = set_aside(tmp_path, "replaced")
    assert aside is not None and (aside / "left-1.bson").exists() and not tmp_path.exists()


async def test_a_command_stores_what_a_killed_server_left(settings: Settings, tmp_path: Path) -> None:
    """`graphlake backup` or a privacy erase must not run before a dead server's last entries are in
    the log: every command opens the state, which stores them first."""
    mine = settings.model_copy(update={"data_dir": tmp_path})
    mine.audit_journal_dir.mkdir(parents=True)
    (mine.audit_journal_dir / "killed-1.bson").write_bytes(bson.encode(stored(audit(9))))
    async with open_state(mine):
        assert await Event.find({"message": "m9 by test"}).count() == 1
    assert segments(mine.audit_journal_dir) == []


async def test_a_flush_whose_answer_was_lost_stores_nothing_twice(state: AppState, tmp_path: Path) -> None:
    """The first attempt stores the events and then fails (as when the reply is lost); the retry
    finds them in the log and stores nothing again."""
    attempts = []

    async def store(events: list[Event]) -> None:
        attempts.append(len(events))
        await state.feed.write_numbered(events)
        if len(attempts) == 1:
            raise ConnectionError("the reply was lost")

    journal = AuditJournal(tmp_path, "flaky", store, 0)
    await journal.open()
    try:
        assert journal.write([audit(1), audit(2)])
        await journal.drained()  # one failure is retried before a reader hears of it
        assert journal.unstored == 0 and await Event.find({"event_type": AUDIT}).count() == 2
        assert attempts == [2]  # the retry found both stored
        assert all(path.stat().st_size == 0 for path in segments(tmp_path))
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(journal.close(), 10)


async def test_a_replay_skips_an_entry_stored_under_any_id_it_had_and_stores_unreadable_ones_as_written(
        state: AppState, tmp_path: Path) -> None:
    """An attempt's insert that committed late, under an ID a later record replaced, still counts as
    stored; an entry this version's model refuses (another version wrote it) is stored as it is."""
    early, later = audit(14), audit(15)
    first_given, second_given = new_event_id(), new_event_id()
    await Event.get_pymongo_collection().insert_one({**stored(early), "_id": first_given})
    odd = {**stored(later), "level": "not a level"}
    (tmp_path / "dead-1.bson").write_bytes(b"".join(bson.encode(doc) for doc in (
        stored(early), {IDS: [[early.id, first_given]]}, {IDS: [[early.id, second_given]]}, odd)))
    assert await store_left(tmp_path, Event.get_pymongo_collection(), store=state.feed.write_numbered) == 1
    assert await Event.find({"message": "m14 by test"}).count() == 1
    [raw] = await Event.get_pymongo_collection().find({"message": "m15 by test"}).to_list()
    assert raw["_id"] == later.id and raw["level"] == "not a level"


async def test_entries_journaled_before_schema_8_are_stored_as_the_lakes_own(state: AppState, tmp_path: Path) -> None:
    """A server of schema 7 killed with AUDIT events in its journal: they carry no `by_lake`, and
    are stored after the migration as the lake's events all the same (origin LAKE, not CLIENT)."""
    old = {k: v for k, v in stored(audit(21)).items() if k != "by_lake"}
    assert old["event_type"] == AUDIT
    (tmp_path / "dead-1.bson").write_bytes(bson.encode(old))
    assert await store_left(tmp_path, Event.get_pymongo_collection(), store=state.feed.write_numbered) == 1
    replayed = await Event.get_pymongo_collection().find_one({"message": "m21 by test"})
    assert replayed["by_lake"] is True
