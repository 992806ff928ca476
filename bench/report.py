"""docs/benchmarks.md from the results in bench/results/*.json (written by the benchmarks).

python bench/report.py > docs/benchmarks.md
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson

RESULTS = Path(__file__).parent / "results"


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    if not path.exists():
        return None
    result: dict[str, Any] = orjson.loads(path.read_bytes())
    return result


def provenance(result: dict[str, Any]) -> str:
    return f"{result['date']}, {result['machine']}: `{result['command']}`"


def views_section(out: list[str], results: Path) -> None:
    names = ("views-sqlite", "views-postgresql", "views-postgresql-100k")
    runs = [r for r in (load(results, name) for name in names) if r]
    if not runs:
        return
    out += ["## Read side: get, list and replay", ""]
    out += [
        "| | " + " | ".join(f"{r['backend']}, {r['operations']:,}" for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    out.append("| operations / events | " + " | ".join(f"{r['operations']:,} / {r['events']:,}" for r in runs) + " |")
    out.append(
        "| `get` p50 / p99 ms | " + " | ".join(f"{r['get']['p50_ms']} / {r['get']['p99_ms']}" for r in runs) + " |"
    )
    for label in runs[0]["list"]:
        cells = " | ".join(f"{r['list'][label]['p50_ms']} / {r['list'][label]['p99_ms']}" for r in runs)
        out.append(f"| `list` page of 50, {label}: p50 / p99 ms | {cells} |")
    out.append(
        "| save (eventsourcing, 500 operations a save), events/s | "
        + " | ".join(f"{r['load']['save_events_per_s']:,}" for r in runs)
        + " |"
    )
    out.append(
        "| catch-up of the views, events/s | "
        + " | ".join(f"{r['load']['catch_up_events_per_s']:,}" for r in runs)
        + " |"
    )
    out.append(
        "| replay (both views rebuilt), events/s | "
        + " | ".join(f"{r['replay']['events_per_s']:,}" for r in runs)
        + " |"
    )
    out.append(
        "| raw read + orjson decode of the same rows, rows/s | "
        + " | ".join(f"{r['replay']['raw_read_decode_rows_per_s']:,}" for r in runs)
        + " |"
    )
    out.append("| replay / raw read | " + " | ".join(str(r["replay"]["ratio"]) for r in runs) + " |")
    out.append("| peak RSS of the run, MB | " + " | ".join(str(r["peak_rss_mb"]) for r in runs) + " |")
    out += [""] + [f"- {r['backend']}: {provenance(r)}" for r in runs] + [""]


def audit_section(out: list[str], results: Path) -> None:
    runs = [r for r in (load(results, "audit-sqlite"), load(results, "audit-postgresql")) if r]
    if not runs:
        return
    out += ["## Audit, replay and digest of the same log", ""]
    out += [
        "| backend | events | replay events/s | audit events/s | audit / replay | digest events/s | peak RSS MB (replay / audit) |"
    ]
    out += ["|---|---|---|---|---|---|---|"]
    for result in runs:
        for run in result["runs"]:
            out.append(
                f"| {result['backend']} | {run['events']:,} | {run['replay']['events_per_s']:,} | "
                f"{run['audit']['events_per_s']:,} | {run['audit_to_replay']} | {run['digest']['events_per_s']:,} | "
                f"{run['replay']['peak_rss_mb']} / {run['audit']['peak_rss_mb']} |"
            )
    out += [""] + [f"- {r['backend']}: {provenance(r)}" for r in runs] + [""]


def ingest_section(out: list[str], results: Path) -> None:
    runs = [r for r in (load(results, "ingest-sqlite"), load(results, "ingest-postgresql")) if r]
    if not runs:
        return
    out += ["## Ingest beside plain eventsourcing and a raw insert of the same rows", ""]
    out += [
        "| backend | events | ledger ingest | eventsourcing, 1 a save | eventsourcing, 100 a save | raw insert | ingest / raw |"
    ]
    out += ["|---|---|---|---|---|---|---|"]
    for r in runs:
        out.append(
            f"| {r['backend']} | {r['ledger_ingest']['events']:,} | {r['ledger_ingest']['events_per_s']:,}/s | "
            f"{r['eventsourcing_1_per_save']['events_per_s']:,}/s | {r['eventsourcing_100_per_save']['events_per_s']:,}/s | "
            f"{r['raw_insert']['events_per_s']:,}/s | {r['ratios']['ingest_to_raw_insert']} |"
        )
    out += [""] + [f"- {r['backend']}: {provenance(r)}" for r in runs] + [""]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON results are")
    results: Path = parser.parse_args().results
    out = [
        "# Benchmarks",
        "",
        "Recorded by `make bench` (`bench/*.py`; the JSON behind each table is in `bench/results/`) and",
        "rendered by `python bench/report.py > docs/benchmarks.md`. Each table compares side by side in one",
        "run on one machine; the workload is `ledger simulate` (about 4 events an operation).",
        "",
    ]
    views_section(out, results)
    audit_section(out, results)
    ingest_section(out, results)
    notes = Path(__file__).parent / "NOTES.md"
    if notes.exists() and results == RESULTS:  # the notes read the recorded results, not a quick run
        out += [notes.read_text().rstrip(), ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
