"""One source's polling loop: full sweeps every few intervals, hot polls of its running operations
between them, each page recorded through the ledger's snapshot path before the checkpoint moves on.

A sweep lists the whole collection page by page (the user's filter applied). Between sweeps a hot poll
lists `done = false` (where the source takes that filter; a 400 teaches the collector it does not) and
GETs each watched operation that list no longer shows, to see how it ended; sources without filters
get a GET per watched operation. What the API returns is recorded as it is: the snapshot path records
only what changed, so a page read twice records nothing the second time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import orjson

from ..application import Ledger
from ..domain.errors import LedgerError
from ..domain.values import JSONObject
from .checkpoints import Checkpoint, Checkpoints
from .clients import OperationsClient, SourceError, open_client
from .pacing import Backoff, RateLimiter
from .reporting import Reporter, elapsed_since
from .sources import Source

_T = TypeVar("_T")
GET_BATCH = 100  # operations fetched one by one are recorded this many at a time


class Stopped(Exception):
    """The collector is stopping: the poll ends after the request in flight."""


@dataclass
class Tally:
    kind: str
    pages: int = 0
    operations: int = 0
    recorded: int = 0
    rejected: int = 0
    gets: int = 0


class SourcePoller:
    def __init__(
        self,
        source: Source,
        ledger: Ledger,
        stop: threading.Event,
        reporter: Reporter,
        *,
        backoff: Backoff | None = None,
        client_factory: Callable[[Source], OperationsClient] = open_client,
    ) -> None:
        self.source, self.ledger, self.stop, self.reporter = source, ledger, stop, reporter
        self.backoff = backoff or Backoff()
        self.limiter = RateLimiter(source.rate_limit, stop)
        self.store = Checkpoints(ledger.parts.db)  # the collector's own table, beside the log
        self.checkpoint: Checkpoint = self.store.load(source.url)
        self.client = client_factory(source)
        self.failed = False  # the last poll failed

    # -- the loop ---------------------------------------------------------------------------------

    def run(self, *, once: bool = False) -> None:
        """Poll until stopped (or, with `once`, until one full sweep has ended or failed)."""
        try:
            while not self.stop.is_set():
                sweep = self._sweep_due() or once
                self.poll(sweep)
                if once and (self.failed or not self.checkpoint.sweep_page_token):
                    return
                self.stop.wait(self.source.interval)
        finally:
            self.client.close()

    def _sweep_due(self) -> bool:
        cp = self.checkpoint
        if cp.sweep_page_token or not cp.last_sweep_at:
            return True
        return time.time() - cp.last_sweep_at >= self.source.sweep_every * self.source.interval - 1e-3

    def poll(self, sweep: bool) -> Tally | None:
        """One sweep or hot poll; its outcome goes to the checkpoint and the log. None when stopped."""
        started = time.monotonic()
        requests_before = self.client.requests
        tally = Tally("sweep" if sweep else "hot")
        try:
            self._sweep(tally) if sweep else self._hot(tally)
        except Stopped:
            return None
        except (SourceError, LedgerError) as e:
            self._failed(tally, str(e), started)
            self.reporter.polled()
            return tally
        except Exception as e:  # a fault nothing foresaw fails this poll, not the collector
            self._failed(tally, f"INTERNAL: {type(e).__name__}: {e}", started)
            self.reporter.polled()
            return tally
        cp = self.checkpoint
        cp.last_success_at, cp.errors, self.failed = time.time(), 0, False
        self._save()
        if sweep or tally.recorded or tally.rejected:
            self.reporter.log(
                tally.kind,
                source=self.source.url,
                pages=tally.pages,
                operations=tally.operations,
                recorded=tally.recorded,
                rejected=tally.rejected,
                gets=tally.gets,
                requests=self.client.requests - requests_before,
                watched=len(cp.watched),
                durationSeconds=elapsed_since(started),
            )
        self.reporter.polled()
        return tally

    def _failed(self, tally: Tally, reason: str, started: float) -> None:
        cp = self.checkpoint
        cp.errors += 1
        cp.total_errors += 1
        cp.last_error, cp.last_error_at, self.failed = reason, time.time(), True
        with contextlib.suppress(LedgerError):  # the database is the problem; the log line says so
            self._save()
        self.reporter.log(
            "error",
            source=self.source.url,
            poll=tally.kind,
            error=reason,
            pages=tally.pages,
            recorded=tally.recorded,
            durationSeconds=elapsed_since(started),
        )

    def _save(self) -> None:
        self.store.save(self.checkpoint)

    # -- sweeps -----------------------------------------------------------------------------------

    def _sweep(self, tally: Tally) -> None:
        cp = self.checkpoint
        if not cp.sweep_page_token:
            cp.sweep_started_at = time.time()
        token, resumed = cp.sweep_page_token, bool(cp.sweep_page_token)
        while True:
            try:
                page = self._request(lambda t=token: self.client.list_page(self.source.filter, t))  # type: ignore[misc]
            except SourceError as e:
                if not (resumed and not e.retryable):
                    raise
                # A page token kept from before a restart may have expired: sweep from the start.
                self.reporter.log("restart-sweep", source=self.source.url, reason=str(e))
                token, resumed = "", False
                cp.sweep_started_at = time.time()
                continue
            resumed = False
            self._record(page.operations, tally)
            tally.pages += 1
            token = page.next_page_token
            cp.sweep_page_token = token
            if not token:
                cp.last_sweep_at, cp.sweeps = time.time(), cp.sweeps + 1
            self._save()
            if not token:
                return

    # -- hot polls --------------------------------------------------------------------------------

    def _hot(self, tally: Tally) -> None:
        cp = self.checkpoint
        if not cp.watched:
            return
        mode = cp.hot or self.source.hot
        missing = set(cp.watched)
        if mode in ("auto", "filter"):
            try:
                listed = self._list_running(tally)
            except SourceError as e:
                if mode != "auto" or e.status not in ("HTTP 400", "INVALID_ARGUMENT", "UNIMPLEMENTED"):
                    raise
                self.reporter.log("hot-by-get", source=self.source.url, reason=str(e))
                cp.hot = mode = "get"
            else:
                cp.hot = "filter"
                missing -= listed
        self._get_each(sorted(missing), tally)
        self._save()

    def _list_running(self, tally: Tally) -> set[str]:
        user = self.source.filter
        running = f"({user}) AND done = false" if user else "done = false"
        names: set[str] = set()
        token = ""
        while True:
            page = self._request(lambda t=token: self.client.list_page(running, t))  # type: ignore[misc]
            self._record(page.operations, tally)
            tally.pages += 1
            names |= {str(op.get("name")) for op in page.operations}
            token = page.next_page_token
            if not token:
                return names

    def _get_each(self, names: Iterable[str], tally: Tally) -> None:
        batch: list[JSONObject] = []
        for name in names:
            op = self._request(lambda n=name: self.client.get(n))  # type: ignore[misc]
            tally.gets += 1
            if op is None:  # the API no longer has it: its history stays, nothing more to see
                self._unwatch([name])
                continue
            batch.append(op)
            if len(batch) == GET_BATCH:
                self._record(batch, tally)
                batch = []
        self._record(batch, tally)

    # -- recording --------------------------------------------------------------------------------

    def _record(self, operations: list[JSONObject], tally: Tally) -> None:
        """One batch through the snapshot path, then the watch list follows what it saw."""
        if not operations:
            return
        rejected: list[str] = []
        summary = self.ledger.ingest(
            (orjson.dumps(op) for op in operations),
            snapshots=True,
            on_reject=lambda rejection: rejected.append(rejection.reason),
        )
        for number, reason in enumerate(rejected):
            if number < 5:  # a page of the same fault need not flood the log
                self.reporter.log("rejected", source=self.source.url, reason=reason)
        recorded = int(summary["recorded"])
        tally.operations += len(operations)
        tally.recorded += recorded
        tally.rejected += len(rejected)
        self.checkpoint.events_recorded += recorded
        self.reporter.page(self.source.url, len(operations), recorded)
        running = [str(op["name"]) for op in operations if op.get("done") is not True and "name" in op]
        done = [str(op["name"]) for op in operations if op.get("done") is True and "name" in op]
        watched = dict.fromkeys(self.checkpoint.watched)
        watched.update(dict.fromkeys(running))
        self.checkpoint.watched = [name for name in watched if name not in set(done)]

    def _unwatch(self, names: list[str]) -> None:
        gone = set(names)
        self.checkpoint.watched = [name for name in self.checkpoint.watched if name not in gone]

    # -- requests ---------------------------------------------------------------------------------

    def _request(self, call: Callable[[], _T]) -> _T:
        """One request within the rate limit; retryable failures again after a backoff."""
        failures = 0
        while True:
            if not self.limiter.acquire():
                raise Stopped
            try:
                return call()
            except SourceError as e:
                failures += 1
                if not e.retryable or failures > self.backoff.attempts:
                    raise
                delay = self.backoff.delay(failures, e.retry_after)
                self.reporter.log(
                    "retry", source=self.source.url, error=str(e), attempt=failures, delaySeconds=round(delay, 3)
                )
                if self.stop.wait(delay):
                    raise Stopped from None
