"""Benchmark of the lean-views targets (issue: lean views), each side by side in one run on the same
events: the store's bytes on disk against the events' own JSON, `ledger ingest` against plain
eventsourcing saving 100 operations a `save` and against a raw insert of the same stored rows,
replay against a raw read + orjson decode of the same rows, get and filtered list latency, and the
peak memory of replay, audit and an export of intervals (each in a process of its own).

    python bench/lean.py --backend sqlite --operations 100000 --out bench/results/lean-sqlite-100k.json
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
import uuid
from functools import partial
from itertools import cycle
from pathlib import Path
from typing import Any

import orjson
from common import fresh_store, provenance, write_result
from ingest import eventsourcing_saves, ledger_ingest, raw_insert, timed
from views import FILTERS, raw_read
from views import timed as latency

from ledger import Ledger
from ledger.projections.sharded import usable_cores
from ledger.simulate import simulate_lines

TARGETS = {
    "store_to_event_json": ("at most", 3.0),
    "ingest_to_eventsourcing_100_per_save": ("at least", 1.0),
    "replay_to_raw_read_decode": ("at least", 0.15),
    "get_p99_ms": ("under", 1.0),
    "worst_list_p99_ms": ("under", 10.0),
    "peak_rss_mb": ("under", 256.0),
}


def store_bytes(lg: Ledger) -> dict[str, int]:
    """Bytes on disk of each table and index of the store (SQLite: dbstat; PostgreSQL: relation sizes)."""
    db = lg.parts.db
    with db.write() as cursor:
        if db.dialect.name == "sqlite":
            cursor.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
        else:
            cursor.execute(
                "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'i', 't')",
                (db.dialect.schema,),  # type: ignore[attr-defined]
            )
        rows = cursor.fetchall()
        if db.dialect.name != "sqlite":  # TOAST tables belong to the table they hold values of
            cursor.execute(
                "SELECT c.relname, pg_total_relation_size(c.oid) - pg_indexes_size(c.oid) - pg_relation_size(c.oid) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                (db.dialect.schema,),  # type: ignore[attr-defined]
            )
            rows += [(f"{name} (toast)", size) for name, size in cursor.fetchall() if size]
    return {str(name): int(size) for name, size in sorted(rows, key=lambda row: -int(row[1])) if int(size)}


# The command reports its own peak RSS when it exits. It runs as a child of a shell, not of this
# process: a child spawned straight from here starts in this process's memory (Linux keeps that
# high-water mark across exec), which once made a 100 MB replay read as 425 MB beside the raw read's
# buffered rows.
# A rebuild's shards are children of the command: their peak (the largest child's) is reported too,
# and counted once a shard, as they run side by side.
_MEASURED = (
    "import atexit, resource, sys\n"
    "def peaks():\n"
    "    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "    sys.stderr.write(f'peak_rss_kb={own} {child}\\n')\n"
    "atexit.register(peaks)\n"
    "from ledger.cli import main\n"
    "main()\n"
)


def settle(lg: Ledger) -> None:
    """Write a rebuild's pages out before reads are timed: a checkpoint running beside them (the
    rebuild left every page of the new tables to write) would be timed with them."""
    db = lg.parts.db
    with db.quick() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)" if db.dialect.name == "sqlite" else "CHECKPOINT")


def in_own_process(url: str, *command: str) -> tuple[float, int]:
    """Seconds and peak RSS (MB) of one `ledger` command run in a fresh process, with its children's."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/bin/sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-c", _MEASURED, "--db", url, *command],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seconds = time.perf_counter() - started
    peak = [line for line in done.stderr.splitlines() if line.startswith("peak_rss_kb=")][-1]
    own, child = (int(kb) for kb in peak.split("=")[1].split())
    shards = usable_cores() if child else 0
    return seconds, round((own + shards * child) / 1024)


