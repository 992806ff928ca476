"""The storage interfaces: a backend (one kind of database behind one URL), its connection (the
ledger's transactions), and its dialect (what differs in SQL). `sqlite.py` and `postgres.py` each
implement all three; nothing above this package knows which one it holds.

SQL in the ledger is written with `?` placeholders; `Dialect.sql` turns them into the driver's.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NamedTuple, Protocol

from .codec import ENVIRONMENT_TOPICS

APPLICATION_NAME = "ledger"  # eventsourcing names the PostgreSQL tables after it: ledger_events


class Cursor(Protocol):
    """What the ledger asks of a DB-API cursor (sqlite3's and psycopg's both have it)."""

    def execute(self, statement: Any, params: Any = ..., /) -> Any: ...

    def executemany(self, statement: Any, params: Iterable[Any], /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchmany(self, size: int = ..., /) -> list[Any]: ...

    def fetchall(self) -> list[Any]: ...

    @property
    def description(self) -> Any: ...


class LogRow(NamedTuple):
    """One stored event as the log holds it. `state` is the payload, however the driver gives it."""

    position: int
    name: str
    version: int
    topic: str
    state: bytes


Rows = Sequence[tuple[Any, ...]]


def replacing(columns: Sequence[str], key: str) -> str:
    """The clause that makes an INSERT of `columns` replace the row its `key` already names."""
    return f"ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)


class Dialect:
    """What differs between SQLite and PostgreSQL in the SQL the ledger writes."""

    name: str
    blob: str
    json: str
    json_placeholder = "?"  # a parameter that fills a JSON column
    body_json: str  # a view's stored Operation JSON bytes (`body`) as a JSON value filters read paths of
    text: str  # a text column whose comparisons and ordering are by code point, as in Python
    for_update: str = ""  # row locks where the database has them; SQLite's writer lock covers it

    def integrity_problems(self, cursor: Cursor) -> list[str]:
        """The database's own check of its files and indexes, read only: what it reports wrong."""
        return []

    def serialize_writers(self, cursor: Cursor) -> None:
        """Make concurrent schema changes (first use, rebuild swaps) take turns."""

    def sql(self, statement: str) -> str:
        return statement

    def table(self, name: str) -> str:
        return f'"{name}"'

    def json_path(self, segments: tuple[str, ...]) -> Any:
        raise NotImplementedError

    def json_type_is(self, column: str, kinds: tuple[str, ...]) -> str:
        """SQL true when the JSON at path `?` is one of `kinds` (string, number, boolean)."""
        raise NotImplementedError

    def json_text(self, column: str) -> str:
        """SQL for the JSON string at path `?` as text."""
        raise NotImplementedError

    def json_number_compare(self, column: str, comparator: str) -> str:
        """SQL comparing the JSON number at path `?` with the number `?`; never NULL, never a cast error."""
        raise NotImplementedError

    def json_boolean_compare(self, column: str, comparator: str) -> str:
        """SQL comparing the JSON boolean at path `?` with `?` (see `json_boolean`)."""
        raise NotImplementedError

    def json_boolean(self, value: bool) -> Any:
        raise NotImplementedError

    def json_exists(self, column: str) -> str:
        raise NotImplementedError

    def wildcard(self, expression: str) -> str:
        """SQL matching `expression` against pattern `?` (see `wildcard_pattern`)."""
        raise NotImplementedError

    def wildcard_pattern(self, value: str) -> str:
        raise NotImplementedError

    def contains(self, expression: str) -> str:
        raise NotImplementedError

    def in_list(self, column: str, count: int) -> tuple[str, bool]:
        """SQL for `column` in a list of `count` parameters; True when the list goes as one array parameter."""
        raise NotImplementedError

    def shard_of(self, column: str, count: int) -> str:
        """SQL for a number in [0, count) that a text column's value always gives: which of `count`
        processes takes the row, decided by the database, which then sends each row to one."""
        raise NotImplementedError

    def upsert(
        self, cursor: Cursor, table: str, columns: Sequence[str], placeholders: str, key: str, rows: Rows
    ) -> None:
        """Insert `rows` into `table` (as `table()` names it), each in place of the row with its `key`
        where there is one; no two of `rows` share a key. `placeholders`: one row's parameters."""
        cursor.executemany(
            self.sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) {replacing(columns, key)}"),
            rows,
        )

    def table_exists(self, cursor: Cursor, name: str) -> bool:
        raise NotImplementedError

    def column_exists(self, cursor: Cursor, table: str, column: str) -> bool:
        raise NotImplementedError


