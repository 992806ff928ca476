"""Shared fixtures: every contract test runs once per backend.

PostgreSQL comes from LEDGER_TEST_PG_DSN: unset, its tests skip with a reason; set but unreachable,
the run stops at once. Each PostgreSQL test gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import Ledger
from ledger.storage.postgres import PostgresBackend
from ledger.storage.urls import open_backend

PG_DSN = os.environ.get("LEDGER_TEST_PG_DSN", "")


def pytest_sessionstart(session: pytest.Session) -> None:
    if not PG_DSN:
        return
    backend = open_backend(PG_DSN)
    assert isinstance(backend, PostgresBackend)
    try:
        backend.connect().close()
    except Exception as e:
        pytest.exit(f"LEDGER_TEST_PG_DSN is set but {backend.redacted_url} is unreachable: {e}", returncode=3)


def with_schema(dsn: str, schema: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"


def drop_schema(dsn: str, schema: str) -> None:
    backend = open_backend(dsn)
    assert isinstance(backend, PostgresBackend)
    with backend.connect() as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty ledger on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
        return
    if not PG_DSN:
        pytest.skip("LEDGER_TEST_PG_DSN is not set: PostgreSQL tests need a live database")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield with_schema(PG_DSN, schema)
    drop_schema(PG_DSN, schema)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger.open(ledger_url) as lg:
        yield lg


def log_length(lg: Ledger) -> int:
    """How many events the whole log holds: proof that a refused command wrote nothing."""
    return lg.parts.app.recorder.max_notification_id() or 0
