"""Reads: one operation now or as it was, list pages, a history, the log's end and the views' lag.

The operations view answers reads of the present; the past (a version, a time, the later pages of a
listing) is folded from the log, which keeps every state as the events that made it. Each read first
brings the view up to what the log holds (catch-up does nothing when it is there), so a reader sees
its own writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .domain.errors import Code, LedgerError, not_found
from .domain.rendering import render_event
from .domain.timestamps import Timestamp
from .domain.values import JSONObject
from .projections import history, queries
from .projections.engine import ProjectionEngine, behind
from .projections.rows import COLUMN_AT
from .storage import log
from .storage.codec import decode_stored
from .storage.store import Store


class Reader:
    def __init__(self, store: Store, engine: ProjectionEngine) -> None:
        self.store, self.db, self.engine = store, store.db, engine

    def operation(self, name: str, version: int | None = None, when: Timestamp | None = None) -> bytes:
        """The Operation JSON bytes: now, as the view stores them, or at a version or as of a time,
        folded from the operation's events."""
        if version is None and when is None:
            body = self._current_body(name)
            if body is None:
                raise not_found(name)
            return body
        self.engine.catch_up()
        if version is not None:
            until = history.until_version(version)
        else:
            assert when is not None
            until = history.until_time(when)
        with self.db.quick() as cursor:
            then = history.past_changes(cursor, self.db, self.store.transcoder, [name], until).get(name)
        if then is not None and not then.deleted and (version is None or then.version == version):
            return bytes(then.row[COLUMN_AT["body"]])
        if version is not None:
            with self.db.quick() as cursor:
                latest = log.latest_version(cursor, self.db, name)
            if 0 < latest < version:
                raise LedgerError(Code.NOT_FOUND, f"operation {name!r} has no version {version} (latest: {latest})")
        raise not_found(name)

    def _current_body(self, name: str) -> bytes | None:
        """The view's body, read with the views' lag in one statement: a body read while the views
        were behind is read again once they have caught up."""
        d = self.db.dialect
        with self.db.quick() as cursor:
            body, lag = queries.operation_body(cursor, d, name, self.engine.lag_sql())
        if behind(lag) and not self.db.read_only:
            self.engine.catch_up()
            with self.db.quick() as cursor:
                body, _ = queries.operation_body(cursor, d, name)
        return body

    def page(self, request: queries.ListRequest) -> queries.Page:
        self.engine.catch_up()
        with self.db.read() as cursor:
            position = self.engine.positions_in(cursor)["operations"]

            def past(names: list[str], until: history.Until) -> dict[str, tuple[Any, ...]]:
                return history.past_rows(cursor, self.db, self.store.transcoder, names, until)

            return queries.list_page(cursor, self.db.dialect, request, position, past)

    def history(self, name: str) -> list[JSONObject]:
        """Every event of the operation, oldest first, with version, position, recordedAt and hash."""
        transcoder = self.store.transcoder
        with self.db.quick() as cursor:
            rows = log.histories(cursor, self.db, [name])
            rendered = [
                render_event(decode_stored(r.name, r.version, r.topic, r.state, transcoder), int(r.position))
                for r in rows
            ]
        if not rendered:
            raise not_found(name)
        return rendered

    def log_end(self) -> int:
        with self.db.read() as cursor:
            return self.engine.log_end(cursor)


def wait_until_done(get: Callable[[], JSONObject], timeout: float | None, poll_interval: float) -> JSONObject:
    """Poll `get()` until the operation it returns is done or `timeout` seconds pass; its latest state."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        op = get()
        if op.get("done") or (deadline is not None and time.monotonic() >= deadline):
            return op
        pause = poll_interval if deadline is None else min(poll_interval, max(0.0, deadline - time.monotonic()))
        time.sleep(pause)
