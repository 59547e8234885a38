"""Event business steps: validate and log batches, query, archive, and compute utilization.

A batch is checked whole, then written with one bulk insert into `events` and one into the live
feed; alerts are scheduled after the write and never hold it up. A batch holding keyed events is
written before the call answers, leaving out those the lake holds already (services/events/keys.py).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from functools import partial
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bson import ObjectId

from documents.clock import to_millis, utcnow
from documents.common import Ownership
from documents.event import AUDIT, LEVELS, Event, new_event_id
from documents.json_value import StoredJson
from services.bulk_deletes import delete_all, update_all
from services.checks import check_at_most, check_client_keys, time_bounds
from services.errors import BadUserInput, NotFound
from services.events import alerts, keys
from services.events.feed import FeedWriter
from services.node_ids import NodeType, encode_id

log = logging.getLogger("graphlake.events")

MAX_TYPE_LENGTH = 100
# An event type is ASCII letters, digits and _ . : / -, starting with a letter or digit: no spaces,
# no look-alike or invisible characters that would let one type pass for another (a reserved one).
EVENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")
MAX_MESSAGE_LENGTH = 10_000


class EventSettings(alerts.AlertSettings, Protocol):
    """What logging events reads from the server's settings."""

    max_events_per_batch: int
    alert_level: str
    event_clock_skew_seconds: int


@dataclass
class NewEvent:
    event_type: str
    level: int = LEVELS["INFO"]
    message: str | None = None
    data: StoredJson | None = None
    source: Ownership = field(default_factory=Ownership)
    timestamp: datetime | None = None
    alert: bool = False
    trace_id: str | None = None
    span_id: str | None = None
    key: str | None = None  # the client's name for it: sent again under it, it is found (services/events/keys.py)


@dataclass(frozen=True)
class Logged:
    """What a log_events call answers with: every event, in the order given (for a keyed one the
    lake held already, that event), and those this call stored (broadcast, alerted, counted)."""

    events: list[Event]
    stored: list[Event]


def _check(where: str, event: NewEvent) -> None:
    if not event.event_type.strip() or len(event.event_type) > MAX_TYPE_LENGTH:
        raise BadUserInput(f"must be 1 to {MAX_TYPE_LENGTH} characters", field=f"{where}.eventType")
    if not EVENT_TYPE.fullmatch(event.event_type.strip()):
        raise BadUserInput("may hold only ASCII letters, digits and _ . : / -, starting with a letter or digit",
                           field=f"{where}.eventType")
    if event.message is not None and len(event.message) > MAX_MESSAGE_LENGTH:
        raise BadUserInput(f"at most {MAX_MESSAGE_LENGTH} characters", field=f"{where}.message")


