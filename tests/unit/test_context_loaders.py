"""A context's loaders are the running operation's: a WebSocket's context is shared by the operations
the connection runs at once, each in a task of its own (resolvers/context.Context.loaders)."""

import asyncio

from resolvers.context import Context
from resolvers.loaders import Loaders


async def test_operations_sharing_a_context_keep_their_own_loaders() -> None:
    context = Context(state=None, request=None, response=None, request_id="socket")  # type: ignore[arg-type]
    outside = context.loaders
    first_started, second_done = asyncio.Event(), asyncio.Event()

    async def operation(started: asyncio.Event | None, wait_for: asyncio.Event | None) -> tuple[Loaders, Loaders]:
        mine = Loaders()
        context.loaders = mine  # as FreshLoaders does when an operation starts
        if started:
            started.set()
        if wait_for:
            await wait_for.wait()  # another operation starts, and ends, meanwhile
        return mine, context.loaders

    first = asyncio.create_task(operation(first_started, second_done))
    await first_started.wait()
    second = await asyncio.create_task(operation(None, None))
    second_done.set()
    mine, seen = await first
    assert seen is mine and second[1] is second[0] and second[0] is not mine
    assert context.loaders is outside  # outside every operation: the connection's own
