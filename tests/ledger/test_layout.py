"""Stores written by an earlier layout of the views open, move to the current layout by rebuilding
their views from the log, and then read, list, audit and take writes as any store does.

Two such stores: `stores/layout1.db`, a SQLite ledger written by the code before layout 2 (see
stores/README.md), and on each backend a store made now and turned back into layout 1 by SQL
(its metadata and response columns put back, the tracking table without its layout column).
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
from ledger.projections.views import LAYOUT, VIEWS

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


def _assert_current_layout(lg: Ledger) -> None:
    assert _tracked(lg) == [("operations", "current", LAYOUT), ("versions", "current", LAYOUT)]
    operations, versions = _columns(lg, "ledger_operations"), _columns(lg, "ledger_versions")
    assert {"body", "metadata"} <= operations and "response" not in operations
    assert "body" in versions and not {"metadata", "response"} & versions
    assert lg.view_lag() == {"operations": 0, "versions": 0}


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


def test_a_store_written_by_layout_1_is_rebuilt_and_keeps_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ledger.db"
    shutil.copyfile(STORES / "layout1.db", path)
    with sqlite3.connect(path) as raw:
        bodies = dict(raw.execute("SELECT name, body FROM ledger_operations"))
        versions = {(n, v): b for n, v, b in raw.execute("SELECT name, version, body FROM ledger_versions")}
        intervals = raw.execute("SELECT COUNT(*) FROM ledger_versions WHERE valid_to_time IS NULL").fetchone()[0]
    assert len(bodies) == 13 and len(versions) == 52  # a deletion opens no interval

    with caplog.at_level(logging.WARNING, logger="ledger"), Ledger.open(f"sqlite:///{path}") as lg:
        assert "rebuilding the operations, versions view(s)" in caplog.text
        _assert_current_layout(lg)
        assert {name: lg.get_json(name) for name in bodies} == bodies  # the same bytes as before
        assert {key: lg.get_json(key[0], as_of=key[1]) for key in versions} == versions
        assert orjson.loads(lg.list_json(filter="metadata.step = 2"))["operations"] == [orjson.loads(bodies[KEPT])]
        first = lg.list(page_size=5)
        rest = lg.list(page_size=5, page_token=first["nextPageToken"])
        assert len(first["operations"]) == len(rest["operations"]) == 5
        assert lg.list(as_of="2000-01-01T00:00:00Z") == {"operations": []}
        assert len(lg.list(as_of="2100-01-01T00:00:00Z", page_size=100)["operations"]) == intervals
        _exercise(lg, KEPT)
    with sqlite3.connect(path) as raw:  # the layout-1 tables are gone, not left beside the new ones
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not {"ledger_operations_g1", "ledger_versions_g1"} & tables

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ledger"), Ledger.open(f"sqlite:///{path}", create=False) as lg:
        assert lg.get_json(KEPT) == bodies[KEPT]
    assert "rebuilding" not in caplog.text  # opened once migrated, a store is only read


def _back_to_layout_1(lg: Ledger) -> None:
    """Give the views the columns layout 1 had (filled as it filled them) and forget the layout."""
    d = lg.parts.db.dialect
    for view in VIEWS.values():
        table = d.table(view.table(1))
        if view.name == "versions":  # the operations view keeps its metadata column
            _sql(lg, f"ALTER TABLE {table} ADD COLUMN metadata {d.json} NOT NULL DEFAULT '{{}}'")
        _sql(lg, f"ALTER TABLE {table} ADD COLUMN response {d.json}")
        if d.name == "sqlite":
            body = "json(CAST(body AS TEXT))"
            _sql(lg, f"UPDATE {table} SET metadata = COALESCE(json_extract({body}, '$.metadata'), '{{}}')")
            _sql(lg, f"UPDATE {table} SET response = json_extract({body}, '$.response')")
        else:
            body = "convert_from(body, 'UTF8')::jsonb"
            _sql(lg, f"UPDATE {table} SET metadata = COALESCE({body} -> 'metadata', '{{}}'::jsonb)")
            _sql(lg, f"UPDATE {table} SET response = {body} -> 'response'")
        _sql(lg, f'CREATE INDEX "{view.table(1)}_target_order" ON {table} (target, create_time DESC, name)')
        plain = d.table(f"ledger_{view.name}")
        _sql(lg, f"DROP VIEW {plain}")
        _sql(lg, f"CREATE VIEW {plain} AS SELECT * FROM {table}")
    _sql(lg, f"ALTER TABLE {d.table('ledger_projections')} DROP COLUMN layout")


def test_a_store_turned_back_into_layout_1_is_rebuilt_on_each_backend(ledger_url: str) -> None:
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
        _back_to_layout_1(lg)
    with Ledger.open(ledger_url) as lg:
        _assert_current_layout(lg)
        assert {n: lg.get_json(n) for n in before} == before
        assert lg.get_json(name, as_of=1) == first
        assert [o["name"] for o in lg.list(filter="metadata.step = 2")["operations"]] == [name]
        assert [o["name"] for o in lg.list(filter="error.code = 5")["operations"]] == [f"{name}-failed"]
        _exercise(lg, name)
