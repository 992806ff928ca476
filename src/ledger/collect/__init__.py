"""`ledger collect`: keep the history of every operation a cloud API runs.

Each source (a ListOperations collection over REST or gRPC) is polled by a thread of its own with a
ledger connection of its own, so a slow or failing source never holds up the others. Every page goes
through the ledger's snapshot path (`Ledger.ingest(..., snapshots=True)`), and each source's progress
is kept in the ledger's database (checkpoints.py), so a restart resumes where the last run stopped.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from ..application import Ledger
from ..domain.errors import LedgerError, invalid
from ..domain.timestamps import Timestamp, format_timestamp
from .checkpoints import Checkpoint, Checkpoints
from .clients import OperationsClient, open_client
from .poller import SourcePoller
from .reporting import Reporter
from .sources import Source

__all__ = ["collect", "status"]


def collect(
    url: str,
    sources: Sequence[Source],
    *,
    once: bool = False,
    reporter: Reporter | None = None,
    stop: threading.Event | None = None,
    client_factory: Callable[[Source], OperationsClient] = open_client,
) -> bool:
    """Poll every source until SIGINT/SIGTERM (or `stop`), or with `once` for one full sweep each.
    True when every source's last poll succeeded."""
    if len({s.url for s in sources}) != len(sources):
        raise invalid("source", "a source is given twice")
    reporter = reporter or Reporter()
    stop = stop or threading.Event()
    Ledger.open(url).close()  # the store and its views exist before the threads start
    pollers: list[SourcePoller] = []
    failures: list[str] = []

    def run(source: Source) -> None:
        try:
            with Ledger.open(url) as ledger:
                poller = SourcePoller(source, ledger, stop, reporter, client_factory=client_factory)
                pollers.append(poller)
                poller.run(once=once)
        except LedgerError as e:  # credentials missing, a database gone: this source only
            failures.append(source.url)
            reporter.log("error", source=source.url, error=f"{e.code_name}: {e.message}")
        except Exception as e:  # a fault nothing foresaw ends this source, said in the log like the others
            failures.append(source.url)
            reporter.log("error", source=source.url, error=f"INTERNAL: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=run, args=(s,), name=f"collect {s.url}", daemon=True) for s in sources]
    restore = _stop_on_signals(stop)
    try:
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            time.sleep(0.1)  # the main thread stays free to take signals
    finally:
        restore()
    reporter.log("stopped", sources=len(sources), failed=len(failures) + sum(p.failed for p in pollers))
    return not failures and not any(p.failed for p in pollers)


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGINT and SIGTERM set `stop` (from the main thread only, where Python takes signals)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def status(ledger: Ledger, sources: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Each source's checkpoint as `--status` shows it; only the given sources when any are."""
    wanted = set(sources)
    now = time.time()
    return [_status_row(cp, now) for cp in Checkpoints(ledger.parts.db).all() if not wanted or cp.source in wanted]


def _status_row(cp: Checkpoint, now: float) -> dict[str, Any]:
    def when(seconds: float) -> str | None:
        return format_timestamp(Timestamp(int(seconds * 1_000_000) * 1000)) if seconds else None

    return {
        "source": cp.source,
        "lastSuccess": when(cp.last_success_at),
        "lastSweep": when(cp.last_sweep_at),
        "sweepInProgress": bool(cp.sweep_page_token),
        "sweeps": cp.sweeps,
        "errors": cp.errors,
        "totalErrors": cp.total_errors,
        "lastError": cp.last_error or None,
        "lastErrorAt": when(cp.last_error_at),
        "watched": len(cp.watched),
        "eventsRecorded": cp.events_recorded,
        "lagSeconds": round(now - cp.last_success_at, 1) if cp.last_success_at else None,
    }
