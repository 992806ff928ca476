"""Database URLs: `sqlite:///relative.db`, `sqlite:////absolute.db`, `postgresql://user:pass@host:port/db`
(also `postgres://`; `?host=/socket/dir`; `?schema=NAME`)."""

from __future__ import annotations

import getpass
import os
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from ..domain.errors import invalid
from .base import Backend

if TYPE_CHECKING:
    from .postgres import PostgresSettings

DEFAULT_URL = "sqlite:///ledger.db"
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}", re.ASCII)
_SOCKET_DIRS = ("/var/run/postgresql", "/run/postgresql", "/tmp")  # noqa: S108 - libpq's defaults


def open_backend(url: str) -> Backend:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, `postgresql://user:pass@host:port/db`
    (also `postgres://`; `?host=/socket/dir`; `?schema=NAME`)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise invalid("database URL", "expected sqlite:///PATH or postgresql://USER@HOST/DB")
    scheme = scheme.lower()
    if scheme == "sqlite":
        from .sqlite import SQLiteBackend

        if not rest.startswith("/") or len(rest) < 2 or ":memory:" in rest:
            raise invalid("database URL", "a SQLite URL names a file: sqlite:///relative.db or sqlite:////absolute.db")
        return SQLiteBackend(url, rest[1:])
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresBackend

        return PostgresBackend(url, _postgres_settings(url))
    raise invalid("database URL", f"unsupported scheme {scheme!r}; use sqlite or postgresql")


def _postgres_settings(url: str) -> PostgresSettings:
    from .postgres import PostgresSettings

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
