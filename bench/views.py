"""Benchmark of the read side (issue: projections): `get` and filtered `list` latency at scale, and
replay throughput side by side with a raw read + decode of the same stored rows and, on PostgreSQL,
with eventsourcing's own ProjectionRunner over the first `--runner-events` events of the same log.

    python bench/views.py --backend sqlite --operations 1000000 --out bench/results/views-sqlite.json

Loads the simulated workload (saved 500 operations a transaction), catches the views up, then times.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from itertools import cycle
from pathlib import Path
from typing import Any

import orjson
from common import fresh_store, provenance, write_result

from ledger import Ledger
from ledger.simulate import simulate_operations

FILTERS = {
    "running creates in one region": 'done = false AND verb = "create" AND name = "projects/*/us-east1/*"',
    "failed with a code": "error.code = RESOURCE_EXHAUSTED",
    "one collection, recent": 'createTime > "2026-06-01T00:00:00Z"',
    "custom metadata path": "metadata.trainingSteps > 9000",
}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(fn: Any, repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": round(percentile(samples, 0.5), 3), "p99_ms": round(percentile(samples, 0.99), 3), "n": repeat}


def load(lg: Ledger, operations: int) -> tuple[list[str], float, float]:
    """Save the workload and catch the views up; return names and the seconds each step took."""
    names: list[str] = []
    pending = []
    started = time.perf_counter()
    for op in simulate_operations(operations, seed=42):
        names.append(op.name)
        pending.append(op)
        if len(pending) == 500:
            lg.parts.app.save(*pending)
            pending = []
            if len(names) % 100_000 == 0:
                print(f"  saved {len(names):,} operations", file=sys.stderr)
    if pending:
        lg.parts.app.save(*pending)
    saved = time.perf_counter()
    lg.parts.engine.catch_up(progress=None)
    return names, saved - started, time.perf_counter() - saved


def raw_read(lg: Ledger) -> tuple[int, float]:
    """The floor for replay: read every stored event row and decode its JSON payload."""
    db = lg.parts.db
    count = 0
    started = time.perf_counter()
    with db.read() as cursor:
        cursor.execute(f"SELECT originator_id, originator_version, topic, state FROM {db.events_table}")
        while rows := cursor.fetchmany(10_000):
            for row in rows:
                orjson.loads(row[3])
            count += len(rows)
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--operations", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--runner-events", type=int, default=20_000, help="how far the ProjectionRunner goes")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    result: dict[str, Any] = {**provenance("views", args.backend), "operations": args.operations}
    with fresh_store(args.backend) as url, Ledger.open(url) as lg:
        names, save_s, project_s = load(lg, args.operations)
        events = lg.parts.engine.positions()["operations"]
        result["events"] = events
        result["load"] = {
            "save_events_per_s": round(events / save_s),
            "catch_up_events_per_s": round(events / project_s),
        }
        print(f"loaded {len(names):,} operations, {events:,} events", file=sys.stderr)

        rng = random.Random(1)
        live = rng.sample(names, min(len(names), args.samples))
        it = cycle(live)
        result["get"] = timed(lambda: lg.get_json(next(it)), len(live))
        result["list"] = {}
        for label, expression in FILTERS.items():
            result["list"][label] = timed(lambda e=expression: lg.list_json(filter=e, page_size=50), 200)
        parents = cycle([n.rsplit("/operations/", 1)[0] for n in live])
        result["list"]["one parent, done = true"] = timed(
            lambda: lg.list_json(next(parents), filter="done = true", page_size=50), 200
        )

        count, read_s = raw_read(lg)
        started = time.perf_counter()
        lg.replay()
        replay_s = time.perf_counter() - started
        result["replay"] = {
            "events_per_s": round(events / replay_s),
            "raw_read_decode_rows_per_s": round(count / read_s),
            "ratio": round((events / replay_s) / (count / read_s), 3),
            "seconds": round(replay_s, 1),
        }
        if args.backend == "postgresql":  # eventsourcing's SQLite recorder cannot subscribe
            from projection_runner import runner_rate

            count = min(events, args.runner_events)
            with lg.parts.db.read() as cursor:
                cursor.execute(
                    f"SELECT notification_id FROM {lg.parts.db.events_table} ORDER BY notification_id "
                    "OFFSET %s LIMIT 1",
                    (count - 1,),
                )
                last = cursor.fetchone()[0]
            runner = runner_rate(lg.parts.backend.environment(), last, count)
            result["replay"]["eventsourcing_projection_runner"] = runner
            result["replay"]["ratio_to_projection_runner"] = round(
                result["replay"]["events_per_s"] / runner["events_per_s"], 1
            )
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
