"""Benchmark of ingest (issue: ingest and export): events/s of `ledger ingest` of simulated event
lines, side by side in one run with the same events saved through plain eventsourcing (one operation
a `save`, and 100 a `save`), with a raw insert of the same stored rows (SQLite executemany,
PostgreSQL COPY), and with a raw insert of every row ingest writes (those events and both views'
rows for them, made beforehand): the storage floor of the ledger's own design. Every scenario starts
from an empty store.

    python bench/ingest.py --backend sqlite --events 1000000 --out bench/results/ingest-sqlite.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, cast

import orjson
from common import fresh_store, provenance, write_result

from ledger import Ledger
from ledger.projections.views import VIEWS, project
from ledger.simulate import simulate_lines, simulate_operations

EVENTS_PER_OPERATION = 3.98  # what the simulated mix gives


def timed(fn: Callable[[], int]) -> dict[str, Any]:
    started = time.perf_counter()
    events = fn()
    seconds = time.perf_counter() - started
    return {"events": events, "seconds": round(seconds, 1), "events_per_s": round(events / seconds)}


def ledger_ingest(url: str, lines: Path) -> int:
    with Ledger.open(url) as lg, open(lines, "rb") as source:
        summary = lg.ingest(source)
        assert summary["rejected"] == 0
        assert set(lg.view_lag().values()) == {0}  # views current at the end
        return int(summary["recorded"])


def eventsourcing_saves(url: str, operations: int, per_save: int) -> int:
    """The same events through eventsourcing's Application.save, without views or ingest checks."""
    with Ledger.open(url) as lg:
        app = lg.parts.app
        pending, count = [], 0
        for op in simulate_operations(operations, seed=42):
            count += len(op.pending)
            pending.append(op)
            if len(pending) == per_save:
                app.save(*pending)
                pending = []
        if pending:
            app.save(*pending)
        return count


def raw_insert(url: str, operations: int) -> int:
    """The floor: the same stored rows (topic, payload bytes) inserted straight into the table."""
    with Ledger.open(url) as lg:
        mapper = lg.parts.app.mapper
        rows = [
            mapper.to_stored_event(event)
            for op in simulate_operations(operations, seed=42)
            for event in op.collect_events()
        ]
        db = lg.parts.db
        started = time.perf_counter()
        if db.dialect.name == "sqlite":
            with db.write() as cursor:
                columns = "originator_id, originator_version, topic, state"
                cursor.executemany(
                    f"INSERT INTO {db.events_table} ({columns}) VALUES (?, ?, ?, ?)",
                    [(r.originator_id, r.originator_version, r.topic, r.state) for r in rows],
                )
        else:
            with (
                db.write() as cursor,
                cast(Any, cursor).copy(  # psycopg's own cursor: COPY
                    f"COPY {db.events_table} (originator_id, originator_version, topic, state) FROM STDIN"
                ) as copy,
            ):
                for r in rows:
                    copy.write_row((r.originator_id, r.originator_version, r.topic, r.state))
        raw_insert.seconds = time.perf_counter() - started  # type: ignore[attr-defined]
        return len(rows)


def raw_ledger_rows(url: str, operations: int) -> int:
    """The storage floor of ingest: the stored events and the views' rows for them, built in memory
    first, then inserted in one transaction into the tables as ingest finds them (indexes included)."""
    with Ledger.open(url) as lg:
        mapper = lg.parts.app.mapper
        stored, changes = [], []
        for op in simulate_operations(operations, seed=42):
            state = None
            for event in op.collect_events():
                stored.append(mapper.to_stored_event(event))
                landed = project(state, event, len(stored))
                assert landed is not None
                state, change = landed
                changes.append(change)
        rows = [(str(r.originator_id), r.originator_version, r.topic, r.state) for r in stored]
        db = lg.parts.db
        started = time.perf_counter()
        with db.recording(len(rows)) as cursor:
            db.insert_events(cursor, rows)
            for view in VIEWS.values():
                view.apply(cursor, db.dialect, 1, changes)
        raw_ledger_rows.seconds = time.perf_counter() - started  # type: ignore[attr-defined]
        return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    operations = int(args.events / EVENTS_PER_OPERATION)

    lines = Path(tempfile.gettempdir()) / f"ledger-ingest-bench-{uuid.uuid4().hex[:8]}.jsonl"
    with open(lines, "wb") as out:
        for line in simulate_lines(operations, seed=42):
            out.write(line)
    result: dict[str, Any] = {**provenance("ingest", args.backend), "operations": operations}
    try:
        with fresh_store(args.backend) as url:
            result["ledger_ingest"] = timed(lambda: ledger_ingest(url, lines))
        print(orjson.dumps(result["ledger_ingest"]).decode(), file=sys.stderr)
        for per_save in (1, 100):
            key = f"eventsourcing_{per_save}_per_save"
            with fresh_store(args.backend) as url:
                result[key] = timed(partial(eventsourcing_saves, url, operations, per_save))
            print(orjson.dumps(result[key]).decode(), file=sys.stderr)
        for key, floor in (("raw_insert", raw_insert), ("raw_ledger_rows", raw_ledger_rows)):
            with fresh_store(args.backend) as url:
                count = floor(url, operations)
                seconds = floor.seconds  # type: ignore[attr-defined]
            result[key] = {"events": count, "seconds": round(seconds, 1), "events_per_s": round(count / seconds)}
    finally:
        lines.unlink(missing_ok=True)
    rate = result["ledger_ingest"]["events_per_s"]
    result["ratios"] = {
        "ingest_to_raw_insert": round(rate / result["raw_insert"]["events_per_s"], 3),
        "ingest_to_raw_ledger_rows": round(rate / result["raw_ledger_rows"]["events_per_s"], 3),
        "ingest_to_eventsourcing_1_per_save": round(rate / result["eventsourcing_1_per_save"]["events_per_s"], 2),
        "ingest_to_eventsourcing_100_per_save": round(rate / result["eventsourcing_100_per_save"]["events_per_s"], 2),
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
