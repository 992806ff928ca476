"""Analytics feeds: operations whose latest event is in a range of positions (the operations view's
rows), and state intervals that began or ended in one (folded from the log), in a stable order read
a chunk at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from eventsourcing.persistence import Transcoder

from ..domain.operation import State
from ..domain.timestamps import format_timestamp
from ..storage import log
from ..storage.base import Cursor, Database, Dialect
from .history import changes_until, until_position
from .rows import COLUMN_AT, stored_time
from .views import Change, sql_view


def operations(cursor: Cursor, d: Dialect, since: int, to: int, chunk: int) -> Iterator[dict[str, Any]]:
    """Operations whose latest event is in (since, to], as they are now, by position then name; a
    deleted one is not there (its Deleted event is in the events feed)."""
    columns = "name, parent, state, verb, target, create_time, end_time, error_code, cancel_requested, "
    columns += "metadata_type, version, position"
    after = (since, "")
    while True:
        cursor.execute(
            d.sql(
                f"SELECT {columns} FROM {sql_view(d, 'operations')} WHERE position > ? AND position <= ? "
                "AND (position > ? OR (position = ? AND name > ?)) AND state <> ? ORDER BY position, name LIMIT ?"
            ),
            (since, to, after[0], after[0], after[1], State.DELETED.value, chunk),
        )
        batch = cursor.fetchall()
        for name, parent, state, verb, target, created, ended, code, cancelled, kind, version, position in batch:
            start, end = stored_time(created), stored_time(ended) if ended else None
            yield {
                "name": name,
                "parent": parent,
                "state": state,
                "verb": verb,
                "target": target,
                "createTime": format_timestamp(start),
                "endTime": format_timestamp(end) if end is not None else None,
                "durationSeconds": (end - start) / 1e9 if end is not None else None,
                "errorCode": code,
                "cancelRequested": bool(cancelled),
                "metadataType": kind,
                "version": int(version),
                "position": int(position),
            }
        if len(batch) < chunk:
            return
        after = (int(batch[-1][-1]), batch[-1][0])


def intervals(
    cursor: Cursor, db: Database, transcoder: Transcoder, since: int, to: int, chunk: int
) -> Iterator[dict[str, Any]]:
    """State intervals that began or ended in (since, to], by the position they began at; an end
    after `to` is left open. Folded from the log, a chunk of its events at a time: an interval is the
    state after one event, until the operation's next event (a deletion opens none)."""
    # An interval that began before `since` and ends in the range is exported again, closed. Their
    # starts are held at once: as many as the operations the range touches, none from position 0.
    begun = log.closed_in(cursor, db, since, to) if since > 0 else []
    for start in range(0, len(begun), chunk):
        part = begun[start : start + chunk]
        folded = changes_until(cursor, db, transcoder, sorted({n for _, n, _ in part}), until_position(to))
        for _, name, version in part:
            yield from _interval(folded.get(name, []), version, to)
    after = since
    while after < to:
        events = log.read_after(cursor, db, after, chunk, upto=to)
        if not events:
            return
        folded = changes_until(cursor, db, transcoder, sorted({e.name for e in events}), until_position(to))
        for event in events:
            yield from _interval(folded.get(event.name, []), int(event.version), to)
        after = int(events[-1].position)


def _interval(changes: list[Change], version: int, to: int) -> Iterator[dict[str, Any]]:
    """The interval the operation's event `version` began (none for a deletion, or for an event its
    fold did not reach), closed by the next event when that is at or before `to`."""
    if len(changes) < version or changes[version - 1].deleted:
        return
    began, row = changes[version - 1], changes[version - 1].row
    ended = changes[version] if len(changes) > version and changes[version].position <= to else None
    yield {
        "name": began.name,
        "parent": row[COLUMN_AT["parent"]],
        "version": began.version,
        "state": row[COLUMN_AT["state"]],
        "verb": row[COLUMN_AT["verb"]],
        "target": row[COLUMN_AT["target"]],
        "validFrom": format_timestamp(began.occurred_at),
        "validTo": format_timestamp(ended.occurred_at) if ended else None,
        "validFromPosition": began.position,
        "validToPosition": ended.position if ended else None,
        "errorCode": row[COLUMN_AT["error_code"]],
        "cancelRequested": bool(row[COLUMN_AT["cancel_requested"]]),
        "metadataType": row[COLUMN_AT["metadata_type"]],
    }
