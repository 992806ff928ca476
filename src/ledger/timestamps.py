"""RFC 3339 timestamps held as integer nanoseconds since the epoch, in UTC.

Nanoseconds, not `datetime`: input may carry nine fractional digits and protobuf prints them back,
so a microsecond type would silently round what the caller recorded.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import NewType

from .errors import invalid

Timestamp = NewType("Timestamp", int)
"""Nanoseconds since 1970-01-01T00:00:00Z."""

_NS_PER_S = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})")


def parse_timestamp(value: object, field: str) -> Timestamp:
    """An RFC 3339 string (any offset) or an aware datetime, as UTC nanoseconds."""
    if isinstance(value, datetime):
        return from_datetime(value, field)
    if not isinstance(value, str):
        raise invalid(field, f"{value!r} is not an RFC 3339 timestamp")
    match = _RFC3339.fullmatch(value.strip())
    if not match:
        raise invalid(field, f"{value!r} is not an RFC 3339 timestamp (e.g. 2026-11-21T10:00:00Z)")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        whole = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError as e:
        raise invalid(field, f"{value!r} is not a valid date and time: {e}") from None
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise invalid(field, f"{value!r} has an invalid offset {offset}")
        whole -= sign * timedelta(hours=hours, minutes=minutes)
    nanos = int((fraction or "").ljust(9, "0"))
    return Timestamp(_seconds(whole) * _NS_PER_S + nanos)


def from_datetime(value: datetime, field: str = "time") -> Timestamp:
    if value.tzinfo is None or value.utcoffset() is None:
        raise invalid(field, f"{value.isoformat()} has no time zone; give an aware datetime")
    delta = value - _EPOCH
    return Timestamp((delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1_000)


def format_timestamp(ts: Timestamp) -> str:
    """As protobuf prints a Timestamp: UTC, `Z`, and 0, 3, 6 or 9 fractional digits."""
    seconds, nanos = divmod(ts, _NS_PER_S)
    t = _EPOCH + timedelta(seconds=seconds)
    # Not strftime: its %Y drops the leading zeros of years before 1000.
    text = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


def to_datetime(ts: Timestamp) -> datetime:
    """An aware UTC datetime; exact down to the microsecond, which is all `datetime` holds."""
    return _EPOCH + timedelta(microseconds=ts // 1_000)


def now() -> Timestamp:
    return from_datetime(datetime.now(UTC))


def _seconds(value: datetime) -> int:
    delta = value - _EPOCH
    return delta.days * 86_400 + delta.seconds