async def log_events(writer: FeedWriter, events: Sequence[NewEvent], settings: EventSettings,
                     tasks: set[asyncio.Task] | None = None, *, one: bool = False,
                     on_stored: Callable[[list[Event]], None] | None = None, held: bool = False) -> Logged:
    """Store a batch (all checked first), publish it live, and fire alerts in the background. An
    error names the event as `inputs[i]`, or with `one` (logEvent's single event) as `input`.
    `on_stored` is given the events this call stored, once they are stored, whatever the call ends
    in (the metrics count them, and a call that fails audits them): a keyed batch refused on one key
    keeps the events an earlier round stored, which its answer does not list (services/events/keys.py),
    and a request cancelled meanwhile still has its events stored. `held`: no one reads their IDs
    before the mutation around the call ends (its AUDIT event), so they may wait and go in with it."""
    if not events:
        raise BadUserInput("give at least one event", field="inputs")
    if len(events) > settings.max_events_per_batch:
        raise BadUserInput(f"at most {settings.max_events_per_batch} events at once", field="inputs")

    def where(i: int) -> str:
        return "input" if one else f"inputs[{i}]"

    now = utcnow()
    latest = now + timedelta(seconds=settings.event_clock_skew_seconds)
    for i, event in enumerate(events):
        _check(where(i), event)
        if event.timestamp is not None and to_millis(event.timestamp) > latest:  # naive means UTC, as stored
            raise BadUserInput(f"is more than {settings.event_clock_skew_seconds} s ahead of the server's clock",
                               field=f"{where(i)}.timestamp")
    keyed = any(e.key is not None for e in events)
    if keyed:
        check_client_keys([e.key for e in events], where)
    # Built without re-validation: every field was checked above or typed by GraphQL (the hot path).
    # Each is numbered again as it is stored (FeedWriter.write); the audit journal keeps this one.
    stored = [
        Event.model_construct(id=new_event_id(), event_type=e.event_type.strip(), level=e.level, message=e.message,
              data=e.data or StoredJson.encode({}), source=e.source,
              timestamp=to_millis(e.timestamp) if e.timestamp else now, alert=e.alert, trace_id=e.trace_id, span_id=e.span_id,
              key=e.key)
        for e in events
    ]

    def alerting(new: list[Event]) -> list[Callable[[], None]]:
        """What runs once `new` are stored: `on_stored`, and their alerts in the background."""
        due = [e for e in new if e.alert or e.level >= LEVELS[settings.alert_level]]

        def fire() -> None:
            task = asyncio.create_task(alerts.notify(due, writer, settings))
            if tasks is not None:  # keep a reference until done: the loop holds tasks only weakly
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        told = [partial(on_stored, new)] if on_stored is not None and new else []
        return [*told, fire] if due else told

    if keyed:  # stored before the answer: it is the first event stored under a key, or the batch fails whole
        answered, new = await keys.write_keyed(writer, stored, [e.timestamp is not None for e in events], where,
                                               alerting)
        return Logged(answered, new)
    if held:  # inside a mutation, stored as it ends (FeedWriter.together); `then` once they are
        await writer.write(stored, then=alerting(stored))
        return Logged(stored, stored)
    # Stored before the answer, even inside a mutation (not as it ends, with its AUDIT event): the
    # answer gives their IDs, which are made as they are stored (FeedWriter.write). Shielded: a
    # request cancelled meanwhile still has them stored, published and alerted, as any stored event.
    await asyncio.shield(writer.write(stored, then=alerting(stored), now=True))
    return Logged(stored, stored)


async def archive(older_than: timedelta) -> int:
    """Move events older than that out of default queries (they stay retrievable)."""
    if older_than <= timedelta(0):
        raise BadUserInput("must be more than 0 days", field="olderThan")
    # A round at a time (services/bulk_deletes.py), oldest first along the timeline index: archiving
    # is first turned on over the whole history, and 60,000 events in one update held the lake's one
    # writer 12.7 s (a write beside it waited past a request's time limit). Each round's events leave
    # the query, so every round reads from the timeline's oldest not-archived event.
    return await update_all(Event.get_pymongo_collection(), {"archived": False, "timestamp": {"$lt": utcnow() - older_than}},
                            {"$set": {"archived": True}}, order=("timestamp", "_id"))


async def set_archived(event_ids: list[ObjectId], archived: bool, max_items: int) -> int:
    """Archive the events named (or, with archived=False, bring them back into default queries);
    how many changed. NOT_FOUND, naming the first, for an id no event has."""
    if not event_ids:
        raise BadUserInput("give at least one event", field="ids")
    check_at_most(event_ids, max_items, "events at once", "ids")
    found = {doc["_id"] for doc in await Event.get_pymongo_collection().find(
        {"_id": {"$in": event_ids}}, {"_id": 1}).to_list()}
    for i, event_id in enumerate(event_ids):
        if event_id not in found:
            raise NotFound(f"no event {encode_id(NodeType.EVENT, event_id)}", field=f"ids[{i}]")
    result = await Event.get_pymongo_collection().update_many(
        {"_id": {"$in": event_ids}, "archived": not archived}, {"$set": {"archived": archived}})
    return result.modified_count


async def purge(older_than: timedelta, *, audit_too: bool) -> int:
    """Delete archived events older than that for good; the audit trail (AUDIT events) only with
    `audit_too`. How many went."""
    if older_than <= timedelta(0):
        raise BadUserInput("must be more than 0 days", field="olderThan")
    query: dict[str, Any] = {"archived": True, "timestamp": {"$lt": utcnow() - older_than}}
    if not audit_too:
        query["event_type"] = {"$ne": AUDIT}
    # A round at a time (services/bulk_deletes.py): a year of events in one delete held the lake's writes.
    return await delete_all(Event.get_pymongo_collection(), query, order=("timestamp", "_id"), onwards=True)


