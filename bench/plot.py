"""docs/scaling.png: latency and throughput against the size of the log, from bench/results/*.json.

    python bench/plot.py            # needs the bench extra: pip install -e '.[bench]'

Reads every views-<backend>[-size].json and ingest-<backend>[-size].json result; each is one point.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt
from report import RESULTS, lean_runs, scaling_points

COLORS = {"sqlite": "tab:blue", "postgresql": "tab:orange"}


def plot(points: dict[str, list[dict[str, Any]]], out: Path) -> None:
    figure, (latency, listing, throughput) = plt.subplots(1, 3, figsize=(15, 4.5))
    for backend, rows in points.items():
        color = COLORS[backend]
        views = sorted((r for r in rows if "get_p50" in r), key=lambda r: r["operations"])
        ingests = sorted((r for r in rows if "ingest_per_s" in r), key=lambda r: r["operations"])
        x = [r["operations"] for r in views]
        latency.plot(x, [r["get_p50"] for r in views], "o-", color=color, label=f"{backend} p50")
        latency.plot(x, [r["get_p99"] for r in views], "o--", color=color, label=f"{backend} p99")
        listing.plot(x, [r["list_p99_median"] for r in views], "o-", color=color, label=f"{backend} median of filters")
        listing.plot(x, [r["list_p99_worst"] for r in views], "o--", color=color, label=f"{backend} worst filter")
        throughput.plot(x, [r["replay_per_s"] for r in views], "o-", color=color, label=f"{backend} replay")
        throughput.plot(
            [r["operations"] for r in ingests],
            [r["ingest_per_s"] for r in ingests],
            "s--",
            color=color,
            label=f"{backend} ingest",
        )
    for axes, title, unit in (
        (latency, "get", "ms"),
        (listing, "list, page of 50, p99", "ms"),
        (throughput, "replay and ingest", "events/s"),
    ):
        axes.set_xscale("log")
        axes.set_xlabel("operations in the ledger (about 4 events each)")
        axes.set_ylabel(unit)
        axes.set_title(title)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    throughput.set_ylim(bottom=0)
    figure.suptitle("ledger: cost as the log grows (bench/results, 2 cores)")
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def plot_lean(results: Path, out: Path) -> None:
    """Bytes on disk an event, by what holds them, for each bench/lean.py run, against the 3x target."""
    runs = [
        (f"{r['backend']}\n{label.replace(', ', chr(10))}", r)
        for b in ("sqlite", "postgresql")
        for label, r in lean_runs(results, b)
    ]
    if not runs:
        return
    groups = ("events", "operations view", "versions view", "other")

    def group(table: str) -> str:
        if "versions" in table:
            return "versions view"
        if "operations" in table:
            return "operations view"
        return "events" if "events" in table else "other"

    figure, axes = plt.subplots(figsize=(max(10, 1.1 * len(runs)), 4.8))
    labels = [label for label, _ in runs]
    bottoms = [0.0] * len(runs)
    for kind in groups:
        heights = [
            sum(size for table, size in r["store"]["by_table"].items() if group(table) == kind)
            / r["ledger_ingest"]["events"]
            for _, r in runs
        ]
        axes.bar(labels, heights, bottom=bottoms, label=kind)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    target = [3 * r["store"]["event_json_bytes_per_event"] for _, r in runs]
    axes.plot(labels, target, "k--", label="target: 3x the events' JSON")
    axes.set_ylabel("bytes on disk per event")
    axes.set_title("Store size by what holds it (bench/lean.py)")
    axes.legend(loc="upper left", bbox_to_anchor=(1, 1))
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "scaling.png")
    args = parser.parse_args()
    plot(scaling_points(args.results), args.out)
    print(f"wrote {args.out}")
    lean = args.out.with_name("lean.png")
    plot_lean(args.results, lean)
    print(f"wrote {lean}")


if __name__ == "__main__":
    main()
