"""What every benchmark shares: a fresh, empty store on either backend, and where a result came from."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ledger.storage.postgres import PostgresBackend
from ledger.storage.urls import open_backend


@contextmanager
def fresh_store(backend: str) -> Iterator[str]:
    """The URL of an empty ledger (a new SQLite file, or a new PostgreSQL schema), removed afterwards."""
    if backend == "sqlite":
        path = Path(tempfile.gettempdir()) / f"ledger-bench-{uuid.uuid4().hex[:8]}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    dsn = os.environ.get("LEDGER_BENCH_PG_DSN") or os.environ.get("LEDGER_TEST_PG_DSN")
    if not dsn:
        sys.exit("set LEDGER_BENCH_PG_DSN (or LEDGER_TEST_PG_DSN) to run the PostgreSQL benchmark")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    url = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
    try:
        yield url
    finally:
        pg = open_backend(url)
        assert isinstance(pg, PostgresBackend)
        with pg.connect() as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def provenance(benchmark: str, backend: str) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "backend": backend,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": " ".join(["python", *sys.argv]),
    }


def write_result(result: dict[str, Any], out: Path | None) -> None:
    """Print the result, and keep it at `out` when given (bench/report.py reads it from there)."""
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
