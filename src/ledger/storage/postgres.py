"""PostgreSQL, whole: its dialect, the ledger's connection (psycopg 3), and the backend of a
postgresql:// URL. psycopg is imported where it is used: a SQLite ledger never loads it."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from eventsourcing.persistence import OperationalError, PersistenceError

from .base import APPLICATION_NAME, Backend, Cursor, Database, Dialect, Rows, Transaction, replacing
from .errors import driver_errors

_log = logging.getLogger("ledger")
_STATISTICS_AFTER = 1_000  # events written before refresh_statistics looks at the log again
_COPY_FROM = 64  # rows an upsert copies in rather than inserts one by one


class PostgresDialect(Dialect):
    name = "postgresql"
    blob = "BYTEA"
    json = "JSONB"
    json_placeholder = "?::jsonb"
    body_json = "convert_from(body, 'UTF8')::jsonb"
    text = 'TEXT COLLATE "C"'

    for_update = " FOR UPDATE"

    def __init__(self, schema: str) -> None:
        self.schema = schema or "public"

    def serialize_writers(self, cursor: Cursor) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ledger-views:{self.schema}",))

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def table(self, name: str) -> str:
        return f'"{self.schema}"."{name}"'

    def upsert(
        self, cursor: Cursor, table: str, columns: Sequence[str], placeholders: str, key: str, rows: Rows
    ) -> None:
        """Many rows are copied into a temporary table of the same columns (COPY: one stream, no
        statement a row) and upserted from there in one statement. A rebuild's writer spent 6.5 to
        7.2 s writing 100k operations' rows one INSERT each, and 5.1 to 5.8 s so (2 cores, 2026-12-05)."""
        if len(rows) < _COPY_FROM:
            super().upsert(cursor, table, columns, placeholders, key, rows)
            return
        listed = ", ".join(columns)
        incoming = '"' + table.replace('"', "").replace(".", "_") + '_incoming"'
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {incoming} (LIKE {table}) ON COMMIT DELETE ROWS")
        with cursor.copy(f"COPY {incoming} ({listed}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {incoming} {replacing(columns, key)}")
        cursor.execute(f"DELETE FROM {incoming}")  # for a second upsert in the same transaction

    def integrity_problems(self, cursor: Cursor) -> list[str]:
        """amcheck's `bt_index_check` on every btree index of the ledger's schema, where the extension
        is installed (`CREATE EXTENSION amcheck`, by an administrator: audit itself writes nothing)."""
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'")
        if cursor.fetchone() is None:
            return []
        cursor.execute(
            "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE a.amname = 'btree' AND n.nspname = %s "
            "AND c.relname LIKE 'ledger%%'",
            (self.schema,),
        )
        problems = []
        for (index,) in cursor.fetchall():
            try:
                cursor.execute("SAVEPOINT amcheck")
                cursor.execute("SELECT bt_index_check(%s::regclass)", (index,))
                cursor.execute("RELEASE SAVEPOINT amcheck")
            except Exception as e:  # the driver's error for this index: a finding, not the audit's end
                cursor.execute("ROLLBACK TO SAVEPOINT amcheck")
                problems.append(f"index {index}: {str(e).strip()}")
        return problems

    def table_exists(self, cursor: Cursor, name: str) -> bool:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (self.table(name),))
        return bool(cursor.fetchone()[0])

    def column_exists(self, cursor: Cursor, table: str, column: str) -> bool:
        cursor.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s AND column_name = %s",
            (self.schema, table, column),
        )
        return cursor.fetchone() is not None

    def json_path(self, segments: tuple[str, ...]) -> Any:
        return list(segments)

    def json_type_is(self, column: str, kinds: tuple[str, ...]) -> str:
        listed = ", ".join(f"'{kind}'" for kind in kinds)
        return f"jsonb_typeof({column} #> ?) IN ({listed})"

    def json_text(self, column: str) -> str:
        return f'({column} #>> ?) COLLATE "C"'

    def json_number_compare(self, column: str, comparator: str) -> str:
        # CASE, not AND: PostgreSQL may evaluate either side of AND first, and the cast must not
        # see a non-number.
        return (
            f"CASE WHEN jsonb_typeof({column} #> ?) = 'number' "
            f"THEN ({column} #>> ?)::numeric {comparator} ? ELSE FALSE END"
        )

    def json_boolean_compare(self, column: str, comparator: str) -> str:
        return f"(jsonb_typeof({column} #> ?) = 'boolean' AND ({column} #>> ?) {comparator} ?)"

    def json_boolean(self, value: bool) -> Any:
        return "true" if value else "false"

    def json_exists(self, column: str) -> str:
        return f"({column} #> ?) IS NOT NULL"

    def wildcard(self, expression: str) -> str:
        return f"{expression} LIKE ? ESCAPE '\\'"

    def wildcard_pattern(self, value: str) -> str:
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return escaped.replace("*", "%")

    def contains(self, expression: str) -> str:
        return f"strpos({expression}, ?) > 0"

    def in_list(self, column: str, count: int) -> tuple[str, bool]:
        return f"{column} = ANY(?)", True

    def shard_of(self, column: str, count: int) -> str:
        return f"abs(mod(hashtext({column}), {int(count)}))"