Transaction = AbstractContextManager[Cursor]


class Database(ABC):
    """The ledger's own connection, one per ledger: exclusive write transactions (the views' catch-up,
    and every recorded event with its projection) and plain reads. Driver errors leave its
    transactions as eventsourcing's persistence errors (`errors.driver_errors`)."""

    dialect: Dialect
    events_table: str  # eventsourcing's table, quoted
    events_table_name: str  # the same, unquoted
    read_only = False  # opened to read only (a copy the ledger may not write): catch-up leaves the views be
    position_column: str  # its global position: SQLite's rowid, PostgreSQL's notification_id
    conflict_error: type[Exception]  # the driver's error for a unique key already taken

    def __init__(self) -> None:
        self._lock = threading.RLock()

    @abstractmethod
    def write(self) -> Transaction:
        """A cursor inside a transaction that excludes other writers."""

    @abstractmethod
    def recording(self, count: int) -> Transaction:
        """`write`, for a transaction that records `count` events: its commit survives a power cut
        (the views alone are derived, and may be projected again)."""

    @abstractmethod
    def read(self) -> Transaction:
        """A cursor for reads."""

    @abstractmethod
    def lock_log(self, cursor: Cursor) -> None:
        """Inside `write`: take the lock under which eventsourcing's recorders append events, so that
        positions are handed out in commit order and no reader passes over a position filled later."""

    @abstractmethod
    def insert_events(self, cursor: Cursor, rows: Sequence[tuple[str, int, str, bytes]]) -> list[int] | None:
        """Append `(name, version, topic, payload)` rows to eventsourcing's table, under `lock_log`;
        their positions, when the insert tells them."""

    @abstractmethod
    def quick(self) -> Transaction:
        """A cursor for one statement, outside an explicit transaction (a round trip for BEGIN and one
        for COMMIT saved on PostgreSQL)."""

    @abstractmethod
    def snapshot(self) -> Transaction:
        """A cursor that sees one consistent state of the whole database."""

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Around a long run of large write transactions (ingest, rebuild): settings for throughput."""
        yield

    def connect(self) -> None:
        """Open the connection now, so that a database that cannot be reached fails here."""
        with self.quick():
            pass

    def lost(self) -> bool:
        """Whether the connection died under the last statement (the next one makes a new one)."""
        return False

    def reclaim(self) -> None:  # noqa: B027 - a no-op where the database reclaims space itself
        """Give back the space of dropped tables (after a rebuild), where the database does not itself."""

    def refresh_statistics(self) -> None:  # noqa: B027 - a no-op where plans need no statistics
        """Before and during long runs over the log (ingest, rebuild, export): give the planner
        statistics of the log when those it has are far behind its size. Cheap to ask often."""

    @abstractmethod
    def close(self) -> None: ...


class Backend(ABC):
    """One kind of database, reached through one URL."""

    url: str
    # Driver errors that can reach the ledger unwrapped by eventsourcing (see `errors.translated_errors`).
    unwrapped_errors: tuple[type[Exception], ...] = ()

    @abstractmethod
    def environment(self) -> dict[str, str]:
        """eventsourcing settings for this database."""

    @contextmanager
    def setting_up(self) -> Iterator[None]:
        """Held while the store's tables are made: processes opening one new store take turns."""
        yield

    def exists(self) -> bool:
        return True

    @abstractmethod
    def database(self) -> Database:
        """The ledger's connection, in the same database as the events."""

    @property
    @abstractmethod
    def redacted_url(self) -> str:
        """The URL as it may be shown: never with a password."""

    @property
    def secret(self) -> str:
        """What no message may show (a password), or ""."""
        return ""

    def _common(self) -> dict[str, str]:
        return {"ORIGINATOR_ID_TYPE": "text", **ENVIRONMENT_TOPICS}  # the operation name is the aggregate id
