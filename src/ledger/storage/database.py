"""The ledger's own connection, one per ledger: exclusive write transactions (the views' catch-up,
and every recorded event with its projection) and plain reads.

Driver errors leave as eventsourcing's persistence errors, so the application maps storage failures
to google.rpc codes in one place.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from eventsourcing.persistence import IntegrityError, OperationalError, PersistenceError

from .dialects import Dialect, PostgresDialect, SQLiteDialect


class ViewDatabase(ABC):
    dialect: Dialect
    events_table: str
    position_column: str
    conflict_error: type[Exception]  # the driver's error for a unique key already taken

    def __init__(self) -> None:
        self._lock = threading.RLock()

    @abstractmethod
    def write(self) -> Any:
        """A context manager giving a cursor inside a transaction that excludes other writers."""

    @abstractmethod
    def recording(self, count: int) -> Any:
        """`write`, for a transaction that records `count` events: its commit survives a power cut
        (the views alone are derived, and may be projected again)."""

    @abstractmethod
    def read(self) -> Any:
        """A context manager giving a cursor for reads."""

    @abstractmethod
    def lock_log(self, cursor: Any) -> None:
        """Inside `write`: take the lock under which eventsourcing's recorders append events, so that
        positions are handed out in commit order and no reader passes over a position filled later."""

    @abstractmethod
    def insert_events(self, cursor: Any, rows: list[tuple[str, int, str, bytes]]) -> list[int] | None:
        """Append `(name, version, topic, payload)` rows to eventsourcing's table, under `lock_log`;
        their positions, when the insert tells them."""

    @abstractmethod
    def quick(self) -> Any:
        """A context manager giving a cursor for one statement, outside an explicit transaction
        (a round trip for BEGIN and one for COMMIT saved on PostgreSQL)."""

    @abstractmethod
    def snapshot(self) -> Any:
        """A context manager giving a cursor that sees one consistent state of the whole database."""

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

    @abstractmethod
    def close(self) -> None: ...


@contextmanager
def _driver_errors(driver: Any) -> Iterator[None]:
    """A DB-API driver's errors (sqlite3's, psycopg's) as eventsourcing's, so the application maps
    them to codes in one place."""
    try:
        yield
    except driver.IntegrityError as e:
        raise IntegrityError(e) from e
    except driver.OperationalError as e:
        raise OperationalError(e) from e
    except driver.Error as e:
        raise PersistenceError(e) from e


class SQLiteViewDatabase(ViewDatabase):
    dialect = SQLiteDialect()
    position_column = "rowid"
    conflict_error = sqlite3.IntegrityError

    def __init__(self, path: str, events_table: str) -> None:
        super().__init__()
        self.events_table = f'"{events_table}"'
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=10)
            # Views are derived and commit with their log position, so a commit lost to a power cut
            # is projected again: NORMAL (still crash-safe in WAL mode) instead of an fsync a commit.
            # Freed pages of dropped generations need no zeroing either (Debian builds default it on).
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA secure_delete = OFF")
            conn.execute(f"PRAGMA journal_size_limit = {64 * 1024 * 1024}")  # the WAL after `bulk`
            self._conn = conn
        return self._conn

    @contextmanager
    def _transaction(self, begin: str, synchronous: str = "NORMAL") -> Iterator[sqlite3.Cursor]:
        with self._lock, _driver_errors(sqlite3):
            connection = self._connection()
            if synchronous != "NORMAL":  # for this transaction only
                connection.execute(f"PRAGMA synchronous = {synchronous}")
            cursor = connection.cursor()
            try:
                cursor.execute(begin)
                try:
                    yield cursor
                except BaseException:
                    cursor.close()
                    connection.execute("ROLLBACK")
                    raise
                # Close first: a statement not read to its end keeps its snapshot after COMMIT, and
                # later reads on this connection would not see newer writes.
                cursor.close()
                connection.execute("COMMIT")
            finally:
                if synchronous != "NORMAL":
                    connection.execute("PRAGMA synchronous = NORMAL")

    def write(self) -> Any:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads first and writes
        # later fails at once, without waiting, when another writer got in between.
        return self._transaction("BEGIN IMMEDIATE")

    def recording(self, count: int) -> Any:
        return self._transaction("BEGIN IMMEDIATE", "FULL")  # an fsync a commit, as eventsourcing's

    def read(self) -> Any:
        return self._transaction("BEGIN")

    def lock_log(self, cursor: Any) -> None:
        """`write` began IMMEDIATE: it holds the database's one writer lock already."""

    def insert_events(self, cursor: Any, rows: list[tuple[str, int, str, bytes]]) -> list[int] | None:
        columns = "originator_id, originator_version, topic, state"
        cursor.executemany(f"INSERT INTO {self.events_table} ({columns}) VALUES (?, ?, ?, ?)", rows)
        return None

    def snapshot(self) -> Any:
        return self._transaction("BEGIN")  # in WAL mode a read transaction is a snapshot

    @contextmanager
    def quick(self) -> Iterator[sqlite3.Cursor]:
        with self._lock, _driver_errors(sqlite3):
            cursor = self._connection().cursor()
            try:
                yield cursor
            finally:
                cursor.close()

    def connect(self) -> None:
        """A file needs no reaching: whatever is wrong with it shows when it is first read."""

    @contextmanager
    def bulk(self) -> Iterator[None]:
        # A checkpoint copies the WAL into the database file and fsyncs it. Bulk writes land in
        # indexes keyed by operation name (the log's own, the views'), at random pages, so rarer,
        # larger checkpoints write a page that several batches changed once: ingesting 320k events
        # took 41 s with 40,000 pages a checkpoint against 52 s with SQLite's 1,000. Every read looks
        # through the WAL, though, and a long one slows reads, so it is folded back at the end.
        with self.quick() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint = 40000")
        try:
            yield
        finally:
            with self.quick() as cursor:
                cursor.execute("PRAGMA wal_autocheckpoint = 1000")
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class PostgresViewDatabase(ViewDatabase):
    position_column = "notification_id"
    COPY_FROM = 64  # events: more go in by COPY, fewer by an INSERT that rides the pipeline

    def __init__(self, connect: Any, schema: str, events_table: str) -> None:
        import psycopg  # here, not at the top: a SQLite ledger never loads it

        super().__init__()
        self._driver = psycopg
        self.dialect = PostgresDialect(schema)
        self.events_table = self.dialect.table(events_table)
        self.events_channel = f'"{events_table}"'  # eventsourcing's NOTIFY channel for new events
        self.conflict_error = psycopg.errors.UniqueViolation
        self._connect = connect
        self._conn: Any = None

    def lost(self) -> bool:
        return self._conn is not None and bool(self._conn.closed or self._conn.broken)

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
            self._conn.autocommit = True
        return self._conn

    @contextmanager
    def _transaction(self, isolation: str = "", pipelined: bool = False) -> Iterator[Any]:
        with self._lock, _driver_errors(self._driver):
            conn = self._connection()
            with conn.pipeline() if pipelined else nullcontext(), conn.transaction(), conn.cursor() as cursor:
                if isolation:
                    cursor.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
                yield cursor

    def write(self) -> Any:
        return self._transaction()

    def recording(self, count: int) -> Any:
        # Pipelined, a few events cost three round trips (lock, insert, views and commit) instead of
        # one a statement. COPY, faster for many, cannot run in a pipeline.
        return self._transaction(pipelined=count < self.COPY_FROM)

    def read(self) -> Any:
        return self._transaction()

    def lock_log(self, cursor: Any) -> None:
        # As eventsourcing's PostgreSQL recorder does, and with its notification for subscribers.
        cursor.execute(f"LOCK TABLE {self.events_table} IN EXCLUSIVE MODE")
        cursor.execute(f"NOTIFY {self.events_channel}")

    def insert_events(self, cursor: Any, rows: list[tuple[str, int, str, bytes]]) -> list[int] | None:
        columns = "originator_id, originator_version, topic, state"
        if len(rows) >= self.COPY_FROM:
            with cursor.copy(f"COPY {self.events_table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return None
        cursor.executemany(
            f"INSERT INTO {self.events_table} ({columns}) VALUES (%s, %s, %s, %s) RETURNING notification_id",
            rows,
            returning=True,
        )
        positions = []
        while True:
            positions.append(int(cursor.fetchone()[0]))
            if not cursor.nextset():
                return positions

    def snapshot(self) -> Any:
        return self._transaction("REPEATABLE READ, READ ONLY")

    @contextmanager
    def quick(self) -> Iterator[Any]:
        with self._lock, _driver_errors(self._driver), self._connection().cursor() as cursor:
            yield cursor  # autocommit: the statement is its own transaction

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
