"""GraphQL types of the lake's summary: counts and bytes, by the fields lists filter on."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from documents import annotation as annotation_docs
from documents.clock import to_millis, utcnow
from documents.common import AssetKind as AssetKindValue
from documents.common import AssetStatus as AssetStatusValue
from resolvers.annotations.types import AnnotationKind, AnnotationPurpose
from resolvers.assets.types import AssetKind, AssetStatus
from resolvers.context import Info
from resolvers.events.types import LogLevel, level_of
from resolvers.scalars import BigInt
from services import summary as service
from services.summary import Tally

COUNT = "How many."
BYTES = "Their payload bytes together (`sizeBytes`; assets of unknown size count 0)."


@strawberry.type(description="The assets of one kind, other than DELETED ones.")
class AssetKindTally:
    kind: AssetKind = strawberry.field(description="The kind.")
    count: int = strawberry.field(description=COUNT)
    size_bytes: BigInt = strawberry.field(description=BYTES)


@strawberry.type(description="The assets in one status.")
class AssetStatusTally:
    status: AssetStatus = strawberry.field(description="The status.")
    count: int = strawberry.field(description=COUNT)
    size_bytes: BigInt = strawberry.field(description=BYTES)


@strawberry.type(description="The assets whose bytes one mount holds, other than DELETED ones.")
class MountTally:
    mount: str | None = strawberry.field(description=(
        "The mount's name; null for assets kept in the database (VALUE and TEXT) or registered by URL."))
    count: int = strawberry.field(description=COUNT)
    size_bytes: BigInt = strawberry.field(description=BYTES)


@strawberry.type(description="Assets counted, with their bytes: DELETED ones only in `byStatus`.")
class AssetSummary:
    tallies: strawberry.Private[service.AssetTallies]

    @strawberry.field(description="How many assets the lake holds, DELETED ones aside.")
    def count(self) -> int:
        return self.tallies.total.count

    @strawberry.field(description="Their payload bytes together, DELETED ones aside.")
    def size_bytes(self) -> BigInt:
        return BigInt(self.tallies.total.size_bytes)

    @strawberry.field(description="By kind, every kind listed (0 where none).")
    def by_kind(self) -> list[AssetKindTally]:
        return [AssetKindTally(kind=kind, count=t.count, size_bytes=BigInt(t.size_bytes))
                for kind in AssetKindValue for t in [self.tallies.by_kind.get(kind.value, Tally())]]

    @strawberry.field(description="By status, every status listed (0 where none), DELETED included.")
    def by_status(self) -> list[AssetStatusTally]:
        return [AssetStatusTally(status=status, count=t.count, size_bytes=BigInt(t.size_bytes))
                for status in AssetStatusValue for t in [self.tallies.by_status.get(status.value, Tally())]]

    @strawberry.field(description="By mount, the mounts that hold any asset, by name (null, the database, first).")
    def by_mount(self) -> list[MountTally]:
        mounts = sorted(self.tallies.by_mount, key=lambda m: (m is not None, m or ""))
        return [MountTally(mount=m, count=self.tallies.by_mount[m].count, size_bytes=BigInt(self.tallies.by_mount[m].size_bytes))
                for m in mounts]


@strawberry.type(description="How many current annotation records have one kind.")
class AnnotationKindTally:
    kind: AnnotationKind = strawberry.field(description="The kind.")
    count: int = strawberry.field(description=COUNT)


@strawberry.type(description="How many current annotation records have one purpose.")
class AnnotationPurposeTally:
    purpose: AnnotationPurpose = strawberry.field(description="The purpose (of the records' sets).")
    count: int = strawberry.field(description=COUNT)


@strawberry.type(description="Current annotation records (superseded ones aside), counted.")
class AnnotationRecordSummary:
    by_kind_counts: strawberry.Private[dict[str, int]]
    by_purpose_counts: strawberry.Private[dict[str, int]]

    @strawberry.field(description="How many current records the lake holds.")
    def count(self) -> int:
        return sum(self.by_kind_counts.values())

    @strawberry.field(description="By kind, every kind listed (0 where none).")
    def by_kind(self) -> list[AnnotationKindTally]:
        return [AnnotationKindTally(kind=k, count=self.by_kind_counts.get(k.value, 0)) for k in annotation_docs.AnnotationKind]

    @strawberry.field(description="By purpose, every purpose listed (0 where none).")
    def by_purpose(self) -> list[AnnotationPurposeTally]:
        return [AnnotationPurposeTally(purpose=p, count=self.by_purpose_counts.get(p.value, 0))
                for p in annotation_docs.AnnotationPurpose]


@strawberry.type(description="How many events of the window have one level number.")
class EventLevelTally:
    level: LogLevel = strawberry.field(description="The named level (a custom number rounds down to the level below).")
    level_number: int = strawberry.field(description="The level as logged, e.g. 40.")
    count: int = strawberry.field(description=COUNT)


@strawberry.type(description="How many events of the window have one type.")
class EventTypeTally:
    event_type: str = strawberry.field(description="The event type.")
    count: int = strawberry.field(description=COUNT)


@strawberry.type(description="The events whose `timestamp` is in a window, archived ones included, counted.")
class EventSummary:
    after: datetime = strawberry.field(description="The window's start (inclusive).")
    before: datetime = strawberry.field(description="The window's end (exclusive).")
    by_level_counts: strawberry.Private[dict[int, int]]
    by_type_counts: strawberry.Private[dict[str, int]]
    max_types: strawberry.Private[int]

    @strawberry.field(description="How many events the window holds.")
    def count(self) -> int:
        return sum(self.by_level_counts.values())

    @strawberry.field(description="By level number, lowest first; only the numbers logged in the window.")
    def by_level(self) -> list[EventLevelTally]:
        return [EventLevelTally(level=level_of(n), level_number=n, count=c) for n, c in sorted(self.by_level_counts.items())]

    @strawberry.field(description=(
        "By type, the most frequent first (ties by name): at most the maximum page size (GRAPHLAKE_MAX_PAGE_SIZE, "
        "500 by default) of them; `typeCount` says how many types there are."))
    def by_type(self) -> list[EventTypeTally]:
        ranked = sorted(self.by_type_counts.items(), key=lambda item: (-item[1], item[0]))[:self.max_types]
        return [EventTypeTally(event_type=t, count=c) for t, c in ranked]

    @strawberry.field(description="How many event types the window holds: more than `byType` lists, if it was cut short.")
    def type_count(self) -> int:
        return len(self.by_type_counts)


@strawberry.type(description=(
    "What the lake holds, counted. Each field runs its own aggregation when asked for, and only then: ask for "
    "what you need. On MongoDB an aggregation reads the matching index entries or documents once; on the "
    "embedded default it scans the collection."))
class Summary:
    @strawberry.field(description="Assets by kind, status and mount, with their bytes.")
    async def assets(self) -> AssetSummary:
        return AssetSummary(tallies=await service.asset_tallies())

    @strawberry.field(description="How many collections the lake holds.")
    async def collection_count(self) -> int:
        return await service.collection_count()

    @strawberry.field(description="How many datasets the lake holds.")
    async def dataset_count(self) -> int:
        return await service.dataset_count()

    @strawberry.field(description="How many dataset versions the lake holds (READY ones: not one being built).")
    async def dataset_version_count(self) -> int:
        return await service.version_count()

    @strawberry.field(description="Current annotation records by kind and by purpose.")
    async def annotation_records(self) -> AnnotationRecordSummary:
        by_kind, by_purpose = await service.record_tallies()
        return AnnotationRecordSummary(by_kind_counts=by_kind, by_purpose_counts=by_purpose)

    @strawberry.field(description="Events by level and by type, over a window of their `timestamp`.")
    async def events(
        self, info: Info,
        after: Annotated[datetime, strawberry.argument(description="The window's start (inclusive).")],
        before: Annotated[datetime | None, strawberry.argument(description=(
            "The window's end (exclusive), after `after`; null is now."))] = None,
    ) -> EventSummary:
        await info.context.state.feed.settled()  # this process's journaled AUDIT events are counted too
        end = before or utcnow()
        by_level, by_type = await service.event_tallies(after, end)
        return EventSummary(after=to_millis(after), before=to_millis(end), by_level_counts=by_level,
                            by_type_counts=by_type, max_types=info.context.settings.max_page_size)
