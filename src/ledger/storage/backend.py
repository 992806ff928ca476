"""Where events live: database URLs, the orjson transcoder and event mapper, and the two backends.

`Backend` is the interface; `SQLiteBackend` and `PostgresBackend` turn a URL into eventsourcing
settings and answer the few reads eventsourcing has no call for (an operation's events with their
global positions).
"""

from __future__ import annotations

import getpass
import os
import re
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import orjson
from eventsourcing.persistence import (
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import register_topic

from ..domain.errors import Code, LedgerError, invalid
from ..domain.operation import EVENTS_BY_TOPIC, OperationEvent, event_from_json
from .database import PostgresViewDatabase, SQLiteViewDatabase, ViewDatabase

DEFAULT_URL = "sqlite:///ledger.db"
APPLICATION_NAME = "ledger"  # eventsourcing names the PostgreSQL tables after it: ledger_events
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}", re.ASCII)
_SOCKET_DIRS = ("/var/run/postgresql", "/run/postgresql", "/tmp")  # noqa: S108 - libpq's defaults


class OrjsonTranscoder(Transcoder):
    """Event payloads are plain JSON (the SPEC event JSON), so orjson alone encodes them."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class EventMapper(Mapper[str]):
    """Stores each event as its pinned topic and its event JSON less type, name and version.

    Those three live in the row itself (topic, originator_id, originator_version), so a payload can
    never disagree with the row that holds it without the hash chain noticing.
    """

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event: OperationEvent = domain_event
        body = event.body()
        payload = {k: v for k, v in body.items() if k not in ("type", "name", "version")}
        payload["hash"] = event.hash
        return StoredEvent(event.name, event.originator_version, event.TOPIC, self.transcoder.encode(payload))

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return decode_event(stored_event, self.transcoder)


# The topics these classes had before storage/ existed, for any environment that still names them.
register_topic("ledger.store:OrjsonTranscoder", OrjsonTranscoder)
register_topic("ledger.store:EventMapper", EventMapper)


def payload_bytes(state: object) -> bytes:
    """A stored payload as bytes, however the row holds it: a payload edited by hand in SQLite's
    shell is TEXT, and PostgreSQL may hand back a memoryview."""
    if isinstance(state, str):
        return state.encode("utf-8", errors="surrogateescape")
    if isinstance(state, (bytes, bytearray, memoryview)):
        return bytes(state)
    return repr(state).encode()


def decode_event(stored: StoredEvent, transcoder: Transcoder) -> OperationEvent:
    name, version = str(stored.originator_id), stored.originator_version
    try:
        event_type = EVENTS_BY_TOPIC[stored.topic]
        return event_from_json(name, version, event_type, transcoder.decode(stored.state))
    except Exception as e:  # whatever is wrong with stored bytes, it is the same finding
        msg = f"stored event {name!r} version {version} (topic {stored.topic!r}) cannot be decoded: {e}"
        raise MapperDeserialisationError(msg) from e


def decode_stored(name: str, version: int, topic: str, state: object, transcoder: Transcoder) -> OperationEvent:
    """The event a log row's columns hold, however the row holds its payload."""
    return decode_event(StoredEvent(name, version, topic, payload_bytes(state)), transcoder)


class Backend(ABC):
    """One kind of database, reached through one URL."""

    url: str

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
    def view_database(self) -> ViewDatabase:
        """A connection for the views, in the same database as the events."""

    @property
    @abstractmethod
    def redacted_url(self) -> str:
        """The URL as it may be shown: never with a password."""

    def _common(self) -> dict[str, str]:
        return {
            "ORIGINATOR_ID_TYPE": "text",  # the operation name is the aggregate id
            "TRANSCODER_TOPIC": f"{__name__}:OrjsonTranscoder",
            "MAPPER_TOPIC": f"{__name__}:EventMapper",
        }


class SQLiteBackend(Backend):
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
        from eventsourcing.persistence import OperationalError

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

    def view_database(self) -> ViewDatabase:
        return SQLiteViewDatabase(self.path, "stored_events")


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

    def view_database(self) -> ViewDatabase:
        return PostgresViewDatabase(self.connect, self.settings.schema, f"{APPLICATION_NAME}_events")

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
        from eventsourcing.persistence import OperationalError
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


