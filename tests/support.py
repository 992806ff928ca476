"""What several suites share: the PostgreSQL test database and a ledger URL on either backend.

PostgreSQL comes from LEDGER_TEST_PG_DSN: unset, its tests skip with a reason (conftest.py stops the
run at once when it is set but unreachable). Each PostgreSQL ledger gets a schema of its own, dropped
afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ledger import Ledger
from ledger.storage.postgres import PostgresBackend
from ledger.storage.urls import open_backend

PG_DSN = os.environ.get("LEDGER_TEST_PG_DSN", "")
NO_POSTGRES = "LEDGER_TEST_PG_DSN is not set: PostgreSQL tests need a live database"
BACKENDS = ("sqlite", "postgresql")
needs_postgres = pytest.mark.skipif(not PG_DSN, reason=NO_POSTGRES)


def with_schema(dsn: str, schema: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"


def drop_schema(dsn: str, schema: str) -> None:
    backend = open_backend(dsn)
    assert isinstance(backend, PostgresBackend)
    with backend.connect() as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def backend_url(backend: str, directory: Path, prefix: str = "test") -> Iterator[str]:
    """A URL to an empty ledger: a SQLite file in `directory`, or a PostgreSQL schema of its own
    (the test skips when LEDGER_TEST_PG_DSN is unset), dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory}/ledger.db"
        return
    if not PG_DSN:
        pytest.skip(NO_POSTGRES)
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield with_schema(PG_DSN, schema)
    finally:
        drop_schema(PG_DSN, schema)


def log_length(lg: Ledger) -> int:
    """How many events the whole log holds: proof that a refused command wrote nothing."""
    return lg.parts.app.recorder.max_notification_id() or 0
