"""The ObjectStore protocol: what Graphlake needs from a place that holds payload bytes."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class StoreUnavailable(Exception):
    """The store cannot be reached or used right now; the message says why."""


@runtime_checkable
class ObjectStore(Protocol):
    name: str
    backend: str  # "local" or "s3"

    async def open(self) -> None:
        """Acquire clients, create directories."""

    async def close(self) -> None:
        """Release what `open` acquired."""

    async def check(self) -> None:
        """Raise StoreUnavailable unless the store can be read and written now."""
