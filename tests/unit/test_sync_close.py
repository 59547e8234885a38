"""SyncClient's closing of an interrupted page iterator (graphlake_client/sync._close)."""

from __future__ import annotations

import asyncio

import pytest

from graphlake_client import sync


async def test_an_interrupted_iterators_cleanup_that_hangs_is_left_after_close_seconds(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A Ctrl-C cancels the page the iterator waited for; its cleanup then runs on the client's loop,
    and _close waits for it before closing the iterator. A cleanup that never ended (a stream whose
    close hangs) held the caller's KeyboardInterrupt for good; now for CLOSE_SECONDS at most."""
    monkeypatch.setattr(sync, "CLOSE_SECONDS", 0.2)
    released = asyncio.Event()

    async def pages():  # type: ignore[no-untyped-def]
        try:
            yield 1
            await asyncio.Event().wait()  # the next page never comes
        finally:
            await released.wait()  # a cleanup that hangs

    iterator = pages()
    assert await anext(iterator) == 1
    waiting = asyncio.ensure_future(anext(iterator))
    await asyncio.sleep(0)  # waiting for the next page
    waiting.cancel()  # the Ctrl-C
    await asyncio.sleep(0)  # the generator now runs its cleanup
    assert iterator.ag_running
    await asyncio.wait_for(sync._close(iterator), 5)
    assert iterator.ag_running  # left as it was, to the loop's end
    assert "did not end within 0.2 s" in capsys.readouterr().err
    released.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting


def test_run_refuses_what_is_not_a_coroutine_at_once() -> None:
    """asyncio.run_coroutine_threadsafe refused a function not called (TypeError in the caller); the
    hand-over that replaced it logged the error on the client's loop, and run() waited for good."""
    client = sync.SyncClient("http://127.0.0.1:9", None)
    try:
        async def work() -> int:
            return 1

        with pytest.raises(TypeError, match="takes a coroutine"):
            client.run(work)  # type: ignore[arg-type]
        assert client.run(work()) == 1
    finally:
        client.close()
