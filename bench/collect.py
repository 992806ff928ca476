"""`ledger collect` against 5 sources of the tests' fake Google API (tests/collect/fake_google.py), 10,000
operations in all, shaped like the real corpus and evolving as they are read.

    python bench/collect.py --backend sqlite --out bench/results/collect-sqlite.json

The fakes run in this process, the collector (`ledger collect --config`) in another, so its memory
is its own. Each fake moves its script on once the collector has read every changed operation
(`serves=1`), so the run ends when the collector has seen every state. Measured: each source's
requests per second as they arrive (the most in any one-second window, and the rate over the busiest
ten seconds, against its configured limit), the time to
each source's first full sweep, events recorded per second over the run, and the collector's resident
memory sampled every half second.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from common import fresh_store, provenance, write_result

from ledger import Ledger

LEDGER = str(Path(sys.executable).with_name("ledger"))


def _fake_api() -> Any:
    sys.path.insert(0, str(Path(__file__).parents[1]))
    import tests.collect.fake_google as fake

    return fake


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most requests inside any `window` seconds."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _config(collections: list[str], args: argparse.Namespace) -> str:
    lines = [
        f"interval = {args.interval}",
        f"sweep_every = {args.sweep_every}",
        f"rate_limit = {args.rate_limit}",
        f"page_size = {args.page_size}",
        "anonymous = true",
    ]
    for collection in collections:
        lines += ["", "[[source]]", f'url = "{collection}"']
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict[str, Any]:
    fake = _fake_api()
    per_source = args.operations // args.sources
    apis = []
    for i in range(args.sources):
        parent = f"projects/bench-{i}/locations/us-central1"
        stagger = -(-per_source // args.appear_in_frames)  # operations appearing in each frame
        script = fake.Script(fake.evolutions(per_source, parent, stagger=stagger), serves=1)
        apis.append(fake.FakeApi(script, page_size=args.page_size, parent=parent))
    with fresh_store(args.backend) as url, ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        running = [stack.enter_context(fake.serve(api)) for api in apis]
        config = Path(tmp) / "collect.toml"
        config.write_text(_config([r.collection for r in running], args))
        log = Path(tmp) / "collect.log"
        load_at_start = os.getloadavg()[0]  # the machine is shared: how busy it was says what the figures mean
        started_wall, started = time.time(), time.monotonic()
        with log.open("wb") as err:
            process = subprocess.Popen([LEDGER, "--db", url, "collect", "--config", str(config)], stderr=err)
        memory: list[tuple[float, int]] = []
        finished_at = None
        while time.monotonic() - started < args.timeout and process.poll() is None:
            memory.append((round(time.monotonic() - started, 1), _rss_kib(process.pid)))
            if finished_at is None and all(api.script.finished.is_set() for api in apis):
                finished_at = time.monotonic() - started
            if finished_at is not None and time.monotonic() - started > finished_at + args.steady:
                break
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        exit_status = process.wait(60)
        if finished_at is None:
            sys.exit(f"the collector did not see every state in {args.timeout} s: {log.read_text()[-3000:]}")
        with Ledger.open(url) as lg:
            events = lg.log_end()
            operations = len(lg.list(page_size=1000)["operations"])  # first page only: a check, not a count
            audit_ok = lg.audit()["ok"]
        lines = [orjson.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    result = _result(
        args,
        apis,
        running,
        lines,
        memory,
        started,
        started_wall,
        finished_at,
        events,
        operations,
        audit_ok,
        exit_status,
    )
    result["load_average_1m"] = {"start": round(load_at_start, 2), "end": round(os.getloadavg()[0], 2)}
    return result


def _result(
    args: argparse.Namespace,
    apis: list[Any],
    running: list[Any],
    lines: list[dict[str, Any]],
    memory: list[tuple[float, int]],
    started: float,
    started_wall: float,
    finished_at: float,
    events: int,
    operations: int,
    audit_ok: bool,
    exit_status: int,
) -> dict[str, Any]:
    first_sweeps = []
    for r in running:
        ends = [line["time"] for line in lines if line["event"] == "sweep" and line["source"] == r.collection]
        first = datetime.fromisoformat(ends[0].replace("Z", "+00:00")).timestamp() - started_wall
        first_sweeps.append(round(first, 1))
    sources = []
    for api in apis:
        times = [r.at - started for r in api.api_requests]
        sources.append(
            {
                "requests": len(times),
                "max_requests_in_1s": _max_in_window(times),
                "busiest_10s_requests_per_s": round(_max_in_window(times, 10.0) / 10, 1),
                "mean_requests_per_s": round(len(times) / (times[-1] - times[0]), 1),
                "statuses": sorted({r.status for r in api.api_requests}),
            }
        )
    steady = [kib for at, kib in memory if at >= finished_at]
    third = max(1, len(steady) // 3)
    first_sweep_events = sum(
        next(line["recorded"] for line in lines if line["event"] == "sweep" and line["source"] == r.collection)
        for r in running
    )
    return {
        **provenance("collect", args.backend),
        "operations": args.operations,
        "sources": args.sources,
        "rate_limit_per_source": args.rate_limit,
        "interval_s": args.interval,
        "sweep_every": args.sweep_every,
        "appear_in_frames": args.appear_in_frames,
        "page_size": args.page_size,
        "seconds_to_every_state": round(finished_at, 1),
        "first_full_sweep_s": first_sweeps,
        "events_recorded": events,
        "events_per_s": round(events / finished_at, 1),
        "first_sweeps_events": first_sweep_events,
        "first_sweeps_events_per_s": round(first_sweep_events / max(first_sweeps), 1),
        "per_source": sources,
        "steady_s": args.steady,
        "rss_mib": {
            "at_every_state": round(steady[0] / 1024, 1),
            "steady_first_third_median": round(statistics.median(steady[:third]) / 1024, 1),
            "steady_last_third_median": round(statistics.median(steady[-third:]) / 1024, 1),
            "max": round(max(kib for _, kib in memory) / 1024, 1),
            "samples": len(memory),
        },
        "memory_samples": memory[:: max(1, len(memory) // 40)],
        "first_page_operations": operations,
        "audit_ok": audit_ok,
        "collector_exit_status": exit_status,
        "errors": [line for line in lines if line["event"] == "error"][:10],
        "log_events": {
            kind: sum(1 for line in lines if line["event"] == kind) for kind in ("sweep", "hot", "retry", "error")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--sources", type=int, default=5)
    parser.add_argument("--rate-limit", type=float, default=20.0, help="requests a second, per source")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--sweep-every", type=int, default=5)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--appear-in-frames", type=int, default=1, help="1: every operation is there at the start")
    parser.add_argument("--steady", type=float, default=60.0, help="seconds to keep polling after the last change")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    write_result(run(args), args.out)


if __name__ == "__main__":
    main()