class PostgresDatabase(Database):
    position_column = "notification_id"
    COPY_FROM = 64  # events: more go in by COPY, fewer by an INSERT that rides the pipeline

    def __init__(self, connect: Any, schema: str, events_table: str) -> None:
        import psycopg  # here, not at the top: a SQLite ledger never loads it

        super().__init__()
        self._driver = psycopg
        self.dialect = dialect = PostgresDialect(schema)
        self.schema = dialect.schema
        self.events_table = self.dialect.table(events_table)
        self.events_table_name = events_table
        self.events_channel = f'"{events_table}"'  # eventsourcing's NOTIFY channel for new events
        self.conflict_error = psycopg.errors.UniqueViolation
        self._connect = connect
        self._conn: Any = None
        self._statistics_checked = False  # whether refresh_statistics has looked, in this process
        self._written_since_check = 0  # events this connection inserted since it last looked

    def lost(self) -> bool:
        return self._conn is not None and bool(self._conn.closed or self._conn.broken)

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
            self._conn.autocommit = True
        return self._conn

    @contextmanager
    def _transaction(self, isolation: str = "", pipelined: bool = False) -> Iterator[Cursor]:
        with self._lock, driver_errors(self._driver):
            conn = self._connection()
            with conn.pipeline() if pipelined else nullcontext(), conn.transaction(), conn.cursor() as cursor:
                if isolation:
                    cursor.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
                yield cursor

    def write(self) -> Transaction:
        return self._transaction()

    def recording(self, count: int) -> Transaction:
        # Pipelined, a few events cost three round trips (lock, insert, views and commit) instead of
        # one a statement. COPY, faster for many, cannot run in a pipeline.
        return self._transaction(pipelined=count < self.COPY_FROM)

    def read(self) -> Transaction:
        return self._transaction()

    def lock_log(self, cursor: Cursor) -> None:
        # As eventsourcing's PostgreSQL recorder does, and with its notification for subscribers.
        cursor.execute(f"LOCK TABLE {self.events_table} IN EXCLUSIVE MODE")
        cursor.execute(f"NOTIFY {self.events_channel}")

    def insert_events(self, cursor: Cursor, rows: Sequence[tuple[str, int, str, bytes]]) -> list[int] | None:
        columns = "originator_id, originator_version, topic, state"
        pg_cursor: Any = cursor  # psycopg's own: COPY, and one result set for each row inserted
        self._written_since_check += len(rows)
        if len(rows) >= self.COPY_FROM:
            with pg_cursor.copy(f"COPY {self.events_table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return None
        pg_cursor.executemany(
            f"INSERT INTO {self.events_table} ({columns}) VALUES (%s, %s, %s, %s) RETURNING notification_id",
            rows,
            returning=True,
        )
        positions = []
        while True:
            positions.append(int(pg_cursor.fetchone()[0]))
            if not pg_cursor.nextset():
                return positions

    def snapshot(self) -> Transaction:
        return self._transaction("REPEATABLE READ, READ ONLY")

    @contextmanager
    def quick(self) -> Iterator[Cursor]:
        with self._lock, driver_errors(self._driver), self._connection().cursor() as cursor:
            yield cursor  # autocommit: the statement is its own transaction

    def refresh_statistics(self) -> None:
        """ANALYZE the log when PostgreSQL has never measured it or it has more than doubled since.
        Autovacuum does this where it runs; where it does not, a list of 500 names (ingest, folding
        the past) was planned as a scan of the whole log, over 5 s a statement at 4M events, where
        the key finds them in under 1 ms. ANALYZE samples: 0.3 s at 4M events.

        It looks once in a process, then again only once this connection has written a batch of
        events since, so that callers may ask as often as they write (an ingest asks every batch)."""
        if self.read_only or (self._statistics_checked and self._written_since_check < _STATISTICS_AFTER):
            return
        self._statistics_checked, self._written_since_check = True, 0
        try:
            with self.quick() as cursor:
                cursor.execute(
                    "SELECT c.reltuples, (SELECT MAX(notification_id) FROM "
                    f"{self.events_table}) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = %s",
                    (self.schema, self.events_table_name),
                )
                row = cursor.fetchone()
                if row is None:
                    return
                measured, end = float(row[0]), int(row[1] or 0)
                if end > 2 * max(measured, 0) + 10_000:
                    cursor.execute(f"ANALYZE {self.events_table}")
        except PersistenceError as e:  # not the table's owner, say: plans stay as they were
            _log.warning("ledger: could not ANALYZE the event log: %s", e)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


@dataclass(frozen=True)
class PostgresSettings:
    user: str
    password: str
    host: str
    port: int
    dbname: str
    schema: str


class PostgresBackend(Backend):
    def __init__(self, url: str, settings: PostgresSettings) -> None:
        self.url, self.settings = url, settings

    @property
    def redacted_url(self) -> str:
        s = self.settings
        auth = quote(s.user) + (":***" if s.password else "")
        socket = s.host.startswith("/")
        params = ([f"host={s.host}"] if socket else []) + ([f"schema={s.schema}"] if s.schema else [])
        query = "?" + "&".join(params) if params else ""
        return f"postgresql://{auth}@{'' if socket else s.host}:{s.port}/{s.dbname}{query}"

    @property
    def secret(self) -> str:
        return self.settings.password

    def environment(self) -> dict[str, str]:
        s = self.settings
        env = {
            **self._common(),
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": s.dbname,
            "POSTGRES_HOST": s.host,
            "POSTGRES_PORT": str(s.port),
            "POSTGRES_USER": s.user,
            "POSTGRES_PASSWORD": s.password,
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_POOL_SIZE": "2",
            "POSTGRES_MAX_OVERFLOW": "8",
        }
        if s.schema:
            env["POSTGRES_SCHEMA"] = s.schema
        return env

    def database(self) -> Database:
        return PostgresDatabase(self.connect, self.settings.schema, f"{APPLICATION_NAME}_events")

    def connect(self) -> Any:
        import psycopg

        s = self.settings
        return psycopg.connect(
            host=s.host, port=s.port, user=s.user, password=s.password or None, dbname=s.dbname, connect_timeout=5
        )

    @contextmanager
    def setting_up(self) -> Iterator[None]:
        """Connect once up front, so a refused or mistyped server fails at once with libpq's reason,
        and hold a session lock while eventsourcing creates its table and function: two processes
        creating them at the same moment would otherwise collide ("tuple concurrently updated")."""
        import psycopg
        from psycopg import sql

        try:
            conn = self.connect()
        except psycopg.Error as e:
            raise OperationalError(str(e)) from e
        with conn:
            key = f"ledger-setup:{self.settings.dbname}:{self.settings.schema}"
            try:
                conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
                if self.settings.schema:
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.settings.schema)))
                conn.commit()
            except psycopg.Error as e:
                raise OperationalError(str(e)) from e
            yield  # the session lock is released when the connection closes
