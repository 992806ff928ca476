"""SQLite, whole: its dialect, the ledger's connection to a file, and the backend of a sqlite:/// URL."""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import OperationalError

from .base import Backend, Cursor, Database, Dialect, Transaction
from .errors import driver_errors


class SQLiteDialect(Dialect):
    name = "sqlite"
    blob = "BLOB"
    json = "TEXT"
    text = "TEXT"
    # JSON functions take text: a BLOB argument is an error (or, from SQLite 3.45, binary JSONB).
    body_json = "CAST(body AS TEXT)"

    def json_path(self, segments: tuple[str, ...]) -> Any:
        return "$" + "".join(f'."{segment}"' for segment in segments)

    def json_type_is(self, column: str, kinds: tuple[str, ...]) -> str:
        sqlite_kinds = {"string": ("'text'",), "number": ("'integer'", "'real'"), "boolean": ("'true'", "'false'")}
        listed = ", ".join(k for kind in kinds for k in sqlite_kinds[kind])
        return f"json_type({column}, ?) IN ({listed})"

    def json_text(self, column: str) -> str:
        return f"json_extract({column}, ?)"

    def json_number_compare(self, column: str, comparator: str) -> str:
        return f"(json_type({column}, ?) IN ('integer', 'real') AND json_extract({column}, ?) {comparator} ?)"

    def json_boolean_compare(self, column: str, comparator: str) -> str:
        return f"(json_type({column}, ?) IN ('true', 'false') AND json_extract({column}, ?) {comparator} ?)"

    def json_boolean(self, value: bool) -> Any:
        return 1 if value else 0  # json_extract gives JSON true and false as 1 and 0

    def json_exists(self, column: str) -> str:
        return f"json_type({column}, ?) IS NOT NULL"

    def wildcard(self, expression: str) -> str:
        # `+` keeps SQLite from reading the pattern's literal prefix as a range of an index: a prefix
        # such as `projects/` spans nearly every name, and once ANALYZE had run SQLite walked the name
        # index over it and sorted every match (51 ms a page at 100k operations, against 1.5 ms
        # walking the page order).
        return f"+{expression} GLOB ?"

    def wildcard_pattern(self, value: str) -> str:
        # GLOB's own specials other than * are matched literally by putting them in a class.
        return value.replace("[", "[[]").replace("?", "[?]")

    def contains(self, expression: str) -> str:
        return f"instr({expression}, ?) > 0"

    def in_list(self, column: str, count: int) -> tuple[str, bool]:
        return f"{column} IN ({', '.join('?' * count)})", False

    def shard_of(self, column: str, count: int) -> str:
        return f"ledger_shard({column}, {int(count)})"

    def integrity_problems(self, cursor: Cursor) -> list[str]:
        """PRAGMA quick_check: every page and record well formed (not index contents against tables,
        which integrity_check adds at several times the cost)."""
        cursor.execute("PRAGMA quick_check(20)")
        return [str(row[0]) for row in cursor.fetchall() if row[0] != "ok"]

    def table_exists(self, cursor: Cursor, name: str) -> bool:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return cursor.fetchone() is not None

    def column_exists(self, cursor: Cursor, table: str, column: str) -> bool:
        cursor.execute("SELECT 1 FROM pragma_table_info(?) WHERE name = ?", (table, column))
        return cursor.fetchone() is not None


