"""Following the log: event JSON as events are recorded, surviving the database going away."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from .domain.errors import Code, LedgerError
from .domain.rendering import render_event
from .domain.values import JSONObject
from .storage import log
from .storage.codec import decode_stored
from .storage.errors import translated_errors
from .storage.store import Store

_log = logging.getLogger("ledger")
BATCH = 500


def follow(
    store: Store, position: int, *, poll_interval: float, stop: Callable[[], bool] | None
) -> Iterator[JSONObject]:
    """Event JSON after `position`, as events are recorded, until `stop()` says so.

    When the database cannot be reached it waits (longer each time, up to 5 s), reconnects and goes
    on from its position. An event that cannot be decoded is skipped with a warning: audit reports it.
    """
    db = store.db
    waited = poll_interval
    while not (stop and stop()):
        try:
            with translated_errors(store.backend), db.read() as cursor:
                rows = log.read_after(cursor, db, position, BATCH)
        except LedgerError as e:
            if e.code not in (Code.UNAVAILABLE, Code.ABORTED):
                raise
            _log.warning("follow: %s; retrying", e.message)
            db.close()  # reconnect on the next read
            time.sleep(waited)
            waited = min(waited * 2, 5.0)
            continue
        waited = poll_interval
        for row in rows:
            position = int(row.position)
            try:
                event = decode_stored(row.name, row.version, row.topic, row.state, store.transcoder)
            except ValueError as e:  # audit reports it; a follower must not stop at it for ever
                _log.warning("follow: skipped the event at position %d: %s", position, e)
                continue
            yield render_event(event, position)
        if len(rows) < BATCH:
            time.sleep(poll_interval)
