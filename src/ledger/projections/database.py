"""Connections for the read side, one per ledger: exclusive write transactions and plain reads.

Driver errors leave as eventsourcing's persistence errors, so the application maps storage failures
to google.rpc codes in one place.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import IntegrityError, OperationalError, PersistenceError

from .dialects import Dialect, PostgresDialect, SQLiteDialect


class ViewDatabase(ABC):
    dialect: Dialect
    events_table: str
    position_column: str

    def __init__(self) -> None:
        self._lock = threading.RLock()

    @abstractmethod
    def write(self) -> Any:
        """A context manager giving a cursor inside a transaction that excludes other writers."""

    @abstractmethod
    def read(self) -> Any:
        """A context manager giving a cursor for reads."""

    @abstractmethod
    def quick(self) -> Any:
        """A context manager giving a cursor for one statement, outside an explicit transaction
        (a round trip for BEGIN and one for COMMIT saved on PostgreSQL)."""

    @abstractmethod
    def snapshot(self) -> Any:
        """A context manager giving a cursor that sees one consistent state of the whole database."""

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
            self._conn = conn
        return self._conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Cursor]:
        with self._lock, _driver_errors(sqlite3):
            connection = self._connection()
            cursor = connection.cursor()
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

    def write(self) -> Any:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads first and writes
        # later fails at once, without waiting, when another writer got in between.
        return self._transaction("BEGIN IMMEDIATE")

    def read(self) -> Any:
        return self._transaction("BEGIN")

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

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class PostgresViewDatabase(ViewDatabase):
    position_column = "notification_id"

    def __init__(self, connect: Any, schema: str, events_table: str) -> None:
        import psycopg  # here, not at the top: a SQLite ledger never loads it

        super().__init__()
        self._driver = psycopg
        self.dialect = PostgresDialect(schema)
        self.events_table = self.dialect.table(events_table)
        self._connect = connect
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
            self._conn.autocommit = True
        return self._conn

    @contextmanager
    def _transaction(self, isolation: str = "") -> Iterator[Any]:
        with self._lock, _driver_errors(self._driver):
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cursor:
                if isolation:
                    cursor.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
                yield cursor

    def write(self) -> Any:
        return self._transaction()

    def read(self) -> Any:
        return self._transaction()

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
