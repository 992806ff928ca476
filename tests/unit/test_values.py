"""Unit tests: timestamps, names, codes, Any, Status, merge patches, database URLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import Code, LedgerError
from ledger.domain.errors import error_code
from ledger.domain.names import parent_of, validate_name
from ledger.domain.timestamps import Timestamp, format_timestamp, from_datetime, parse_timestamp
from ledger.domain.values import merge_patch, status
from ledger.storage.postgres import PostgresBackend
from ledger.storage.sqlite import SQLiteBackend
from ledger.storage.urls import open_backend


@pytest.mark.parametrize(
    ("given", "printed"),
    [
        ("2026-11-21T10:00:20Z", "2026-11-21T10:00:20Z"),
        ("2026-11-21T10:00:20.5Z", "2026-11-21T10:00:20.500Z"),
        ("2026-11-21T10:00:20.000Z", "2026-11-21T10:00:20Z"),
        ("2026-11-21T10:00:20.1234Z", "2026-11-21T10:00:20.123400Z"),
        ("2026-11-21T10:00:20.123456Z", "2026-11-21T10:00:20.123456Z"),
        ("2026-11-21T10:00:20.1234567Z", "2026-11-21T10:00:20.123456700Z"),
        ("2026-11-21T10:00:20.123456789Z", "2026-11-21T10:00:20.123456789Z"),
        ("2026-11-21T12:30:20+02:30", "2026-11-21T10:00:20Z"),
        ("2026-11-21T00:00:00-05:00", "2026-11-21T05:00:00Z"),
        ("2026-11-21t10:00:20z", "2026-11-21T10:00:20Z"),
        ("1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.500Z"),
    ],
)
def test_timestamps_print_as_protobuf_does(given: str, printed: str) -> None:
    assert format_timestamp(parse_timestamp(given, "t")) == printed


@given(st.datetimes(timezones=st.just(UTC)))
def test_datetimes_round_trip(value: datetime) -> None:
    text = format_timestamp(from_datetime(value))
    assert datetime.fromisoformat(text.replace("Z", "+00:00")) == value
    assert parse_timestamp(text, "t") == from_datetime(value)


def test_offset_datetimes_normalise_to_utc() -> None:
    east = datetime(2026, 11, 21, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(from_datetime(east)) == "2026-11-21T10:00:00Z"
    assert format_timestamp(Timestamp(0)) == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("name", "parent"),
    [
        ("operations/abc", ""),
        ("projects/p/locations/us-east1/operations/op-123", "projects/p/locations/us-east1"),
        ("projects/_/buckets/b/operations/C894F35J", "projects/_/buckets/b"),
        ("projects/p/regions/r/operations/9f3e", "projects/p/regions/r"),
    ],
)
def test_names_and_parents(name: str, parent: str) -> None:
    assert validate_name(name) == name
    assert parent_of(name) == parent


@pytest.mark.parametrize(
    ("value", "code"),
    [(1, Code.CANCELLED), ("CANCELLED", Code.CANCELLED), ("not_found", Code.NOT_FOUND), ("16", Code.UNAUTHENTICATED)],
)
def test_error_codes_by_number_or_name(value: object, code: Code) -> None:
    assert error_code(value) is code


def test_status_omits_empty_message_and_details() -> None:
    assert status(5, "", []) == {"code": 5}
    assert status("ABORTED", "raced", None) == {"code": 10, "message": "raced"}
    with pytest.raises(LedgerError, match=r"error\.details\[1\]"):
        status(2, "", [{"@type": "a/b"}, {"value": 1}])


def test_merge_patch_follows_rfc_7396() -> None:
    # The examples of RFC 7396 appendix A.
    cases = [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ]
    for target, patch, result in cases:
        assert merge_patch(target, patch) == result


def test_database_urls() -> None:
    relative = open_backend("sqlite:///relative.db")
    assert isinstance(relative, SQLiteBackend)
    assert relative.path == "relative.db"
    absolute = open_backend("sqlite:////var/lib/ledger.db")
    assert isinstance(absolute, SQLiteBackend)
    assert absolute.path == "/var/lib/ledger.db"

    tcp = open_backend("postgresql://u:p%40ss@db.example:6543/ops?schema=tenant_a")
    assert isinstance(tcp, PostgresBackend)
    s = tcp.settings
    assert (s.user, s.password, s.host, s.port, s.dbname, s.schema) == (
        "u",
        "p@ss",
        "db.example",
        6543,
        "ops",
        "tenant_a",
    )
    assert tcp.redacted_url == "postgresql://u:***@db.example:6543/ops?schema=tenant_a"
    assert tcp.environment()["POSTGRES_SCHEMA"] == "tenant_a"

    socket = open_backend("postgres://me@/ops?host=/var/run/postgresql")
    assert isinstance(socket, PostgresBackend)
    assert socket.settings.host == "/var/run/postgresql"
    assert socket.settings.port == 5432
    assert socket.redacted_url == "postgresql://me@:5432/ops?host=/var/run/postgresql"

    injected = "postgresql://h/db?schema=x%22.%22y%22%20--%20%3F"
    for bad in ("ledger.db", "mysql://x/y", "sqlite://relative.db", "postgresql://h/db?sslmode=require&x=1", injected):
        with pytest.raises(LedgerError) as e:
            open_backend(bad)
        assert e.value.code == Code.INVALID_ARGUMENT
        assert "database URL" in e.value.message


@given(st.integers(min_value=-62_135_596_800 * 10**9, max_value=253_402_300_799 * 10**9 + 999_999_999))
def test_fast_and_full_parsers_agree(ns: int) -> None:
    """Every printed timestamp parses back exactly, by the fast path and by the general one."""
    from ledger.domain.timestamps import _RFC3339, format_sortable

    for text in (format_timestamp(Timestamp(ns)), format_sortable(Timestamp(ns))):
        assert parse_timestamp(text, "t") == ns
        assert _RFC3339.fullmatch(text)
        assert parse_timestamp(text.replace("Z", "+00:00"), "t") == ns  # the general path


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T10:00:00Z",
        "2026-11-21T24:00:00Z",
        "2026-11-21T10:00:60Z",
        "2026-11-21T10:00:00.Z",
        "2026-11-21T10:00:00.1234567890Z",
        "+026-11-21T10:00:00Z",
        "2026-11-2\uff11T10:00:00Z",
    ],
)
def test_invalid_times_fail_on_both_paths(text: str) -> None:
    with pytest.raises(LedgerError):
        parse_timestamp(text, "t")


def test_an_offset_that_leaves_the_calendar_is_invalid_argument() -> None:
    from ledger.domain.errors import Code, LedgerError
    from ledger.domain.timestamps import parse_timestamp

    for text in ("0001-01-01T00:00:00+09:08", "9999-12-31T23:59:59-00:01"):
        with pytest.raises(LedgerError) as refused:
            parse_timestamp(text, "occurredAt")
        assert refused.value.code == Code.INVALID_ARGUMENT and "occurredAt" in refused.value.message