class SQLiteDatabase(Database):
    dialect = SQLiteDialect()
    position_column = "rowid"
    conflict_error = sqlite3.IntegrityError

    def __init__(self, path: str, events_table: str, read_only: bool = False) -> None:
        super().__init__()
        self.events_table = f'"{events_table}"'
        self.events_table_name = events_table
        self.read_only = read_only
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._read_only_uri() if self.read_only else self._path,
                isolation_level=None,
                check_same_thread=False,
                timeout=10,
                uri=self.read_only,
            )
            # Views are derived and commit with their log position, so a commit lost to a power cut
            # is projected again: NORMAL (still crash-safe in WAL mode) instead of an fsync a commit.
            # Freed pages of dropped generations need no zeroing either (Debian builds default it on).
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA secure_delete = OFF")
            conn.execute(f"PRAGMA journal_size_limit = {64 * 1024 * 1024}")  # the WAL after `bulk`
            conn.create_function("ledger_shard", 2, _shard, deterministic=True)
            self._conn = conn
        return self._conn

    def _read_only_uri(self) -> str:
        """A file the ledger may not write (mode 0444, a read-only mount or directory). In WAL mode
        SQLite needs the -shm file beside it even to read; where it cannot make one, and no WAL is
        there to read, the file is opened as immutable: nobody can be writing it."""
        path = urllib.parse.quote(os.path.abspath(self._path))
        directory = os.path.dirname(os.path.abspath(self._path))
        if not os.access(directory, os.W_OK) and not os.path.exists(self._path + "-wal"):
            return f"file:{path}?mode=ro&immutable=1"
        return f"file:{path}?mode=ro"

    @contextmanager
    def _transaction(self, begin: str, synchronous: str = "NORMAL") -> Iterator[sqlite3.Cursor]:
        with self._lock, driver_errors(sqlite3):
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
                    if connection.in_transaction:  # SQLite rolls back itself on some errors (disk full)
                        connection.execute("ROLLBACK")
                    raise
                # Close first: a statement not read to its end keeps its snapshot after COMMIT, and
                # later reads on this connection would not see newer writes.
                cursor.close()
                connection.execute("COMMIT")
            finally:
                if synchronous != "NORMAL":
                    connection.execute("PRAGMA synchronous = NORMAL")

    def write(self) -> Transaction:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads first and writes
        # later fails at once, without waiting, when another writer got in between.
        return self._transaction("BEGIN IMMEDIATE")

    def recording(self, count: int) -> Transaction:
        return self._transaction("BEGIN IMMEDIATE", "FULL")  # an fsync a commit, as eventsourcing's

    def read(self) -> Transaction:
        return self._transaction("BEGIN")

    def lock_log(self, cursor: Cursor) -> None:
        """`write` began IMMEDIATE: it holds the database's one writer lock already."""

    def insert_events(self, cursor: Cursor, rows: Sequence[tuple[str, int, str, bytes]]) -> list[int] | None:
        columns = "originator_id, originator_version, topic, state"
        cursor.executemany(f"INSERT INTO {self.events_table} ({columns}) VALUES (?, ?, ?, ?)", rows)
        return None

    def snapshot(self) -> Transaction:
        return self._transaction("BEGIN")  # in WAL mode a read transaction is a snapshot

    @contextmanager
    def quick(self) -> Iterator[sqlite3.Cursor]:
        with self._lock, driver_errors(sqlite3):
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
        # took 41 s with 40,000 pages a checkpoint against 52 s with SQLite's 1,000. But the WAL then
        # grew to 160 MiB: 16,000 pages (64 MiB, the journal_size_limit) ingested 120k simulated
        # events in 10.9 s with a 73 MiB WAL against 11.8-14.3 s and 171 MiB with 40,000 (2 cores,
        # 2026-12-05). Every read looks through the WAL, and a long one slows reads, so it is folded
        # back at the end.
        with self.quick() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint = 16000")
        try:
            yield
        finally:
            with self.quick() as cursor:
                cursor.execute("PRAGMA wal_autocheckpoint = 1000")
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def reclaim(self) -> None:
        """VACUUM: a rebuild drops a whole generation of the views, which otherwise stays in the file
        as free pages (about half of it). It rewrites the file once, holding the writer lock."""
        with self.quick() as cursor:
            cursor.execute("VACUUM")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class SQLiteBackend(Backend):
    unwrapped_errors = (sqlite3.Error,)

    def __init__(self, url: str, path: str) -> None:
        self.url, self.path = url, path

    @property
    def redacted_url(self) -> str:
        return self.url

    def environment(self) -> dict[str, str]:
        return {
            **self._common(),
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": self.path,
            "SQLITE_LOCK_TIMEOUT": "10",
        }

    def exists(self) -> bool:
        return os.path.exists(self.path)

    @contextmanager
    def setting_up(self) -> Iterator[None]:
        """Put the file in WAL mode before eventsourcing opens it: switching takes a lock that the
        busy timeout does not wait for, so processes opening one new file at once would fail."""
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = sqlite3.connect(self.path, timeout=10)
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                finally:
                    conn.close()
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise OperationalError(e) from e
                time.sleep(0.05)
        yield

    def database(self) -> Database:
        return SQLiteDatabase(self.path, "stored_events", read_only=self.read_only())

    def read_only(self) -> bool:
        """An existing file the ledger may not write, or in a directory where it cannot make the
        journal: opened to read only, for audit, verify and reads of a copy kept out of reach."""
        if not os.path.exists(self.path):
            return False
        directory = os.path.dirname(os.path.abspath(self.path))
        return not os.access(self.path, os.W_OK) or not os.access(directory, os.W_OK)


def _shard(name: object, count: int) -> int:
    """`ledger_shard(text, count)`: SQLite has no hash of its own."""
    return zlib.crc32(str(name).encode("utf-8", "surrogatepass")) % count
