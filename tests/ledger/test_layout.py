"""Stores written by an earlier layout of the views open, move to the current layout by rebuilding
their views from the log, and then read, list, audit and take writes as any store does.

Such stores: `stores/layout1.db` and `stores/layout2.db`, SQLite ledgers written by the code of
those layouts (see stores/README.md), and on each backend a store made now and turned back into
layout 2 by SQL.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger import Ledger
from ledger.projections.views import LAYOUT

from .test_audit import _sql

STORES = Path(__file__).parent / "stores"
KEPT = "projects/p/locations/l/operations/kept"


def _tracked(lg: Ledger) -> list[tuple[Any, ...]]:
    projections = lg.parts.db.dialect.table("ledger_projections")
    return _sql(lg, f"SELECT view, role, layout FROM {projections} ORDER BY view")


def _columns(lg: Ledger, table: str) -> set[str]:
    with lg.parts.db.read() as cursor:
        cursor.execute(f"SELECT * FROM {lg.parts.db.dialect.table(table)} WHERE 1 = 0")
        return {column[0] for column in cursor.description}


def _earlier_tables(lg: Ledger) -> set[str]:
    """Which of an earlier layout's tables and SQL views the store has."""
    d = lg.parts.db.dialect
    found = set()
    for table in ("ledger_versions", "ledger_versions_g1", "ledger_operations_g1"):
        if d.name == "sqlite":
            rows = _sql(lg, "SELECT name FROM sqlite_master WHERE name = ?", (table,))
        else:
            rows = [row for row in _sql(lg, "SELECT to_regclass(?)", (d.table(table),)) if row[0] is not None]
        found |= {table} if rows else set()
    return found


def _assert_current_layout(lg: Ledger) -> None:
    assert _tracked(lg) == [("operations", "current", LAYOUT)]
    operations = _columns(lg, "ledger_operations")
    assert {"body", "metadata", "changed_time"} <= operations and "response" not in operations
    assert _earlier_tables(lg) == set()  # the earlier layout's tables went, not left beside the new ones
    assert lg.view_lag() == {"operations": 0}


def _exercise(lg: Ledger, name: str) -> None:
    """Read, list, audit and write the migrated store; the audit stays clean after the write."""
    assert lg.audit()["findings"] == []
    op = lg.get(name)
    listed = lg.list(filter=f'name = "{name}"')["operations"]
    assert listed == [op]
    lg.create(f"{name}-after", metadata={"@type": "type.googleapis.com/acme.M", "step": 9})
    lg.succeed(f"{name}-after", response={"@type": "type.googleapis.com/acme.R", "ok": True})
    assert [o["name"] for o in lg.list(filter="metadata.step = 9")["operations"]] == [f"{name}-after"]
    assert [o["name"] for o in lg.list(filter="response.ok = true")["operations"]] == [f"{name}-after"]
    report = lg.audit()
    assert report["ok"] and report["findings"] == []


