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
from report import RESULTS, scaling_points

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "scaling.png")
    args = parser.parse_args()
    plot(scaling_points(args.results), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
