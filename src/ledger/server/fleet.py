"""The fleet in memory: one small row per live operation, for the explorer's timeline and facets and
for the metrics of operations by state, events by type and durations by verb.

It is read through the Ledger's own feeds (`export` of operations and of events, from the position
it last reached), so it never needs to know the storage, and each refresh reads only what was
recorded since the last one. An operation appears once its view row does and goes when its Deleted
event is read. The row keeps what a timeline bar needs: parent, state, verb, create and end time.

Facets "as of" a past time are worked out from these rows (created by then; ended by then or still
running), so an operation deleted since is not counted there, while `list --as-of` still shows it.
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from .. import Ledger
from ..domain.timestamps import parse_timestamp
from .metrics import Metrics

_NS_PER_MS = 1_000_000
STATE_ORDER = ("RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")


class Row(NamedTuple):
    parent: str
    state: str
    verb: str
    create_ms: int
    end_ms: int | None


class _LineSink(io.BytesIO):
    """A binary stream that hands each JSON line written to it to `take`, keeping nothing."""

    def __init__(self, take: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self._take = take
        self._partial = b""

    def write(self, data: Any) -> int:
        chunk = self._partial + bytes(data)
        *lines, self._partial = chunk.split(b"\n")
        for line in lines:
            if line:
                self._take(orjson.loads(line))
        return len(data)


@dataclass(frozen=True)
class Window:
    start_ms: int
    end_ms: int
    limit: int


class FleetIndex:
    def __init__(self, metrics: Metrics, min_interval: float = 0.5) -> None:
        self.metrics = metrics
        self.min_interval = min_interval  # refreshes closer together than this read nothing
        self.rows: dict[str, Row] = {}
        self._operations_position = 0
        self._events_position = 0
        self._refreshed = -1e9
        self._lock = threading.Lock()
        self._strings: dict[str, str] = {}  # parents and verbs repeat: one string object each

    def refresh(self, ledger: Ledger, *, force: bool = False) -> None:
        """Read what was recorded since the last refresh (operations first, then events, so that a
        Deleted event read now is never undone by an older operation row)."""
        with self._lock:
            if not force and time.monotonic() - self._refreshed < self.min_interval:
                return
            done = ledger.export("operations", since=self._operations_position, out=_LineSink(self._take_operation))
            self._operations_position = int(done["toPosition"])
            done = ledger.export("events", since=self._events_position, out=_LineSink(self._take_event))
            self._events_position = int(done["toPosition"])
            self._refreshed = time.monotonic()
            counts = Counter(row.state for row in self.rows.values())
            for state in STATE_ORDER:
                self.metrics.operations.labels(state).set(counts.get(state, 0))
            self.metrics.log_end.set(self._events_position)

    def _intern(self, text: str | None) -> str:
        value = text or ""
        return self._strings.setdefault(value, value)

    def _take_operation(self, record: dict[str, Any]) -> None:
        name = record["name"]
        end = record["endTime"]
        row = Row(
            self._intern(record["parent"]),
            self._intern(record["state"]),
            self._intern(record["verb"]),
            parse_timestamp(record["createTime"], "createTime") // _NS_PER_MS,
            parse_timestamp(end, "endTime") // _NS_PER_MS if end else None,
        )
        before = self.rows.get(name)
        if record["durationSeconds"] is not None and (before is None or before.end_ms is None):
            self.metrics.durations.labels(row.verb or "unspecified").observe(record["durationSeconds"])
        self.rows[name] = row

    def _take_event(self, event: dict[str, Any]) -> None:
        self.metrics.events.labels(event["type"]).inc()
        if event["type"] == "Deleted":
            self.rows.pop(event["name"], None)

    # -- questions the explorer asks ------------------------------------------------------------

    def visible(self, may_list: Callable[[str], bool]) -> Iterable[tuple[str, Row]]:
        """The rows in collections the caller may list (asked once per parent)."""
        allowed: dict[str, bool] = {}
        for name, row in tuple(self.rows.items()):  # a copy made at once, while a refresh may be adding
            ok = allowed.get(row.parent)
            if ok is None:
                ok = allowed[row.parent] = may_list(row.parent)
            if ok:
                yield name, row

    def facets(self, rows: Iterable[tuple[str, Row]], as_of_ms: int | None) -> dict[str, Any]:
        states: Counter[str] = Counter()
        verbs: Counter[str] = Counter()
        parents: Counter[str] = Counter()
        for _, row in rows:
            state = row.state if as_of_ms is None else state_at(row, as_of_ms)
            if state is None:
                continue
            states[state] += 1
            verbs[row.verb] += 1
            parents[row.parent] += 1
        return {
            "total": sum(states.values()),
            "state": {s: states[s] for s in STATE_ORDER},
            "verb": dict(verbs.most_common(20)),
            "parent": dict(parents.most_common(20)),
            "parents": len(parents),
        }

    def timeline(self, rows: Iterable[tuple[str, Row]], window: Window) -> dict[str, Any]:
        """Operations whose span crosses the window, oldest first, as columns (small JSON)."""
        crossing = sorted(
            (
                (row.create_ms, name, row)
                for name, row in rows
                if row.create_ms <= window.end_ms and (row.end_ms is None or row.end_ms >= window.start_ms)
            ),
            key=lambda item: (item[0], item[1]),
        )
        total = len(crossing)
        if total > window.limit:  # keep the ones nearest the window's middle
            middle = (window.start_ms + window.end_ms) // 2
            keep = sorted(crossing, key=lambda item: abs(item[0] - middle))[: window.limit]
            crossing = sorted(keep, key=lambda item: (item[0], item[1]))
        verbs: dict[str, int] = {}
        columns: dict[str, list[Any]] = {"name": [], "state": [], "verb": [], "create": [], "end": []}
        for create_ms, name, row in crossing:
            columns["name"].append(name)
            columns["state"].append(STATE_ORDER.index(row.state) if row.state in STATE_ORDER else 0)
            columns["verb"].append(verbs.setdefault(row.verb, len(verbs)))
            columns["create"].append(create_ms)
            columns["end"].append(row.end_ms)
        return {
            "from": window.start_ms,
            "to": window.end_ms,
            "total": total,
            "shown": len(crossing),
            "states": STATE_ORDER,
            "verbs": list(verbs),
            **columns,
        }

    def extent(self, rows: Iterable[tuple[str, Row]]) -> tuple[int, int] | None:
        """The earliest create and the latest create or end time, in ms."""
        low, high = None, None
        for _, row in rows:
            last = row.end_ms if row.end_ms is not None else row.create_ms
            low = row.create_ms if low is None or row.create_ms < low else low
            high = last if high is None or last > high else high
        return None if low is None or high is None else (low, high)


def state_at(row: Row, at_ms: int) -> str | None:
    """The state as of a time: absent before its creation, running until its end."""
    if row.create_ms > at_ms:
        return None
    if row.state == "RUNNING" or (row.end_ms is not None and row.end_ms > at_ms):
        return "RUNNING"
    return row.state