@pytest.mark.parametrize("layout", [1, 2])
def test_a_store_written_by_an_earlier_layout_is_rebuilt_and_keeps_working(
    layout: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ledger.db"
    shutil.copyfile(STORES / f"layout{layout}.db", path)
    with sqlite3.connect(path) as raw:
        bodies = dict(raw.execute("SELECT name, body FROM ledger_operations"))
        versions = {(n, v): b for n, v, b in raw.execute("SELECT name, version, body FROM ledger_versions")}
        intervals = raw.execute("SELECT COUNT(*) FROM ledger_versions WHERE valid_to_time IS NULL").fetchone()[0]
    assert len(bodies) == 13 and len(versions) == 52  # a deletion opens no interval

    with caplog.at_level(logging.WARNING, logger="ledger"), Ledger.open(f"sqlite:///{path}") as lg:
        assert "rebuilding the operations view(s)" in caplog.text
        _assert_current_layout(lg)
        assert {name: lg.get_json(name) for name in bodies} == bodies  # the same bytes as before
        # Every state the versions view kept comes back, byte for byte, folded from the log.
        assert {key: lg.get_json(key[0], as_of=key[1]) for key in versions} == versions
        assert orjson.loads(lg.list_json(filter="metadata.step = 2"))["operations"] == [orjson.loads(bodies[KEPT])]
        first = lg.list(page_size=5)
        rest = lg.list(page_size=5, page_token=first["nextPageToken"])
        assert len(first["operations"]) == len(rest["operations"]) == 5
        assert lg.list(as_of="2000-01-01T00:00:00Z") == {"operations": []}
        assert len(lg.list(as_of="2100-01-01T00:00:00Z", page_size=100)["operations"]) == intervals
        _exercise(lg, KEPT)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ledger"), Ledger.open(f"sqlite:///{path}", create=False) as lg:
        assert lg.get_json(KEPT) == bodies[KEPT]
    assert "rebuilding" not in caplog.text  # opened once migrated, a store is only read


def _back_to_layout_2(lg: Ledger) -> None:
    """Give the store what layout 2 had: a versions view (one row per state, with its body), an
    operations view without deleted operations or the time of their latest event."""
    d = lg.parts.db.dialect
    operations, versions = d.table("ledger_operations_g1"), d.table("ledger_versions_g1")
    _sql(lg, f"DROP VIEW {d.table('ledger_operations')}")
    _sql(lg, f"DELETE FROM {operations} WHERE state = 'DELETED'")
    _sql(lg, f"DROP INDEX {d.table('ledger_operations_g1_order')}")  # layout 3's carries changed_time
    _sql(lg, f"ALTER TABLE {operations} DROP COLUMN changed_time")
    _sql(lg, f'CREATE INDEX "ledger_operations_g1_order" ON {operations} (create_time DESC, name)')
    _sql(lg, f"CREATE TABLE {versions} (name {d.text} NOT NULL, version INTEGER NOT NULL, body {d.blob} NOT NULL)")
    _sql(lg, f"INSERT INTO {versions} SELECT name, version, body FROM {operations}")
    for name, table in (("operations", operations), ("versions", versions)):
        _sql(lg, f"DROP VIEW IF EXISTS {d.table(f'ledger_{name}')}")
        _sql(lg, f"CREATE VIEW {d.table(f'ledger_{name}')} AS SELECT * FROM {table}")
    projections = d.table("ledger_projections")
    _sql(lg, f"UPDATE {projections} SET layout = 2")
    _sql(
        lg,
        f"INSERT INTO {projections} (view, generation, role, position, layout) "
        f"SELECT 'versions', 1, role, position, 2 FROM {projections} WHERE view = 'operations'",
    )


def test_a_store_turned_back_into_layout_2_is_rebuilt_on_each_backend(ledger_url: str) -> None:
    name = "projects/p/locations/l/operations/old"
    with Ledger.open(ledger_url) as lg:
        lg.create(name, metadata={"@type": "type.googleapis.com/acme.M", "step": 1})
        lg.progress(name, metadata_patch={"step": 2})
        lg.create(f"{name}-failed")
        lg.fail(f"{name}-failed", code=5, message="gone")
        lg.create(f"{name}-deleted")
        lg.delete(f"{name}-deleted")
        before = {n: lg.get_json(n) for n in (name, f"{name}-failed")}
        first = lg.get_json(name, as_of=1)
        _back_to_layout_2(lg)
        assert _earlier_tables(lg) == {"ledger_versions", "ledger_versions_g1", "ledger_operations_g1"}
    with Ledger.open(ledger_url) as lg:
        _assert_current_layout(lg)
        assert {n: lg.get_json(n) for n in before} == before
        assert lg.get_json(name, as_of=1) == first
        assert lg.list(as_of="2100-01-01T00:00:00Z", filter=f'name = "{name}-deleted"') == {"operations": []}
        assert [o["name"] for o in lg.list(filter="metadata.step = 2")["operations"]] == [name]
        assert [o["name"] for o in lg.list(filter="error.code = 5")["operations"]] == [f"{name}-failed"]
        _exercise(lg, name)