def open_backend(url: str) -> Backend:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, `postgresql://user:pass@host:port/db`
    (also `postgres://`; `?host=/socket/dir`; `?schema=NAME`)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise invalid("database URL", "expected sqlite:///PATH or postgresql://USER@HOST/DB")
    scheme = scheme.lower()
    if scheme == "sqlite":
        if not rest.startswith("/") or len(rest) < 2 or ":memory:" in rest:
            raise invalid("database URL", "a SQLite URL names a file: sqlite:///relative.db or sqlite:////absolute.db")
        return SQLiteBackend(url, rest[1:])
    if scheme in ("postgresql", "postgres"):
        return PostgresBackend(url, _postgres_settings(url))
    raise invalid("database URL", f"unsupported scheme {scheme!r}; use sqlite or postgresql")


def _postgres_settings(url: str) -> PostgresSettings:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"host", "schema", "port", "user", "password", "dbname"}
    if unknown:
        raise invalid("database URL", f"unknown parameter(s) {', '.join(sorted(unknown))}")
    user = unquote(parts.username or "") or query.get("user") or getpass.getuser()
    try:
        port = int(query.get("port") or parts.port or 5432)
    except ValueError:
        raise invalid("database URL", "the port is not a number") from None
    schema = query.get("schema", "")
    if schema and not _SCHEMA_NAME.fullmatch(schema):
        raise invalid("database URL", f"schema {schema!r} is not a plain identifier (letters, digits, _; at most 63)")
    return PostgresSettings(
        user=user,
        password=unquote(parts.password or "") or query.get("password", ""),
        host=query.get("host") or parts.hostname or _default_socket_dir(),
        port=port,
        dbname=unquote(parts.path.lstrip("/")) or query.get("dbname") or user,
        schema=schema,
    )


def _default_socket_dir() -> str:
    """As libpq does: no host means the local socket."""
    return next((d for d in _SOCKET_DIRS if os.path.exists(os.path.join(d, ".s.PGSQL.5432"))), "localhost")


@contextmanager
def translated_errors(backend: Backend) -> Iterator[None]:
    """Storage failures as google.rpc codes; a password never appears in a message."""
    from eventsourcing.persistence import (
        IntegrityError,
        InterfaceError,
        OperationalError,
        PersistenceError,
        RecordConflictError,
    )

    try:
        yield
    except RecordConflictError as e:
        raise LedgerError(
            Code.ABORTED, f"another writer changed the operation first; retry ({_scrub(e, backend)})"
        ) from None
    except (OperationalError, InterfaceError) as e:
        if isinstance(e, IntegrityError):  # pragma: no cover - caught above as a conflict
            raise
        text = _scrub(e, backend)
        if "locked" in text or "busy" in text:
            raise LedgerError(Code.ABORTED, f"the store is busy with another writer; retry ({text})") from None
        raise LedgerError(Code.UNAVAILABLE, f"cannot reach {backend.redacted_url}: {text}") from None
    except PersistenceError as e:  # not a connection problem: the statement or the data was refused
        raise LedgerError(Code.INTERNAL, f"storage error at {backend.redacted_url}: {_scrub(e, backend)}") from None
    except MapperDeserialisationError as e:
        raise LedgerError(Code.DATA_LOSS, str(e)) from None
    except sqlite3.Error as e:  # raised by the driver where eventsourcing does not wrap it
        text = _scrub(e, backend)
        if "locked" in text or "busy" in text:
            raise LedgerError(Code.ABORTED, f"the store is busy with another writer; retry ({text})") from None
        raise LedgerError(Code.UNAVAILABLE, f"cannot use {backend.redacted_url}: {text}") from None


def _scrub(error: BaseException, backend: Backend) -> str:
    text = str(error).strip() or type(error).__name__
    if isinstance(backend, PostgresBackend) and backend.settings.password:
        text = text.replace(backend.settings.password, "***")
    return text
