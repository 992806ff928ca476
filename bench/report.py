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
    names = ("views-sqlite", "views-postgresql", "views-postgresql-100k", "views-postgresql-10k")
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

    def runner(r: dict[str, Any]) -> str:
        baseline = r["replay"].get("eventsourcing_projection_runner")
        if baseline:
            return f"{baseline['events_per_s']:,} (first {baseline['events']:,} events)"
        return "cannot subscribe" if r["backend"] == "sqlite" else "not measured"

    out.append(
        "| eventsourcing's ProjectionRunner, operations view only, one transaction an event, events/s | "
        + " | ".join(runner(r) for r in runs)
        + " |"
    )
    out.append("| peak RSS of the run, MB | " + " | ".join(str(r["peak_rss_mb"]) for r in runs) + " |")
    out += [""] + [f"- {r['backend']}: {provenance(r)}" for r in runs] + [""]


def audit_section(out: list[str], results: Path) -> None:
    runs = [r for r in (load(results, "audit-sqlite"), load(results, "audit-postgresql")) if r]
    if not runs:
        return
    out += ["## Audit, replay and digest of the same log", ""]
    out += [
        "| backend | events | replay events/s | audit events/s | audit / replay | digest events/s | export events/s "
        "| peak RSS MB (replay / audit / export) |"
    ]
    out += ["|---|---|---|---|---|---|---|---|"]
    for result in runs:
        for run in result["runs"]:
            export = run.get("export")  # runs recorded before export was measured lack it
            export_rate = f"{export['events_per_s']:,}" if export else "not measured"
            export_rss = export["peak_rss_mb"] if export else "-"
            out.append(
                f"| {result['backend']} | {run['events']:,} | {run['replay']['events_per_s']:,} | "
                f"{run['audit']['events_per_s']:,} | {run['audit_to_replay']} | {run['digest']['events_per_s']:,} | "
                f"{export_rate} | {run['replay']['peak_rss_mb']} / {run['audit']['peak_rss_mb']} / {export_rss} |"
            )
    out += [""] + [f"- {r['backend']}: {provenance(r)}" for r in runs] + [""]


