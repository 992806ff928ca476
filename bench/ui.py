"""The explorer in a browser: page load and filter round-trip times over a seeded ledger.

    python bench/ui.py --backend sqlite --operations 10000 --out bench/results/ui-sqlite-10k.json

Seeds the simulated workload, serves it with `ledger serve` (tokens and policies on, as in use) and
drives Debian's chromium (/usr/bin/chromium) through Playwright, server and browser on the same 2
cores. Times come from the page's own clock (performance marks the pages set):
- fleet load: navigation start to the first paint, and to the first page of rows drawn;
- timeline load: navigation start to the bars drawn, for a window holding every operation (the
  server sends at most 20,000 bars; the rest are counted) and for a six-hour window;
- filter round-trip: Apply pressed (form submitted) to the filtered rows drawn, over several filters.
Each figure is the median and the worst of `--rounds` runs, after one warm-up run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from browser import Explorer, launch, seed, serving, signed_in_page
from common import fresh_store, provenance, write_result
from playwright.sync_api import Page, sync_playwright

FILTERS = (
    'state = "FAILED"',
    'verb = "create" AND state = "RUNNING"',
    'createTime > "2026-01-02T00:00:00Z" AND error.code = 8',
    'metadata.@type = "type.googleapis.com/google.cloud.common.OperationMetadata" AND done = false',
    'name = "projects/proj-007/*" OR target = "*cluster*"',
)


def summary(samples: list[float]) -> dict[str, Any]:
    return {
        "median_ms": round(statistics.median(samples), 1),
        "max_ms": round(max(samples), 1),
        "runs": len(samples),
        "samples_ms": [round(sample, 1) for sample in samples],
    }


def mark(page: Page, name: str) -> float:
    """When the page last set the performance mark `name`, in ms after its navigation started."""
    entries = page.evaluate(f"performance.getEntriesByName({name!r}).map(e => e.startTime)")
    return float(entries[-1])


def fleet_load(page: Page, explorer: Explorer, rounds: int) -> dict[str, Any]:
    painted, rows = [], []
    for _ in range(rounds + 1):
        page.goto("about:blank")
        page.goto(f"{explorer.base}/ui/#/fleet")
        page.wait_for_function("() => performance.getEntriesByName('ledger:rows').length > 0", timeout=120000)
        paint = page.evaluate("performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)")
        painted.append(float(paint[0]) if paint else float("nan"))
        rows.append(mark(page, "ledger:rows"))
    return {"first_paint": summary(painted[1:]), "rows_drawn": summary(rows[1:])}


def timeline_load(page: Page, explorer: Explorer, rounds: int, window: str) -> dict[str, Any]:
    drawn, shown = [], 0
    for _ in range(rounds + 1):
        page.goto("about:blank")
        page.goto(f"{explorer.base}/ui/#/timeline{window}")
        page.wait_for_function("() => performance.getEntriesByName('ledger:timeline').length > 0", timeout=120000)
        drawn.append(mark(page, "ledger:timeline"))
        shown = int((page.text_content("#tl-count") or "0").split()[0].replace(",", ""))
    return {"bars_drawn": summary(drawn[1:]), "bars": shown}


def whole_fleet_window(page: Page, explorer: Explorer) -> str:
    extent = page.evaluate(
        """async (token) => (await (await fetch('/ui/api/facets', {headers: {Authorization: 'Bearer ' + token}})).json()).extent""",
        explorer.token,
    )
    return f"?from={extent[0]}&to={extent[1] + 1000}"


def filter_round_trips(page: Page, explorer: Explorer, rounds: int) -> dict[str, Any]:
    page.goto(f"{explorer.base}/ui/#/fleet")
    page.wait_for_selector("#rows td.name a", timeout=120000)
    results: dict[str, Any] = {}
    for expression in FILTERS:
        samples = []
        for _ in range(rounds + 1):
            for text in ("", expression):  # clear, then filter: each round asks the server again
                before = page.evaluate("performance.getEntriesByName('ledger:rows').length")
                page.fill("#filter", text)
                page.click("button[type=submit]")
                page.wait_for_function(
                    f"() => performance.getEntriesByName('ledger:rows').length > {before}", timeout=120000
                )
            samples.append(mark(page, "ledger:rows") - mark(page, "ledger:submit"))
        results[expression] = summary(samples[1:])
    return results


def first_facets(explorer: Explorer) -> float:
    """How long after the server is ready its first facets answer takes: the fleet index it reads
    once at start (through the export feeds) must be complete first."""
    started = time.perf_counter()
    response = httpx.get(
        f"{explorer.base}/ui/api/facets", headers={"Authorization": f"Bearer {explorer.token}"}, timeout=600
    )
    response.raise_for_status()
    return round((time.perf_counter() - started) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--operations", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = provenance("ui", args.backend) | {"operations": args.operations}
    with fresh_store(args.backend) as url, tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        seed(url, args.operations)
        result["seed_seconds"] = round(time.perf_counter() - started, 1)
        with serving(url, Path(work)) as explorer, sync_playwright() as p:
            result["fleet_index_ready_ms"] = first_facets(explorer)
            browser = launch(p)
            result["browser"] = browser.version
            page = signed_in_page(browser, explorer, width=1440, height=900)
            result["fleet"] = fleet_load(page, explorer, args.rounds)
            result["timeline_whole_fleet"] = timeline_load(
                page, explorer, args.rounds, whole_fleet_window(page, explorer)
            )
            result["timeline_default_window"] = timeline_load(page, explorer, args.rounds, "")
            result["filters"] = filter_round_trips(page, explorer, args.rounds)
            browser.close()
    write_result(result, args.out)


if __name__ == "__main__":
    main()
