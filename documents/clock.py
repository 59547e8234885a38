"""The one clock every stored timestamp comes from."""

from datetime import UTC, datetime

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


def to_millis(value: datetime) -> datetime:
    """Bring a client-given datetime to the stored form: UTC, millisecond precision."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)
