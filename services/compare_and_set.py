"""Writes made only on the version stamp read (compare-and-set): an edit of one record
(updateAsset, updateDatum, updateCollection) or the settling of many assets in one command.

A record's version stamp (`updated_at`; a collection's `edited_at`) is what a client hands back as
`expectedUpdatedAt`/`expectedEditedAt` to have its change made only on what it read: `metadata` and
`labels` are replaced whole, so two writers each changing one key of what they read lost one change
unnoticed. That works only if every write moves the stamp on. So each write here is made only while
the record holds the stamp read, and stores `documents/clock.next_updated_at` of it, at least a
millisecond past: a plain `$set` of now in the millisecond of the last write (or after one that had
moved the stamp ahead of the clock) left the stamp as a writer had read it, and that writer's
expected stamp then passed over the change. A write that finds the stamp moved (another writer's
landed between the read and the write) is made again on what the record holds then, at most TRIES
times; with the client's expected stamp it is refused instead (CONFLICT naming that field).

What differs between records stays with their callers: how the write filters on the stamp (a
record stored without one), what a delete looks like and what it answers (`read_again` raises).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, NamedTuple, TypeVar

from documents.clock import next_updated_at, to_millis
from services.errors import Conflict, Unavailable

TRIES = 20  # writes of one record that met another writer's, at most

K = TypeVar("K")
R = TypeVar("R")


class Attempt(NamedTuple, Generic[R]):
    """One record's part in a write."""

    record: R  # as last read
    read: datetime  # the stamp the write filters on
    new: datetime  # the stamp it stores: documents/clock.next_updated_at(read)


async def write_on_stamps(records: Mapping[K, R], *, stamp: Callable[[R], datetime],
                          write: Callable[[dict[K, Attempt[R]]], Awaitable[bool]],
                          read_again: Callable[[dict[K, Attempt[R]]], Awaitable[Mapping[K, R]]],
                          what: str, field: str | None = None) -> dict[K, datetime]:
    """Write `records` (as read, by key) with `write`, each only on its `stamp(record)` and storing the
    next stamp, until `write` answers that every one matched; the stamps it stored then.

    When some did not, `read_again(attempts)` reads them again: it raises for what cannot be written
    any more (a delete), and gives back those to write again on what they hold now (none: done).
    UNAVAILABLE, saying `what` other writers kept changing (naming `field`), after TRIES writes."""
    left = dict(records)
    for _ in range(TRIES):
        if not left:
            return {}
        read = {key: stamp(record) for key, record in left.items()}
        attempts = {key: Attempt(record, read[key], next_updated_at(read[key])) for key, record in left.items()}
        if await write(attempts):
            return {key: attempt.new for key, attempt in attempts.items()}
        left = dict(await read_again(attempts))
    raise Unavailable(f"other writers kept changing {what}; try again", field=field)


@dataclass(frozen=True)
class Stamp(Generic[R]):
    """One kind of record's version stamp, for edits of one record that a client may make on the
    stamp it read (`expected`)."""

    of: Callable[[R], datetime]  # the stamp a record read carries, in the stored form (documents/clock.to_millis)
    name: str  # as the API names it ("updatedAt"); the client hands it back as `expected` + it ("expectedUpdatedAt")
    what: str  # the record in messages ("the asset")

    @property
    def field(self) -> str:
        return f"expected{self.name[0].upper()}{self.name[1:]}"

    def expect(self, record: R, expected: datetime | None) -> datetime | None:
        """The client's `expected` stamp in the stored form (None if not given); CONFLICT naming it if
        `record` holds another. Checked before the edit's input, as the write checks it again."""
        if expected is None:
            return None
        expected = to_millis(expected)
        if self.of(record) != expected:
            raise self.changed_since(record)
        return expected

    def changed_since(self, record: R) -> Conflict:
        return Conflict(f"{self.what} was changed since (its {self.name} is now {self.of(record).isoformat()}); "
                        "read it again and apply your change to what it holds", field=self.field)

    async def write(self, record: R, expected: datetime | None, write: Callable[[datetime, datetime], Awaitable[bool]],
                    read_again: Callable[[], Awaitable[R]]) -> datetime:
        """Make an edit of `record` (as read, after `expect`) with `write(read, new)`, which writes only
        where the stamp is `read` (the `expected` one if given), stores `new`, and answers whether it
        matched; the stamp stored. On a miss, `read_again()` reads the record, raising if a delete
        took it; then CONFLICT if `expected` was given (the check in `expect` raced another writer),
        else the edit is made again on what it holds (UNAVAILABLE, naming `id`, after TRIES)."""

        async def again(_: dict[None, Attempt[R]]) -> dict[None, R]:
            now = await read_again()
            if expected is not None:
                raise self.changed_since(now)
            return {None: now}

        stored = await write_on_stamps({None: record}, stamp=lambda r: expected if expected is not None else self.of(r),
                                       write=lambda attempts: write(attempts[None].read, attempts[None].new),
                                       read_again=again, what=self.what, field="id")
        return stored[None]
