"""RFC 3339 timestamps held as integer nanoseconds since the epoch, in UTC.

Nanoseconds, not `datetime`: input may carry nine fractional digits and protobuf prints them back,
so a microsecond type would silently round what the caller recorded.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import NewType

from .errors import invalid

Timestamp = NewType("Timestamp", int)
"""Nanoseconds since 1970-01-01T00:00:00Z."""

_NS_PER_S = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_NAIVE_EPOCH = datetime(1970, 1, 1)
MIN_TIMESTAMP = Timestamp(int((datetime(1, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds()) * _NS_PER_S)
_LAST_SECOND = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
MAX_TIMESTAMP = Timestamp((int((_LAST_SECOND - _EPOCH).total_seconds()) + 1) * _NS_PER_S - 1)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,  # \d would otherwise take any script's digits
)


def parse_timestamp(value: object, field: str) -> Timestamp:
    """An RFC 3339 string (any offset) or an aware datetime, as UTC nanoseconds."""
    if isinstance(value, datetime):
        return from_datetime(value, field)
    if not isinstance(value, str):
        raise invalid(field, f"{value!r} is not an RFC 3339 timestamp")
    fast = _parse_canonical(value)
    if fast is not None:
        return fast
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
        try:
            whole -= sign * timedelta(hours=hours, minutes=minutes)
        except OverflowError:  # the offset moves it out of years 1..9999, which datetime holds
            raise invalid(field, f"{value!r} is outside years 0001..9999 in UTC") from None
    nanos = int((fraction or "").ljust(9, "0"))
    return Timestamp(_seconds(whole) * _NS_PER_S + nanos)


def _parse_canonical(value: str) -> Timestamp | None:
    """The shape the ledger itself writes (`YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`), parsed without the regex.

    Replays parse two timestamps an event, so this path matters; anything else takes the full one.
    """
    if (
        len(value) < 20
        or value[-1] != "Z"
        or value[10] != "T"
        or value[4] != "-"
        or value[7] != "-"
        or value[13] != ":"
        or value[16] != ":"
        or not value.isascii()
    ):
        return None
    fraction = value[19:-1]
    if fraction and not (fraction[0] == "." and 2 <= len(fraction) <= 10 and fraction[1:].isdigit()):
        return None
    try:
        t = datetime.fromisoformat(value[:19])
    except ValueError:
        return None
    seconds = (t.toordinal() - _EPOCH_ORDINAL) * 86_400 + t.hour * 3600 + t.minute * 60 + t.second
    return Timestamp(seconds * _NS_PER_S + (int(fraction[1:].ljust(9, "0")) if fraction else 0))


def from_datetime(value: datetime, field: str = "time") -> Timestamp:
    if value.tzinfo is None or value.utcoffset() is None:
        raise invalid(field, f"{value.isoformat()} has no time zone; give an aware datetime")
    try:
        delta = value - _EPOCH
    except OverflowError:  # an aware datetime near year 1 or 9999 whose offset moves it out of range
        raise invalid(field, f"{value.isoformat()} is outside years 0001..9999 in UTC") from None
    ts = (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1_000
    if not MIN_TIMESTAMP <= ts <= MAX_TIMESTAMP:
        raise invalid(field, f"{value.isoformat()} is outside years 0001..9999 in UTC")
    return Timestamp(ts)


def format_timestamp(ts: Timestamp) -> str:
    """As protobuf prints a Timestamp: UTC, `Z`, and 0, 3, 6 or 9 fractional digits."""
    seconds, nanos = divmod(ts, _NS_PER_S)
    text = _second_text(seconds)
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


def format_sortable(ts: Timestamp) -> str:
    """Always nine fractional digits, so that text order is time order (as database columns hold it)."""
    seconds, nanos = divmod(ts, _NS_PER_S)
    return f"{_second_text(seconds)}.{nanos:09d}Z"


@lru_cache(maxsize=1 << 16)
def _second_text(seconds: int) -> str:
    # isoformat of a naive whole second is exactly `YYYY-MM-DDTHH:MM:SS`, years before 1000 with their
    # leading zeros (which strftime's %Y drops), at half the cost of formatting each field.
    return (_NAIVE_EPOCH + timedelta(seconds=seconds)).isoformat()


def to_datetime(ts: Timestamp) -> datetime:
    """An aware UTC datetime; exact down to the microsecond, which is all `datetime` holds."""
    return _EPOCH + timedelta(microseconds=ts // 1_000)


def now() -> Timestamp:
    return from_datetime(datetime.now(UTC))


def _seconds(value: datetime) -> int:
    delta = value - _EPOCH
    return delta.days * 86_400 + delta.seconds
