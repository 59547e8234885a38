"""Health, mounts and the heartbeat subscription."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from documents.clock import utcnow
from documents.roles import Role
from migrations import SCHEMA_VERSION
from resolvers.context import Info
from resolvers.permissions import CanRead, has_role
from resolvers.system.types import Health, Heartbeat, Mount
from services.errors import BadUserInput
from storage import LocalStore


@strawberry.type
class SystemQueries:
    @strawberry.field(description="Database and storage reachability, and the version. Needs no role.")
    async def health(self, info: Info) -> Health:
        report = await info.context.state.health.report()
        return Health(ok=report.ok, database=report.database, storage=report.storage,
                      version=info.context.state.version, schema_version=SCHEMA_VERSION)

    @strawberry.field(permission_classes=[CanRead], description="The storage mounts, default first. Where a local mount lives on disk (localRoot, localId) is shown only to tokens that may write.")
    def mounts(self, info: Info) -> list[Mount]:
        default = info.context.settings.default_mount
        stores = sorted(info.context.stores.values(), key=lambda s: (s.name != default, s.name))
        writer = has_role(info.context, Role.CONTRIBUTOR)
        return [Mount(name=s.name, backend=s.backend, is_default=s.name == default, owned=s.ownership.owned,
                      owner_lake=s.ownership.owner,
                      **({"local_root": str(s.root), "local_id": s.mount_id}
                         if writer and isinstance(s, LocalStore) and s.direct_writes else {}))
                for s in stores]

    @strawberry.field(permission_classes=[CanRead], description=(
        "The server's directories whose files `ingestFiles` copies into a local mount (GRAPHLAKE_INGEST_ROOTS): a "
        "client whose files are under one, as the server sees them, may ingest them instead of uploading. Shown only "
        "to tokens that may write (empty for others)."))
    def ingest_roots(self, info: Info) -> list[str]:
        return [str(root) for root in info.context.settings.ingest_roots] if has_role(info.context, Role.CONTRIBUTOR) else []


@strawberry.type
class SystemSubscriptions:
    @strawberry.subscription(
        permission_classes=[CanRead],
        description="Ticks every `intervalSeconds` (0.1 to 3600): checks that a live connection and its token work.",
    )
    async def heartbeat(
        self, info: Info,
        interval_seconds: Annotated[float, strawberry.argument(description=(
            "Seconds between ticks, 0.1 to 3600 (default 10)."))] = 10.0,
    ) -> AsyncGenerator[Heartbeat, None]:
        if not 0.1 <= interval_seconds <= 3600:
            raise BadUserInput("must be between 0.1 and 3600", field="intervalSeconds")
        sequence = 0
        while True:
            sequence += 1
            yield Heartbeat(sequence=sequence, at=utcnow())
            await asyncio.sleep(interval_seconds)
