"""Single commands through the Python API (views included), and `ledger get` as a new process.

    python bench/commands.py --backend sqlite --operations 10000 --out bench/results/commands-sqlite.json

The store first holds `--operations` simulated operations. Then each round creates an operation,
records one Progressed and one Succeeded, timing each call (it returns once the views show the
event); and `ledger get` runs as a fresh process, timed from spawn to exit, which is what a shell
script pays: interpreter start, imports, opening the store, one read. It runs twice: as an installed
package runs (its bytecode compiled once, as pip does at install), and with PYTHONDONTWRITEBYTECODE=1,
where every module is compiled again in every process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import fresh_store, provenance, write_result

from ledger import Ledger
from ledger.simulate import simulate_lines


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": ms(ordered[len(ordered) // 2]), "p99_ms": ms(ordered[int(len(ordered) * 0.99)])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--operations", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--processes", type=int, default=20, help="how many `ledger get` processes to time")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    timings: dict[str, list[float]] = {"create": [], "progress": [], "succeed": []}
    with fresh_store(args.backend) as url:
        with Ledger.open(url) as lg:
            lg.ingest(simulate_lines(args.operations, seed=1))
            for i in range(args.rounds):
                name = f"projects/bench/locations/l/operations/cmd-{i}"
                started = time.perf_counter()
                lg.create(name, verb="bench")
                middle = time.perf_counter()
                lg.progress(name, progress_percent=50)
                last = time.perf_counter()
                lg.succeed(name)
                ended = time.perf_counter()
                timings["create"].append(middle - started)
                timings["progress"].append(last - middle)
                timings["succeed"].append(ended - last)
        ledger = str(Path(sys.executable).with_name("ledger"))
        process_times: dict[str, list[float]] = {}
        with tempfile.TemporaryDirectory() as bytecode:
            compiled = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            compiled["PYTHONPYCACHEPREFIX"] = bytecode
            uncompiled = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
            for label, env in (("compiled", compiled), ("uncompiled", uncompiled)):
                get = [ledger, "--db", url, "get", "projects/bench/locations/l/operations/cmd-0"]
                subprocess.run(get, check=True, capture_output=True, env=env)  # writes the bytecode once
                process_times[label] = []
                for i in range(args.processes):
                    started = time.perf_counter()
                    subprocess.run(
                        [ledger, "--db", url, "get", f"projects/bench/locations/l/operations/cmd-{i}"],
                        check=True,
                        capture_output=True,
                        env=env,
                    )
                    process_times[label].append(time.perf_counter() - started)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare_interpreter = time.perf_counter() - started
    result = {
        **provenance("commands", args.backend),
        "operations": args.operations,
        "rounds": args.rounds,
        "commands": {command: percentiles(samples) for command, samples in timings.items()},
        "ledger_get_process": {
            "median_ms": ms(statistics.median(process_times["compiled"])),
            "max_ms": ms(max(process_times["compiled"])),
            "uncompiled_median_ms": ms(statistics.median(process_times["uncompiled"])),
            "bare_interpreter_ms": ms(bare_interpreter),
        },
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
