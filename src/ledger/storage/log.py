"""Direct access to the stored event log: reads for the paths that read it in bulk (projection,
audit, ingest, digest), and the append every write makes. Rows are `(position, name, version, topic,
state)`; the table is eventsourcing's, written as its recorders write it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import RecordConflictError, StoredEvent

from .database import ViewDatabase

Row = tuple[int, str, int, str, bytes]


def end_query(db: ViewDatabase) -> str:
    """SQL for the position of the last event recorded (NULL for an empty log), to select or nest."""
    return f"SELECT MAX({db.position_column}) FROM {db.events_table}"


def log_end(cursor: Any, db: ViewDatabase) -> int:
    """The position of the last event recorded (0 for an empty log)."""
    cursor.execute(end_query(db))
    return int(cursor.fetchone()[0] or 0)


def read_after(cursor: Any, db: ViewDatabase, after: int, limit: int, upto: int | None = None) -> list[Row]:
    """Up to `limit` events after position `after` (and at or before `upto`), in position order."""
    position = db.position_column
    bound, params = ("", [after]) if upto is None else (f" AND {position} <= ?", [after, upto])
    cursor.execute(
        db.dialect.sql(
            f"SELECT {position}, originator_id, originator_version, topic, state FROM {db.events_table} "
            f"WHERE {position} > ?{bound} ORDER BY {position} LIMIT ?"
        ),
        [*params, limit],
    )
    return list(cursor.fetchall())


def histories(cursor: Any, db: ViewDatabase, names: Sequence[str]) -> list[Row]:
    """Every event of the named operations, by name and then version."""
    rows: list[Row] = []
    for start in range(0, len(names), 500):
        part = list(names[start : start + 500])
        in_list, as_array = db.dialect.in_list("originator_id", len(part))
        cursor.execute(
            db.dialect.sql(
                f"SELECT {db.position_column}, originator_id, originator_version, topic, state FROM {db.events_table} "
                f"WHERE {in_list} ORDER BY originator_id, originator_version"
            ),
            (part,) if as_array else part,
        )
        rows += cursor.fetchall()
    return rows


def append(cursor: Any, db: ViewDatabase, stored: Sequence[StoredEvent], after: int) -> list[int]:
    """Append events inside `db.recording`, under `db.lock_log`, to a log that ends at `after`; their
    positions. An event whose (name, version) is taken raises RecordConflictError, as eventsourcing's."""
    try:
        positions = db.insert_events(
            cursor, [(str(s.originator_id), s.originator_version, s.topic, s.state) for s in stored]
        )
    except db.conflict_error as e:
        raise RecordConflictError(e) from e
    if positions is not None:
        return positions
    # Under the lock every position after `after` is one of these events.
    cursor.execute(
        db.dialect.sql(
            f"SELECT {db.position_column}, originator_id, originator_version FROM {db.events_table} "
            f"WHERE {db.position_column} > ?"
        ),
        (after,),
    )
    found = {(name, version): int(position) for position, name, version in cursor.fetchall()}
    return [found[str(s.originator_id), s.originator_version] for s in stored]
