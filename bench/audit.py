"""Benchmark of audit (issue: audit and verifiable history): events/s of a full audit next to a full
replay of the same log, in one run, and peak memory of each in a fresh process at two log sizes, to
show that memory stays flat as the log grows.

    python bench/audit.py --backend sqlite --operations 25000 250000 --out bench/results/audit-sqlite.json
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from common import fresh_store, provenance, write_result

from ledger import Ledger
from ledger.simulate import simulate_operations


def build(url: str, operations: int) -> int:
    with Ledger.open(url) as lg:
        pending = []
        for op in simulate_operations(operations, seed=7):
            pending.append(op)
            if len(pending) == 500:
                lg.parts.app.save(*pending)
                pending = []
        if pending:
            lg.parts.app.save(*pending)
        lg.parts.engine.catch_up()
        return lg.log_end()


def measure(url: str, what: str) -> dict[str, Any]:
    """One step in this (fresh) process: its speed and this process's peak RSS."""
    with Ledger.open(url) as lg:
        events = lg.log_end()
        started = time.perf_counter()
        if what == "audit":
            report = lg.audit()
            assert report["ok"], report["findings"][:3]
        elif what == "replay":
            lg.replay()
        elif what == "export":  # every event as JSON lines, written and thrown away
            with open(os.devnull, "wb") as sink:
                lg.export("events", format="jsonl", out=sink)
        else:
            lg.verify(lg.digest())
        seconds = time.perf_counter() - started
    return {
        "events_per_s": round(events / seconds),
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def in_fresh_process(url: str, what: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", what, "--url", url], capture_output=True, check=True, text=True
    )
    return orjson.loads(out.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--operations", type=int, nargs="+", default=[25_000, 250_000])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--measure", choices=["audit", "replay", "digest", "export"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(orjson.dumps(measure(args.url, args.measure)).decode())
        return

    result: dict[str, Any] = {**provenance("audit", args.backend), "runs": []}
    for operations in args.operations:
        with fresh_store(args.backend) as url:
            events = build(url, operations)
            print(f"built {operations:,} operations, {events:,} events", file=sys.stderr)
            run: dict[str, Any] = {"operations": operations, "events": events}
            for what in ("replay", "audit", "digest", "export"):
                run[what] = in_fresh_process(url, what)
            run["audit_to_replay"] = round(run["audit"]["events_per_s"] / run["replay"]["events_per_s"], 2)
            result["runs"].append(run)
            print(orjson.dumps(run).decode(), file=sys.stderr)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
