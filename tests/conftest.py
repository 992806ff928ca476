"""The one backend fixture: every test that takes `ledger_url` or `ledger` runs once per backend.

The suites mirror the source: unit/ (no database), storage/ (the storage interfaces' contract, on
both backends), then ledger/ (the Python API's behaviour), cli/ and server/. See support.py for the
PostgreSQL test database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import Ledger
from ledger.storage.postgres import PostgresBackend
from ledger.storage.urls import open_backend

from .support import BACKENDS, PG_DSN, backend_url


def pytest_sessionstart(session: pytest.Session) -> None:
    if not PG_DSN:
        return
    backend = open_backend(PG_DSN)
    assert isinstance(backend, PostgresBackend)
    try:
        backend.connect().close()
    except Exception as e:
        pytest.exit(f"LEDGER_TEST_PG_DSN is set but {backend.redacted_url} is unreachable: {e}", returncode=3)


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty ledger on each backend."""
    with backend_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger.open(ledger_url) as lg:
        yield lg
