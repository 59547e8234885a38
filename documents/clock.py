"""The one clock every stored timestamp comes from."""

from datetime import UTC, datetime, timedelta

# The oldest an age (`--older-than`, an `*_after_days` setting, a token's lifetime) may be: a century,
# older than any lake and within what a date can go back from today (`inf` or 1e6 days overflowed it).
MAX_DAYS = 36_500


def utcnow() -> datetime:
    """Now, timezone-aware UTC, truncated to milliseconds.

    BSON dates hold milliseconds: a microsecond value would come back different from what was
    written, and a keyset cursor built from it would no longer match the stored document.
    """
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def next_updated_at(previous: datetime | None) -> datetime:
    """The `updated_at` a change of a document that had `previous` stores: now, but at least a
    millisecond past `previous`. A compare-and-set on it (updateAsset's `expectedUpdatedAt`) tells
    two changes apart only if each moves it on: one in the millisecond of the last, or after a
    change that moved it ahead of the clock, left it as a writer had read it."""
    if previous is None:
        return utcnow()
    return max(utcnow(), to_millis(previous) + timedelta(milliseconds=1))


def to_millis(value: datetime) -> datetime:
    """Bring a client-given datetime to the stored form: UTC, millisecond precision."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)