def ingest_section(out: list[str], results: Path) -> None:
    runs = [r for r in (load(results, "ingest-sqlite"), load(results, "ingest-postgresql")) if r]
    if not runs:
        return
    out += ["## Ingest beside plain eventsourcing and raw inserts of the same rows", ""]
    out += [
        "| backend | events | ledger ingest | eventsourcing, 1 a save | eventsourcing, 100 a save | raw insert "
        "| ingest / raw | raw insert of every row ingest writes | ingest / that |"
    ]
    out += ["|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        floor = r.get("raw_ledger_rows")  # runs recorded before this floor was measured lack it
        floor_cells = f"{floor['events_per_s']:,}/s | {r['ratios']['ingest_to_raw_ledger_rows']}" if floor else "- | -"
        out.append(
            f"| {r['backend']} | {r['ledger_ingest']['events']:,} | {r['ledger_ingest']['events_per_s']:,}/s | "
            f"{r['eventsourcing_1_per_save']['events_per_s']:,}/s | {r['eventsourcing_100_per_save']['events_per_s']:,}/s | "
            f"{r['raw_insert']['events_per_s']:,}/s | {r['ratios']['ingest_to_raw_insert']} | {floor_cells} |"
        )
    out += [""] + [f"- {r['backend']}: {provenance(r)}" for r in runs] + [""]


# bench/lean.py runs: `lean-{backend}-{size}` is the current layout; `lean-layout{N}-...` ran the
# code of an earlier layout, kept to compare with.
LEAN_SIZES = ("2k", "10k", "100k", "1m")  # 2k: `make bench-quick`
LEAN_LAYOUTS = {"lean-layout1": "layout 1", "lean-layout2": "layout 2", "lean": "layout 3"}


def lean_runs(results: Path, backend: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, result) of each lean run of a backend, by size and then layout."""
    runs = []
    for size in LEAN_SIZES:
        for prefix, layout in LEAN_LAYOUTS.items():
            result = load(results, f"{prefix}-{backend}-{size}")
            if result:
                runs.append((f"{result['operations']:,}, {layout}", result))
    return runs


def lean_section(out: list[str], results: Path) -> None:
    """bench/lean.py: each target of the lean views beside the peer and the floor of the same run."""
    backends = [(backend, lean_runs(results, backend)) for backend in ("sqlite", "postgresql")]
    if not any(runs for _, runs in backends):
        return
    out += ["## Lean views: size, ingest, replay and reads against their targets", ""]
    out += [
        "Each column is one run of `bench/lean.py` on one fresh store (reads are measured after the",
        "replay in layout 3, before it in the earlier runs). Layout 1 is the code before the",
        "lean views (each row holding its metadata and response JSON twice, twelve indexes); layout 2",
        "dropped those copies and four indexes; layout 3, the current one, has no versions view (past",
        "states are folded from the log), renders a row once an operation a batch, folds a large",
        "rebuild in a process a core, and keeps its indexes oldest first (a page reads them",
        "backwards), so that new entries fill their pages.",
        "",
    ]
    rows: list[tuple[str, Any]] = [
        (
            "events (their JSON, bytes each)",
            lambda r: f"{r['ledger_ingest']['events']:,} ({r['store']['event_json_bytes_per_event']})",
        ),
        ("store on disk, bytes an event", lambda r: f"{r['store']['bytes_per_event']:,}"),
        ("**store / events' JSON** (target ≤ 3)", lambda r: f"**{r['figures']['store_to_event_json']}x**"),
        (
            "the same after `ledger replay` (indexes built last)",
            lambda r: f"{r['figures']['replayed_store_to_event_json']}x" if "after_replay" in r["store"] else "-",
        ),
        ("ledger ingest, events/s", lambda r: f"{r['ledger_ingest']['events_per_s']:,}"),
        ("eventsourcing, 100 a save, events/s", lambda r: f"{r['eventsourcing_100_per_save']['events_per_s']:,}"),
        ("raw insert, events/s", lambda r: f"{r['raw_insert']['events_per_s']:,}"),
        (
            "**ingest / eventsourcing** (target ≥ 1.0)",
            lambda r: f"**{r['figures']['ingest_to_eventsourcing_100_per_save']}x**",
        ),
        ("replay, events/s", lambda r: f"{r['replay']['events_per_s']:,}"),
        ("raw read + decode, rows/s", lambda r: f"{r['replay']['raw_read_decode_rows_per_s']:,}"),
        ("**replay / raw** (target ≥ 0.15)", lambda r: f"**{r['figures']['replay_to_raw_read_decode']}x**"),
        ("audit, events/s", lambda r: f"{r['audit']['events_per_s']:,}"),
        (
            "export of intervals, events/s",
            lambda r: f"{r['export_intervals']['events_per_s']:,}" if "export_intervals" in r else "-",
        ),
        (
            "get p50 / p99 ms (target p99 < 1)",
            lambda r: f"{r['reads']['get']['p50_ms']} / {r['reads']['get']['p99_ms']}",
        ),
        ("worst list page p99 ms (target < 10)", lambda r: f"{r['figures']['worst_list_p99_ms']}"),
        ("peak RSS of replay, audit, export, MB (target < 256)", lambda r: f"{r['figures']['peak_rss_mb']}"),
    ]
    for backend, runs in backends:
        if not runs:
            continue
        out += [f"### {backend}", ""]
        out += ["| | " + " | ".join(label for label, _ in runs) + " |", "|---|" + "---|" * len(runs)]
        for title, cell in rows:
            out.append(f"| {title} | " + " | ".join(cell(r) for _, r in runs) + " |")
        current = [r for label, r in runs if label.endswith(LEAN_LAYOUTS["lean"])]
        if len(current) > 1:
            rates = [r["ledger_ingest"]["events_per_s"] for r in current]
            sizes = ", ".join(
                f"{r['operations']:,}: {rate / rates[0]:.2f}" for r, rate in zip(current, rates, strict=True)
            )
            out += ["", f"Ingest rate of the current layout against its 10k run (target: within 20 %): {sizes}."]
        out += ["", "List pages, p50 / p99 ms:", ""]
        filters = list(runs[-1][1]["reads"]["list"])
        out += ["| filter | " + " | ".join(label for label, _ in runs) + " |", "|---|" + "---|" * len(runs)]
        for key in filters:
            cells = []
            for _, r in runs:
                entry = r["reads"]["list"].get(key)
                cells.append(f"{entry['p50_ms']} / {entry['p99_ms']}" if entry else "-")
            out.append(f"| {key} | " + " | ".join(cells) + " |")
        out += ["", "Largest tables and indexes, MB (the views' generation suffix dropped):", ""]
        for label, r in runs:
            largest = list(r["store"]["by_table"].items())[:6]
            listed = ", ".join(f"{table.replace('_g1', '')} {size / 1e6:.1f}" for table, size in largest)
            out.append(f"- {label}: {listed}")
        out += [""] + [f"- {label}: {provenance(r)}" for label, r in runs] + [""]
    out += ["![bytes on disk per event by what holds them, against the 3x target](lean.png)", ""]


def scaling_points(results: Path) -> dict[str, list[dict[str, Any]]]:
    """One point per views or ingest result, by backend: what grows with the log, and how fast."""
    points: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(results.glob("views-*.json")):
        r = orjson.loads(path.read_bytes())
        p99s = sorted(page["p99_ms"] for page in r["list"].values())
        points.setdefault(r["backend"], []).append(
            {
                "operations": r["operations"],
                "events": r["events"],
                "get_p50": r["get"]["p50_ms"],
                "get_p99": r["get"]["p99_ms"],
                "list_p99_median": p99s[len(p99s) // 2],
                "list_p99_worst": p99s[-1],
                "replay_per_s": r["replay"]["events_per_s"],
                "date": r["date"],
            }
        )
    for path in sorted(results.glob("ingest-*.json")):
        r = orjson.loads(path.read_bytes())
        points.setdefault(r["backend"], []).append(
            {
                "operations": r["operations"],
                "events": r["ledger_ingest"]["events"],
                "ingest_per_s": r["ledger_ingest"]["events_per_s"],
                "date": r["date"],
            }
        )
    return points


def scaling_section(out: list[str], results: Path) -> None:
    points = scaling_points(results)
    if not points:
        return
    out += ["## Cost as the log grows", ""]
    if (results.parent.parent / "docs" / "scaling.png").exists() and results == RESULTS:
        out += ["![latency and throughput against log size](scaling.png)", ""]
    out += [
        "| backend | operations | events | get p50 / p99 ms | list p99 ms, median / worst filter | replay events/s "
    ]
    out[-1] += "| ingest events/s | measured |"
    out += ["|---|---|---|---|---|---|---|---|"]
    for backend, rows in points.items():
        for r in sorted(rows, key=lambda r: (r["operations"], "ingest_per_s" in r)):
            if "get_p50" in r:
                cells = f"{r['get_p50']} / {r['get_p99']} | {r['list_p99_median']} / {r['list_p99_worst']} | {r['replay_per_s']:,} | |"
            else:
                cells = f" | | | {r['ingest_per_s']:,} |"
            out.append(f"| {backend} | {r['operations']:,} | {r['events']:,} | {cells} {r['date']} |")
    out += [""]


def commands_section(out: list[str], results: Path) -> None:
    runs = [r for r in (load(results, "commands-sqlite"), load(results, "commands-postgresql")) if r]
    if not runs:
        return
    out += ["## Single commands, and `ledger get` as a new process", ""]
    out += ["| backend | operations held | create p50 / p99 ms | progress p50 / p99 ms | succeed p50 / p99 ms "]
    out[-1] += (
        "| `ledger get` process, median (max) ms | the same, no bytecode kept, median ms | bare `python -c pass` ms |"
    )
    out += ["|---|---|---|---|---|---|---|---|"]
    for r in runs:
        c, g = r["commands"], r["ledger_get_process"]
        cells = " | ".join(f"{c[k]['p50_ms']} / {c[k]['p99_ms']}" for k in ("create", "progress", "succeed"))
        uncompiled = g.get("uncompiled_median_ms", "-")  # runs recorded before it was measured lack it
        out.append(
            f"| {r['backend']} | {r['operations']:,} | {cells} | {g['median_ms']} ({g['max_ms']}) | {uncompiled} "
            f"| {g['bare_interpreter_ms']} |"
        )
    out += [""] + [f"- {r['backend']}: {provenance(r)}" for r in runs] + [""]


def serve_section(out: list[str], results: Path) -> None:
    runs = [r for r in (load(results, "serve-sqlite"), load(results, "serve-postgresql")) if r]
    if not runs:
        return
    out += ["## The REST service under load (loopback, a second process)", ""]
    out += ["| backend | clients (poll / write) | seconds | requests/s | errors | lost writes "]
    out[-1] += "| get p50 / p99 ms | list p50 / p99 ms | write p50 / p99 ms |"
    out += ["|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lat = r["latency_ms"]
        cells = " | ".join(f"{lat[k]['p50']} / {lat[k]['p99']}" for k in ("get", "list", "write"))
        out.append(
            f"| {r['backend']} | {r['pollers']} / {r['writers']} | {r['seconds']} | {r['requests_per_s']:,} | "
            f"{r['errors']} | {r['lost_writes']} of {r['operations_written']:,} operations | {cells} |"
        )
    out += [""] + [f"- {r['backend']}: {provenance(r)}" for r in runs] + [""]


def serve_grpc_section(out: list[str], results: Path) -> None:
    """bench/serve_grpc.py: the same load with the pollers on gRPC, beside the REST table above."""
    runs = [r for r in (load(results, "serve-grpc-sqlite"), load(results, "serve-grpc-postgresql")) if r]
    if not runs:
        return
    out += ["## The gRPC service under load (loopback, a second process)", ""]
    out += [
        "The REST table's workload with the pollers moved to gRPC (`ledger serve --grpc-port`): each poller",
        "its own channel, GetOperation (one call in ten a ListOperations page of 20) with a bearer token;",
        "the writers still post events over HTTP. Every answer packs an Any (the default OperationMetadata).",
        "This table and the REST one come from separate runs on a machine shared with other work, where the",
        "same benchmark moved by more than a factor of two between runs of one day: compare within a run.",
        "",
    ]
    out += ["| backend | clients (gRPC poll / HTTP write) | seconds | requests/s | errors | lost writes "]
    out[-1] += "| get p50 / p99 ms | list p50 / p99 ms | write p50 / p99 ms |"
    out += ["|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lat = r["latency_ms"]
        cells = " | ".join(f"{lat[k]['p50']} / {lat[k]['p99']}" for k in ("get", "list", "write"))
        out.append(
            f"| {r['backend']} | {r['pollers']} / {r['writers']} | {r['seconds']} | {r['requests_per_s']:,} | "
            f"{r['errors']} | {r['lost_writes']} of {r['operations_written']:,} operations | {cells} |"
        )
    out += [""] + [f"- {r['backend']}: {provenance(r)}" for r in runs] + [""]


# -- the explorer in a browser (bench/ui.py) -------------------------------------------------------------

UI_RUNS = ("ui-sqlite", "ui-sqlite-10k", "ui-sqlite-100k", "ui-postgresql-10k", "ui-postgresql-100k")


def ui_section(out: list[str], results: Path) -> None:
    """Page load and filter round-trip of the explorer at /ui/, in Debian's chromium."""
    runs = [r for r in (load(results, name) for name in UI_RUNS) if r]
    if not runs:
        return
    out += ["## The explorer at /ui/ in a browser: page load and filter round-trip", ""]
    out += [
        "Times from the page's own clock (navigation start, or Apply pressed, to the performance mark the",
        "page sets once its rows or bars are drawn), in Debian's chromium driven by Playwright, server and",
        "browser on the same 2 cores; median (worst) of the runs after a warm-up. The whole-fleet timeline",
        "window holds every operation; the server sends at most 20,000 bars and counts the rest. The last",
        "column is the first facets answer after the server reported ready: the fleet index it reads at",
        "start (every live operation and every event, through the export feeds) must be complete first.",
        "Other work shared the machine while these ran (2026-12-04), so the worst cases carry its noise.",
        "",
        "| backend | operations | fleet: first paint ms | fleet: rows drawn ms | timeline, whole fleet: bars "
        "| drawn ms | timeline, last 6 h: bars | drawn ms | filter round-trip ms, median over filters "
        "(slowest filter's worst) | fleet index ready after start ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        fleet, whole, window = r["fleet"], r["timeline_whole_fleet"], r["timeline_default_window"]
        filters = list(r["filters"].values())
        medians = sorted(f["median_ms"] for f in filters)
        out.append(
            f"| {r['backend']} | {r['operations']:,} | {_cell(fleet['first_paint'])} | {_cell(fleet['rows_drawn'])} "
            f"| {whole['bars']:,} | {_cell(whole['bars_drawn'])} | {window['bars']:,} | {_cell(window['bars_drawn'])} "
            f"| {medians[len(medians) // 2]} ({max(f['max_ms'] for f in filters)}) | {r.get('fleet_index_ready_ms', '')} |"
        )
    out += ["", "Filter round-trips, median (worst) ms:", ""]
    out += ["| filter | " + " | ".join(f"{r['backend']}, {r['operations']:,}" for r in runs) + " |"]
    out += ["|---|" + "---|" * len(runs)]
    for expression in runs[0]["filters"]:
        cells = " | ".join(_cell(r["filters"][expression]) if expression in r["filters"] else "" for r in runs)
        out.append(f"| `{expression}` | {cells} |")
    out += [""] + [f"- {r['backend']}, {r['operations']:,}: {provenance(r)}; chromium {r['browser']}" for r in runs]
    out += [""]


def _cell(timing: dict[str, Any]) -> str:
    return f"{timing['median_ms']} ({timing['max_ms']})"


def collect_section(out: list[str], results: Path) -> None:
    """`ledger collect` against the fake Google API (bench/collect.py): its own table, its own runs."""
    runs = [r for r in (load(results, "collect-sqlite"), load(results, "collect-postgresql")) if r]
    if not runs:
        return
    out += ["## Collecting from 5 sources of a fake Google API (`ledger collect`)", ""]
    out += [
        "Each source of `tests/collect/fake_google.py` holds its share of the operations, shaped like the real corpus,",
        "and moves them through their states as the collector reads them; the collector is a second process",
        "(`ledger collect --config`), limited to the rate below per source. Requests are counted as they",
        "arrive at the fakes: the limiter spaces a source's requests 1/limit apart when it sends them, so a",
        "second counted on arrival can hold one more when the request before was late; memory is the",
        "collector's resident set, sampled every half second.",
        "",
    ]
    out += ["| backend | operations / sources | limit req/s a source | most requests in 1 s (any source) "]
    out[-1] += "| busiest 10 s, req/s | first full sweep s | events/s in the first sweeps | every state seen s "
    out[-1] += "| events | RSS MiB at the end of the changes / steady start / steady end (max) |"
    out += ["|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        sources = r["per_source"]
        rss = r["rss_mib"]
        out.append(
            f"| {r['backend']} | {r['operations']:,} / {r['sources']} | {r['rate_limit_per_source']:g} "
            f"| {max(s['max_requests_in_1s'] for s in sources)} "
            f"| {max(s['busiest_10s_requests_per_s'] for s in sources)} | {max(r['first_full_sweep_s'])} "
            f"| {r['first_sweeps_events_per_s']:,} | {r['seconds_to_every_state']} | {r['events_recorded']:,} "
            f"| {rss['at_every_state']} / {rss['steady_first_third_median']} / {rss['steady_last_third_median']} "
            f"({rss['max']}) |"
        )
    out.append("")
    for r in runs:
        machine_load = r.get("load_average_1m")
        busy = (
            f"; load average (1 min) {machine_load['start']} at the start, {machine_load['end']} at the end"
            if machine_load
            else ""
        )
        steady = f"; then {r['steady_s']:g} s of polling with no change, for the memory figures"
        out.append(f"- {r['backend']}: {provenance(r)}{steady}{busy}")
    out.append("")


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
    lean_section(out, results)
    commands_section(out, results)
    serve_section(out, results)
    serve_grpc_section(out, results)
    ui_section(out, results)
    collect_section(out, results)
    scaling_section(out, results)
    notes = Path(__file__).parent / "NOTES.md"
    if notes.exists() and results == RESULTS:  # the notes read the recorded results, not a quick run
        out += [notes.read_text().rstrip(), ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