REPLAY_PAGE = 500


async def received_since(query: dict[str, Any], after: ObjectId, *, limit: int) -> AsyncIterator[Event]:
    """The events matching `query` (which must not pin `archived`) stored after the event `after`, in
    the order they were received (their ids, made as each is stored), a page at a time. More than
    `limit` is BAD_USER_INPUT, once `limit` are out: the caller resumes from the last it got.

    Archived events too (a live stream knows no archive), read apart from the others and merged:
    each read is then an `_id` range of the (archived, _id) index, where one read of both, or
    none pinned, scans the collection on the embedded default (tests/test_query_plans.py).
    """
    collection = Event.get_pymongo_collection()
    sent = 0
    while True:
        pages = await asyncio.gather(*(
            collection.find({"$and": [{"archived": archived}, *([query] if query else []), {"_id": {"$gt": after}}]},
                            sort=[("_id", 1)], limit=REPLAY_PAGE).to_list()
            for archived in (False, True)))
        # The first REPLAY_PAGE of both, in id order: past them, one of the reads may have more unread.
        page = heapq.merge(*pages, key=lambda doc: doc["_id"])
        raw = list(itertools.islice(page, REPLAY_PAGE))
        for doc in raw:
            if sent == limit:
                raise BadUserInput(f"more than {limit} events were logged since this position "
                                   "(GRAPHLAKE_MAX_EVENT_REPLAY); resume from the last one received", field="after")
            sent += 1
            yield Event.model_validate(doc)
        if len(raw) == sum(map(len, pages)) and all(len(p) < REPLAY_PAGE for p in pages):
            return  # both read to their end
        after = raw[-1]["_id"]


# --- utilization: sessions from start/stop pairs --------------------------------------------------

# Per grouping: the source field that names the group, the events that open and close a session.
# Named in upper case; MADSci's clients send the same names in lower case (`node_start`), which count
# alike (`_session_types`).
_WORKFLOW_ENDS = {"WORKFLOW_COMPLETE", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED", "WORKFLOW_ABORT"}
SESSION_KINDS = {
    "NODE": ("node_id", {"NODE_START"}, {"NODE_STOP"}),
    "WORKFLOW": ("workflow_id", {"WORKFLOW_START"}, _WORKFLOW_ENDS),
    # People: the workflows each user ran.
    "USER": ("user_id", {"WORKFLOW_START"}, _WORKFLOW_ENDS),
    "EXPERIMENT": ("experiment_id", {"EXPERIMENT_START"},
                   {"EXPERIMENT_COMPLETE", "EXPERIMENT_FAILED", "EXPERIMENT_CANCELLED"}),
}
LOOKBACK = timedelta(days=30)  # how far before `start` a still-open session may have begun
# Start and stop events one utilization reads at most (the window's and its LOOKBACK's): 100,000 took
# FerretDB 1.4 s of CPU and 2 s of wall here, about 0.6 s of them decoding on the event loop. All of a
# lab's history (a window from 1970) had been read into memory at once, and beyond a few hundred
# thousand met the database's time limit (an UNAVAILABLE that named nothing).
MAX_SESSION_EVENTS = 100_000
SESSION_EVENTS_BATCH = 1000  # read, decoded and folded into sessions this many at a time: the loop is free between


# Buckets a utilization may be cut into: with more, the window is too long for the bucket. Each
# kind by its shortest length (a month by 28 days), which the count of a window is checked with.
MAX_BUCKETS = 2000
BUCKETS = {"HOUR": timedelta(hours=1), "DAY": timedelta(days=1), "WEEK": timedelta(days=7), "MONTH": timedelta(days=28)}


@dataclass(frozen=True)
class Session:
    """One session behind a utilization row, clipped to the window."""

    start: datetime
    end: datetime
    open: bool  # no stop event by the window's end: counted up to it
    workflow_id: str | None  # the workflow of a USER session (a user's sessions are their workflows)


@dataclass(frozen=True)
class Bucket:
    """A group's busy time within one hour or day of the window (clipped to it)."""

    start: datetime
    end: datetime
    busy_seconds: float
    utilization: float


@dataclass(frozen=True)
class UtilizationRow:
    group: str
    busy_seconds: float
    sessions: int
    utilization: float
    session_list: list[Session] = field(default_factory=list)
    buckets: list[Bucket] = field(default_factory=list)


def _merged(sessions: list[Session]) -> list[tuple[datetime, datetime]]:
    """The time covered by any of the sessions: overlapping ones (a user's workflows that ran at
    once) count once, so a group is never busier than the clock allows."""
    merged: list[tuple[datetime, datetime]] = []
    for s in sorted(sessions, key=lambda s: s.start):
        if merged and s.start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], s.end))
        else:
            merged.append((s.start, s.end))
    return merged


