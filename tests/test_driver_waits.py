"""PyMongo's replies waited for as graphlake/driver_waits.py does: in place for every client the
server and the CLI make, and keeping the driver's deadlines, interruptions and cancellations,
against the real FerretDB (through a relay that can stop answering)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pymongo
import pytest
from pymongo.asynchronous import pool
from pymongo.errors import AutoReconnect, PyMongoError

from graphlake import driver_waits
from graphlake.database_access import close_client, new_client
from tests.conftest import Served


def test_in_place_for_the_pinned_driver(served: Served) -> None:
    """The served app's client waits this way (its connect installed it); a PyMongo whose functions
    these replace or rely on changed fails here until graphlake/driver_waits.py is checked against it
    (its release and digests updated)."""
    assert pool.async_receive_message is driver_waits.receive_message
    assert pool.async_sendall is driver_waits.sendall
    assert pymongo.version == driver_waits.RELEASE
    assert driver_waits.digests() == driver_waits.WRITTEN_AGAINST


class Relay:
    """A TCP relay to the database whose answers can be held back (`hold`) and let through again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.port = 0

    def hold(self) -> None:
        self.flowing.clear()

    def release(self) -> None:
        self.flowing.set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answers: bool) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if answers:
                    await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        await asyncio.gather(self._pipe(reader, up_writer, False), self._pipe(up_reader, writer, True))


@contextlib.asynccontextmanager
async def relayed(mongodb_url: str, **options: object) -> AsyncIterator[tuple[Relay, pymongo.AsyncMongoClient]]:
    where = urlsplit(mongodb_url)
    relay = Relay((where.hostname or "127.0.0.1", where.port or 27017))
    server = await asyncio.start_server(relay._handle, "127.0.0.1", 0)
    relay.port = server.sockets[0].getsockname()[1]
    client = new_client(f"mongodb://127.0.0.1:{relay.port}/?directConnection=true", **options)
    try:
        yield relay, client
    finally:
        relay.release()
        await close_client(client)
        server.close()


@contextlib.asynccontextmanager
async def waiting_on_a_held_reply(mongodb_url: str, name: str) -> AsyncIterator[
        tuple[Relay, pymongo.AsyncMongoClient, asyncio.Future]]:
    """A find waiting (0.2 s so far) for a reply the relay holds back."""
    async with relayed(mongodb_url) as (relay, client):
        collection = client["driver_waits"][name]
        await collection.insert_one({"n": 1})
        relay.hold()
        waiting = asyncio.ensure_future(collection.find_one({"n": 1}))
        await asyncio.sleep(0.2)
        yield relay, client, waiting


async def test_a_deadline_ends_the_wait(mongodb_url: str) -> None:
    async with relayed(mongodb_url) as (relay, client):
        collection = client["driver_waits"]["deadline"]
        await collection.insert_one({"n": 1})
        relay.hold()
        began = time.monotonic()
        with pymongo.timeout(0.3), pytest.raises(PyMongoError) as raised:
            await collection.find_one({"n": 1})
        assert raised.value.timeout, raised.value
        assert 0.25 <= time.monotonic() - began < 3
        assert asyncio.current_task().cancelling() == 0  # the timer's cancellation taken back
        relay.release()
        assert (await collection.find_one({"n": 1}))["n"] == 1  # a fresh connection: the held one was discarded


async def test_a_pool_reset_interrupts_a_wait_without_deadline(mongodb_url: str) -> None:
    """No operation deadline: only an interruption ends the wait. The driver interrupts the
    connections in use when it clears a pool after a heartbeat timed out (here asked of the pool
    directly), and its own wait saw that within half a second, as this one must."""
    async with waiting_on_a_held_reply(mongodb_url, "interrupt") as (_, client, waiting):
        (server,) = client._topology._servers.values()
        began = time.monotonic()
        await server.pool.reset(interrupt_connections=True)
        with pytest.raises(AutoReconnect):
            await asyncio.wait_for(waiting, 5)
        assert time.monotonic() - began < 2
        assert not waiting.cancelling()  # the timer's cancellation taken back


async def test_a_deadline_in_a_cancelled_tasks_cleanup_is_a_timeout(mongodb_url: str) -> None:
    """A database call made while the task is being cancelled (cleanup in `except CancelledError`)
    still ends at its deadline as a timeout, which cleanup written for PyMongoError expects, and the
    task's own cancellation is still there after it."""
    async with relayed(mongodb_url) as (relay, client):
        collection = client["driver_waits"]["cleanup"]
        await collection.insert_one({"n": 1})
        relay.hold()
        seen: list[BaseException] = []

        async def cancelled_then_cleans_up() -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                try:
                    with pymongo.timeout(0.3):
                        await collection.find_one({"n": 1})
                except BaseException as error:
                    seen.append(error)
                assert asyncio.current_task().cancelling() == 1
                raise

        task = asyncio.ensure_future(cancelled_then_cleans_up())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert len(seen) == 1 and isinstance(seen[0], PyMongoError) and seen[0].timeout, seen


async def test_a_cancelled_wait_raises_and_the_client_goes_on(mongodb_url: str) -> None:
    async with waiting_on_a_held_reply(mongodb_url, "cancel") as (relay, client, waiting):
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 2)
        relay.release()
        assert (await client["driver_waits"]["cancel"].find_one({"n": 1}))["n"] == 1


async def test_a_cancelled_command_never_answers_as_if_it_was_not(mongodb_url: str) -> None:
    """A task whose cancel() was taken while its command was in flight ends cancelled. With the
    driver's own waits, on Python 3.11, about one in four cancelled half a millisecond in returned
    the command's result instead (asyncio.wait_for, CPython gh-86296). A cancelled command's
    connection is discarded, so each is sent on one an uncancelled command made: the driver still
    connects through wait_for, which this module leaves as it is."""
    client = new_client(mongodb_url, timeoutMS=5000)
    try:
        collection = client["driver_waits"]["lost"]
        await collection.insert_one({"_id": 1})
        answered = []
        for delay in (0.0002, 0.0005, 0.001) * 100:
            await collection.find_one({"_id": 1})
            task = asyncio.ensure_future(collection.update_one({"_id": 1}, {"$inc": {"n": 1}}))
            await asyncio.sleep(delay)
            if task.cancel():
                with contextlib.suppress(asyncio.CancelledError):
                    answered.append(await task)
        assert answered == []
    finally:
        await close_client(client)
