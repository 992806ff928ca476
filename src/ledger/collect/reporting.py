"""What the collector tells on stderr: one JSON line per sweep (and per hot poll, retry or failure),
for log collectors, and on a terminal a progress line that the next log line replaces."""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any

import orjson

from ..domain.timestamps import format_timestamp, now


class Reporter:
    def __init__(self, stream: IO[str] | None = None, *, progress: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.progress = self.stream.isatty() if progress is None else progress
        self._lock = threading.Lock()
        self._totals = {"pages": 0, "operations": 0, "recorded": 0}
        self._shown = False
        self.polls = 0  # polls ended, successful or not
        self.ended = threading.Condition(self._lock)

    def polled(self) -> None:
        """A poll (sweep or hot) has ended: for whoever waits on `ended`."""
        with self.ended:
            self.polls += 1
            self.ended.notify_all()

    def log(self, event: str, **fields: Any) -> None:
        """One structured log line: time, event, then the fields given."""
        line = orjson.dumps({"time": format_timestamp(now()), "event": event, **fields}).decode()
        with self._lock:
            self._clear()
            self.stream.write(line + "\n")
            self.stream.flush()

    def page(self, source: str, operations: int, recorded: int) -> None:
        """A page read and recorded: the running totals, on a terminal only."""
        with self._lock:
            self._totals["pages"] += 1
            self._totals["operations"] += operations
            self._totals["recorded"] += recorded
            if not self.progress:
                return
            t = self._totals
            self.stream.write(
                f"\rcollect: {t['pages']} pages, {t['operations']} operations seen, {t['recorded']} events recorded"
                f" (last: {source[:60]})\x1b[K"
            )
            self.stream.flush()
            self._shown = True

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self._shown = False


def elapsed_since(start: float) -> float:
    return round(time.monotonic() - start, 3)
