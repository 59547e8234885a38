"""Another writer's change put in the gap a real race would leave: once, at the first call of the
function that runs there, just before it runs or just after it returns. The race tests wrote this
wrapper out each time; kept here, the once-only guard works the same in all of them (a call the
change makes itself, such as an update reading the record again, goes straight through)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest


def once_before(monkeypatch: pytest.MonkeyPatch, owner: object, name: str,
                then: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Have `owner.name` await `then()` once, as it is first called, before it runs. The list
    returned holds what `then()` answered once it has run: empty, the gap was never reached."""
    return _once(monkeypatch, owner, name, then, before=True)


def once_after(monkeypatch: pytest.MonkeyPatch, owner: object, name: str,
               then: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Have `owner.name` await `then()` once, after its first call returns and before its caller
    has the answer (which is the original's, unchanged). The list returned is as once_before's."""
    return _once(monkeypatch, owner, name, then, before=False)


def _once(monkeypatch: pytest.MonkeyPatch, owner: object, name: str,
          then: Callable[[], Awaitable[Any]], *, before: bool) -> list[Any]:
    original, answers, pending = getattr(owner, name), [], True

    async def change_once() -> None:
        nonlocal pending
        if pending:
            pending = False  # before the change runs: its own calls of `name` are not the gap
            answers.append(await then())

    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            await change_once()
        answer = await original(*args, **kwargs)
        if not before:
            await change_once()  # the first call to return, as a real writer would meet it
        return answer

    monkeypatch.setattr(owner, name, wrapped)
    return answers