def time_zone(name: str | None) -> tzinfo:
    """An IANA time zone by name (`Europe/Berlin`), UTC for none; BAD_USER_INPUT naming `timeZone`."""
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: a path-like or malformed name
        raise BadUserInput(f"{name[:100]!r} is not a time zone: give an IANA name such as Europe/Berlin",
                           field="timeZone") from None


def _bucket_starts(start: datetime, end: datetime, bucket: str, zone: tzinfo) -> list[datetime]:
    """Where each bucket touching [start, end) begins, in UTC: hours, and days, weeks (from Monday)
    and months by the wall clock of `zone`, so a day is 23 or 25 hours across a change of daylight
    saving time there, and a month its own length."""
    local = start.astimezone(zone)
    if bucket == "HOUR":
        first = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        return [first + timedelta(hours=n) for n in range(math.ceil((end - first) / timedelta(hours=1)) + 1)]
    day = local.date()
    if bucket == "WEEK":
        day -= timedelta(days=day.weekday())
    elif bucket == "MONTH":
        day = day.replace(day=1)
    starts = []
    while True:
        at = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
        starts.append(at)
        if at >= end:
            return starts
        if bucket == "MONTH":
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            day += timedelta(days=7 if bucket == "WEEK" else 1)


def _buckets(busy: list[tuple[datetime, datetime]], start: datetime, end: datetime, bucket: str,
             zone: tzinfo) -> list[Bucket]:
    """Busy time per bucket (_bucket_starts), clipped to [start, end). `busy` is _merged's: in order,
    none overlapping, so its ends are in order too, and one sweep finds each bucket's intervals (every
    interval tested against every bucket took 0.57 s of the event loop a group at 10,000 sessions and
    2,000 hours)."""
    bounds = _bucket_starts(start, end, bucket, zone)
    buckets = []
    first = 0  # the first interval that ends after the bucket's start
    for lo, hi in itertools.pairwise(bounds):
        b_lo, b_hi = max(lo, start), min(hi, end)
        if b_hi <= b_lo:
            continue
        while first < len(busy) and busy[first][1] <= b_lo:
            first += 1
        seconds, at = 0.0, first
        while at < len(busy) and busy[at][0] < b_hi:
            seconds += (min(busy[at][1], b_hi) - max(busy[at][0], b_lo)).total_seconds()
            at += 1
        buckets.append(Bucket(start=b_lo, end=b_hi, busy_seconds=seconds, utilization=seconds / (b_hi - b_lo).total_seconds()))
    return buckets


