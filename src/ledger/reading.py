"""Reads: one operation now or as it was, list pages, a history, the log's end and the views' lag.

Views answer everything but a history, which is the log's own; each read first brings the views up to
what the log holds (catch-up does nothing when they are there), so a reader sees its own writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .domain.errors import Code, LedgerError, not_found
from .domain.rendering import render_event
from .domain.timestamps import Timestamp
from .domain.values import JSONObject
from .projections import queries
from .projections.engine import ProjectionEngine
from .storage import log
from .storage.codec import decode_stored
from .storage.store import Store


class Reader:
    def __init__(self, store: Store, engine: ProjectionEngine) -> None:
        self.store, self.db, self.engine = store, store.db, engine

    def operation(self, name: str, version: int | None = None, when: Timestamp | None = None) -> bytes:
        """The Operation JSON bytes the view stores: now, at a version, or as of a time."""
        self.engine.catch_up()
        with self.db.quick() as cursor:
            d = self.db.dialect
            if version is not None:
                body = queries.version_body(cursor, d, name, version)
            elif when is not None:
                body = queries.body_as_of(cursor, d, name, when)
            else:
                body = queries.operation_body(cursor, d, name)
        if body is None and version is not None:
            with self.db.quick() as cursor:
                latest = log.latest_version(cursor, self.db, name)
            if 0 < latest < version:
                raise LedgerError(Code.NOT_FOUND, f"operation {name!r} has no version {version} (latest: {latest})")
        if body is None:
            raise not_found(name)
        return body

    def page(self, request: queries.ListRequest) -> queries.Page:
        self.engine.catch_up()
        with self.db.read() as cursor:
            position = self.engine.positions_in(cursor)["operations"]
            return queries.list_page(cursor, self.db.dialect, request, position)

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
