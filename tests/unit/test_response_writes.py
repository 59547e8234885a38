"""graphlake/http_server.HeadWithBody: a response's head and body leave in one socket write, and a head
whose body is not ready leaves on its own at the loop's next turn (tests/test_response_writes.py
checks the same through a served app)."""

from __future__ import annotations

import asyncio

from graphlake.http_server import HeadWithBody


class Recording:
    """A transport that keeps what is written to it, as the socket would receive it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


async def test_head_and_body_written_in_one_step_leave_together() -> None:
    transport = Recording()
    writer = HeadWithBody(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writer.write(HEAD)
    writer.write(b"ok")
    assert transport.writes == [HEAD + b"ok"]
    await asyncio.sleep(0)  # the flush at the next turn finds nothing left
    writer.write(b"more")  # a later chunk (of a chunked answer) goes at once
    assert transport.writes == [HEAD + b"ok", b"more"]


async def test_a_head_whose_body_waits_leaves_at_the_next_turn() -> None:
    transport = Recording()
    writer = HeadWithBody(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writer.write(HEAD)
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [HEAD]
    writer.write(b"ok")
    assert transport.writes == [HEAD, b"ok"]


async def test_a_large_body_is_not_copied_behind_the_head() -> None:
    transport = Recording()
    writer = HeadWithBody(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    body = b"x" * (HeadWithBody.JOIN_BYTES + 1)
    writer.write(HEAD)
    writer.write(body)
    assert transport.writes == [HEAD, body]


async def test_a_close_sends_what_was_held_first() -> None:
    transport = Recording()
    writer = HeadWithBody(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writer.write(HEAD)
    writer.close()
    assert transport.writes == [HEAD] and transport.closed and writer.is_closing()
    await asyncio.sleep(0)  # the flush due finds the transport closed and nothing held
    assert transport.writes == [HEAD]
    assert writer.get_extra_info("peername") == "extra peername"  # the rest is the transport's own