async def utilization(start: datetime, end: datetime, group_by: str, bucket: str | None = None,
                      zone: tzinfo = UTC) -> list[UtilizationRow]:
    """Busy time per group within [start, end): each start event opens a session of its group (by
    source field, and by workflow for USER) and the next stop event closes it; a session still open
    at `end` counts up to `end`. Sessions are clipped to the window, and the time they cover is
    merged: a user running two workflows at once is busy once, so utilization stays within 0..1.
    With `bucket` (HOUR, DAY, WEEK or MONTH), each row also has its busy time per hour, or per day,
    week or month of `zone`'s calendar."""
    start, end = to_millis(start), to_millis(end)
    if end <= start:
        raise BadUserInput("must be after `from`", field="to")
    if bucket is not None and (end - start) / BUCKETS[bucket] > MAX_BUCKETS:
        raise BadUserInput(f"the window holds more than {MAX_BUCKETS} buckets of one {bucket.lower()}: "
                           "shorten it or use a longer bucket", field="bucket")
    group_field, opens, closes = SESSION_KINDS[group_by]
    query = {"event_type": {"$in": _session_types(opens | closes)}, f"source.{group_field}": {"$ne": None},
             "timestamp": {"$gte": start - LOOKBACK, "$lt": end}}
    raw = Event.get_pymongo_collection().find(
        query, {"event_type": 1, "timestamp": 1, "source": 1}, sort=[("timestamp", 1), ("_id", 1)],
        limit=MAX_SESSION_EVENTS + 1, batch_size=SESSION_EVENTS_BATCH)
    open_since: dict[tuple[str, str | None], datetime] = {}
    sessions: dict[str, list[Session]] = defaultdict(list)

    def close(group: str, workflow_id: str | None, began: datetime, ended: datetime, *, still_open: bool) -> None:
        lo, hi = max(began, start), min(ended, end)
        if hi > lo:
            sessions[group].append(Session(start=lo, end=hi, open=still_open, workflow_id=workflow_id))

    read = 0
    async for doc in raw:
        read += 1
        if read > MAX_SESSION_EVENTS:
            await raw.close()
            raise BadUserInput(f"the window (and the {LOOKBACK.days} days before it, for sessions open at its start) "
                               f"holds more than {MAX_SESSION_EVENTS:,} start and stop events: shorten it", field="from")
        group = doc["source"][group_field]
        # A user may run several workflows at once: each is its own session.
        key = (group, doc["source"].get("workflow_id") if group_by == "USER" else None)
        if doc["event_type"].upper() in opens:
            open_since.setdefault(key, doc["timestamp"])
        elif key in open_since:
            close(group, key[1], open_since.pop(key), doc["timestamp"], still_open=False)
    for (group, workflow_id), began in open_since.items():
        close(group, workflow_id, began, end, still_open=True)
    window = (end - start).total_seconds()
    rows = []
    for group in sorted(sessions):
        busy = _merged(sessions[group])
        seconds = sum((e - s).total_seconds() for s, e in busy)
        rows.append(UtilizationRow(
            group=group, busy_seconds=seconds, sessions=len(sessions[group]), utilization=seconds / window,
            session_list=sorted(sessions[group], key=lambda s: (s.start, s.end)),
            buckets=_buckets(busy, start, end, bucket, zone) if bucket else []))
    return rows


def _session_types(names: set[str]) -> list[str]:
    """The stored event types that name these: as written, and in lower case (MADSci's EventType
    values). Two spellings rather than a case-insensitive match, which no index serves."""
    return sorted(names | {name.lower() for name in names})


def event_query(*, min_level: int | None = None, event_types: Sequence[str] | None = None,
                source: dict[str, Any] | None = None, after: datetime | None = None, before: datetime | None = None,
                alert_only: bool = False, data: Sequence[dict[str, Any]] = (), include_archived: bool = False,
                by_lake: bool | None = None, key: str | None = None) -> dict[str, Any]:
    """The MongoDB filter for an EventFilter (data predicates come compiled). `by_lake`: True for
    only the events Graphlake wrote itself, False for only those clients logged, None for both;
    `key`: the event its client logged under that key (keys.lookup: its index)."""
    clauses: list[dict[str, Any]] = []
    if not include_archived:
        # With a key, as `$ne`, which pins no index: pinned to false, the embedded default walked the
        # timeline (archived first) in order for the one event the `key` index finds at once.
        clauses.append({"archived": False} if key is None else {"archived": {"$ne": True}})
    if by_lake is not None:
        clauses.append({"by_lake": True if by_lake else None})
    if key is not None:
        clauses.append(keys.lookup([key]))
    if min_level is not None:
        clauses.append({"level": {"$gte": min_level}})
    if event_types:
        clauses.append({"event_type": {"$in": list(event_types)}})
    clauses += [{k: v} for k, v in (source or {}).items()]
    clauses += time_bounds("timestamp", after, before)
    if alert_only:
        clauses.append({"alert": True})
    clauses += list(data)
    return {"$and": clauses} if clauses else {}