def reads(lg: Ledger, samples: int) -> dict[str, Any]:
    with lg.parts.db.read() as cursor:
        cursor.execute(f"SELECT name FROM {lg.parts.db.dialect.table('ledger_operations')}")
        names = [row[0] for row in cursor.fetchall()]
    rng = random.Random(1)
    live = rng.sample(names, min(len(names), samples))
    it = cycle(live)
    out: dict[str, Any] = {"get": latency(lambda: lg.get_json(next(it)), len(live)), "list": {}}
    for label, expression in FILTERS.items():
        out["list"][label] = latency(lambda e=expression: lg.list_json(filter=e, page_size=50), 200)
    parents = cycle([n.rsplit("/operations/", 1)[0] for n in live])
    out["list"]["one parent, done = true"] = latency(
        lambda: lg.list_json(next(parents), filter="done = true", page_size=50), 200
    )
    # Later pages read the operations as they were at the first page's position; the first page is short so
    # that small stores have a second one too.
    firsts = {p: orjson.loads(lg.list_json(p, page_size=5)) for p in {next(parents) for _ in range(50)}}
    tokens = cycle([(p, first["nextPageToken"]) for p, first in firsts.items() if "nextPageToken" in first])

    def second_page() -> None:
        parent, token = next(tokens)
        lg.list_json(parent, page_size=50, page_token=token)

    out["list"]["one parent, second page"] = latency(second_page, 200)
    out["list"]["as of a time, failed"] = latency(
        lambda: lg.list_json(filter="error.code = RESOURCE_EXHAUSTED", as_of="2026-03-01T00:00:00Z", page_size=50), 200
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    lines = Path(tempfile.gettempdir()) / f"ledger-lean-bench-{uuid.uuid4().hex[:8]}.jsonl"
    event_json = 0
    with open(lines, "wb") as out:
        for line in simulate_lines(args.operations, seed=42):
            event_json += len(line) - 1  # without its newline
            out.write(line)
    result: dict[str, Any] = {**provenance("lean", args.backend), "operations": args.operations}
    try:
        with fresh_store(args.backend) as url:
            result["ledger_ingest"] = timed(lambda: ledger_ingest(url, lines))
            events = result["ledger_ingest"]["events"]
            with Ledger.open(url) as lg:
                sizes = store_bytes(lg)
                result["store"] = {
                    "event_json_bytes": event_json,
                    "bytes": sum(sizes.values()),
                    "bytes_per_event": round(sum(sizes.values()) / events),
                    "event_json_bytes_per_event": round(event_json / events),
                    "by_table": sizes,
                }
            # Reads are measured on the replayed store: a replay (and the migration of an older
            # store) leaves planner statistics behind, which change the plans reads get.
            replay_s, replay_rss = in_own_process(url, "replay")
            with Ledger.open(url) as lg:
                settle(lg)
                replayed = store_bytes(lg)
                result["store"]["after_replay"] = {
                    "bytes": sum(replayed.values()),
                    "bytes_per_event": round(sum(replayed.values()) / events),
                    "by_table": replayed,
                }
                result["reads"] = reads(lg, args.samples)
                count, read_s = raw_read(lg)
            audit_s, audit_rss = in_own_process(url, "audit")
            exported = lines.with_suffix(".intervals.jsonl")
            export_s, export_rss = in_own_process(url, "export", "--what", "intervals", "--out", str(exported))
            exported.unlink(missing_ok=True)
            audit_rss = max(replay_rss, audit_rss, export_rss)
            result["replay"] = {
                "events_per_s": round(events / replay_s),
                "raw_read_decode_rows_per_s": round(count / read_s),
                "peak_rss_mb": replay_rss,
            }
            result["audit"] = {"events_per_s": round(events / audit_s), "peak_rss_mb_replay_and_audit": audit_rss}
            result["export_intervals"] = {"events_per_s": round(events / export_s), "peak_rss_mb": export_rss}
        print(orjson.dumps(result["ledger_ingest"]).decode(), file=sys.stderr)
        with fresh_store(args.backend) as url:
            result["eventsourcing_100_per_save"] = timed(partial(eventsourcing_saves, url, args.operations, 100))
        with fresh_store(args.backend) as url:
            count = raw_insert(url, args.operations)
            seconds = raw_insert.seconds  # type: ignore[attr-defined]
        result["raw_insert"] = {"events": count, "seconds": round(seconds, 1), "events_per_s": round(count / seconds)}
    finally:
        lines.unlink(missing_ok=True)
    lists = result["reads"]["list"]
    result["figures"] = {
        "store_to_event_json": round(result["store"]["bytes"] / event_json, 2),
        "replayed_store_to_event_json": round(result["store"]["after_replay"]["bytes"] / event_json, 2),
        "ingest_to_eventsourcing_100_per_save": round(
            result["ledger_ingest"]["events_per_s"] / result["eventsourcing_100_per_save"]["events_per_s"], 2
        ),
        "replay_to_raw_read_decode": round(
            result["replay"]["events_per_s"] / result["replay"]["raw_read_decode_rows_per_s"], 3
        ),
        "get_p99_ms": result["reads"]["get"]["p99_ms"],
        "worst_list_p99_ms": max(entry["p99_ms"] for entry in lists.values()),
        "peak_rss_mb": result["audit"]["peak_rss_mb_replay_and_audit"],
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
