"""Every statement over the event log, eventsourcing's table: the append every write makes, reads in
position order (catch-up, follow, export, digest), whole histories by name (commands, ingest, audit),
and the audit's checks against it. Rows are `LogRow`s; the table is written as eventsourcing's
recorders write it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from eventsourcing.persistence import RecordConflictError, StoredEvent

from .base import Cursor, Database, LogRow

_ROW = "originator_id, originator_version, topic, state"


def end_query(db: Database) -> str:
    """SQL for the position of the last event recorded (NULL for an empty log), to select or nest."""
    return f"SELECT MAX({db.position_column}) FROM {db.events_table}"


def log_exists(cursor: Cursor, db: Database) -> bool:
    return db.dialect.table_exists(cursor, db.events_table_name)


def log_end(cursor: Cursor, db: Database) -> int:
    """The position of the last event recorded (0 for an empty log)."""
    cursor.execute(end_query(db))
    return int(cursor.fetchone()[0] or 0)


def _rows(cursor: Cursor) -> list[LogRow]:
    return [LogRow(*row) for row in cursor.fetchall()]


def read_after(cursor: Cursor, db: Database, after: int, limit: int, upto: int | None = None) -> list[LogRow]:
    """Up to `limit` events after position `after` (and at or before `upto`), in position order."""
    return _read(cursor, db, after, upto, limit=limit)


def window_end(cursor: Cursor, db: Database, after: int, size: int, upto: int) -> int:
    """The position that ends the window of the next `size` events after `after` (none past `upto`):
    windows of events, not of positions, whatever gaps the positions have."""
    position = db.position_column
    cursor.execute(
        db.dialect.sql(
            f"SELECT {position} FROM {db.events_table} WHERE {position} > ? AND {position} <= ? "
            f"ORDER BY {position} LIMIT 1 OFFSET ?"
        ),
        (after, upto, size - 1),
    )
    row = cursor.fetchone()
    return int(row[0]) if row else upto


def read_shard(cursor: Cursor, db: Database, after: int, upto: int, shard: int, shards: int) -> list[LogRow]:
    """The events in positions (after, upto] of the operations that fall to `shard` of `shards`
    (by `Dialect.shard_of`, so every event of an operation falls to the same one), in position order."""
    return _read(cursor, db, after, upto, also=(f"{db.dialect.shard_of('originator_id', shards)} = ?", shard))


def _read(
    cursor: Cursor,
    db: Database,
    after: int,
    upto: int | None,
    limit: int | None = None,
    also: tuple[str, int] | None = None,
) -> list[LogRow]:
    """The events after `after` (at or before `upto`, meeting `also`'s condition with its parameter),
    in position order, the first `limit` of them."""
    position = db.position_column
    where, params = f"{position} > ?", [after]
    if upto is not None:
        where += f" AND {position} <= ?"
        params.append(upto)
    if also is not None:
        where += f" AND {also[0]}"
        params.append(also[1])
    limited = ""
    if limit is not None:
        limited = " LIMIT ?"
        params.append(limit)
    cursor.execute(
        db.dialect.sql(f"SELECT {position}, {_ROW} FROM {db.events_table} WHERE {where} ORDER BY {position}{limited}"),
        params,
    )
    return _rows(cursor)


def histories(cursor: Cursor, db: Database, names: Sequence[str]) -> list[LogRow]:
    """Every event of the named operations, by name and then version."""
    rows: list[LogRow] = []
    for start in range(0, len(names), 500):
        part = list(names[start : start + 500])
        in_list, as_array = db.dialect.in_list("originator_id", len(part))
        cursor.execute(
            db.dialect.sql(
                f"SELECT {db.position_column}, {_ROW} FROM {db.events_table} "
                f"WHERE {in_list} ORDER BY originator_id, originator_version"
            ),
            (part,) if as_array else part,
        )
        rows += _rows(cursor)
    return rows


def closed_in(cursor: Cursor, db: Database, since: int, to: int) -> list[tuple[int, str, int]]:
    """(position, name, version) of each event at or before `since` whose operation's next event is
    in (since, to], by position: the states that began before a range of the log and ended in it."""
    position = db.position_column
    cursor.execute(
        db.dialect.sql(
            f"SELECT p.{position}, p.originator_id, p.originator_version FROM {db.events_table} e "
            f"JOIN {db.events_table} p ON p.originator_id = e.originator_id "
            "AND p.originator_version = e.originator_version - 1 "
            f"WHERE e.{position} > ? AND e.{position} <= ? AND p.{position} <= ? ORDER BY p.{position}"
        ),
        (since, to, since),
    )
    return [(int(at), str(name), int(version)) for at, name, version in cursor.fetchall()]


def latest_version(cursor: Cursor, db: Database, name: str) -> int:
    """The version of the operation's last event (0 when it has none)."""
    statement = f"SELECT MAX(originator_version) FROM {db.events_table} WHERE originator_id = ?"
    cursor.execute(db.dialect.sql(statement), (name,))
    return int(cursor.fetchone()[0] or 0)


def by_name(cursor: Cursor, db: Database, chunk: int) -> Iterator[list[LogRow]]:
    """The whole log in (name, version) order, `chunk` rows a statement, each read from where the
    last ended: a row value compared in the (name, version) key is an index seek."""
    after: tuple[str, int] | None = None
    while True:
        where, params = "", []
        if after is not None:
            where = "WHERE (originator_id, originator_version) > (?, ?)"
            params = [after[0], after[1]]
        cursor.execute(
            db.dialect.sql(
                f"SELECT {db.position_column}, {_ROW} FROM {db.events_table} {where} "
                "ORDER BY originator_id, originator_version LIMIT ?"
            ),
            [*params, chunk],
        )
        rows = _rows(cursor)
        yield rows
        if len(rows) < chunk:
            return
        after = (rows[-1].name, rows[-1].version)


def names_without_events(cursor: Cursor, db: Database, table: str) -> list[str]:
    """The names in `table` (a view's, quoted) that have no event in the log at all."""
    cursor.execute(
        f"SELECT DISTINCT name FROM {table} v WHERE NOT EXISTS "
        f"(SELECT 1 FROM {db.events_table} e WHERE e.originator_id = v.name)"
    )
    return [name for (name,) in cursor.fetchall()]


def append(cursor: Cursor, db: Database, stored: Sequence[StoredEvent], after: int) -> list[int]:
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
