"""The views' rows as analytics feeds: operations whose latest event is in a range of positions, and
state intervals that began or ended in one, in a stable order read a chunk at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..domain.timestamps import format_timestamp, parse_timestamp
from ..storage.base import Cursor, Dialect
from .views import sql_view


def _time(value: str | None) -> str | None:
    return format_timestamp(parse_timestamp(value, "time")) if value else None


def operations(cursor: Cursor, d: Dialect, since: int, to: int, chunk: int) -> Iterator[dict[str, Any]]:
    """Operations whose latest event is in (since, to], as they are now, by position then name."""
    columns = "name, parent, state, verb, target, create_time, end_time, error_code, cancel_requested, "
    columns += "metadata_type, version, position"
    after = (since, "")
    while True:
        cursor.execute(
            d.sql(
                f"SELECT {columns} FROM {sql_view(d, 'operations')} WHERE position > ? AND position <= ? "
                "AND (position > ? OR (position = ? AND name > ?)) ORDER BY position, name LIMIT ?"
            ),
            (since, to, after[0], after[0], after[1], chunk),
        )
        batch = cursor.fetchall()
        for name, parent, state, verb, target, created, ended, code, cancelled, kind, version, position in batch:
            start, end = parse_timestamp(created, "createTime"), parse_timestamp(ended, "endTime") if ended else None
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


def intervals(cursor: Cursor, d: Dialect, since: int, to: int, chunk: int) -> Iterator[dict[str, Any]]:
    """State intervals that began or ended in (since, to]; an end after `to` is left open."""
    columns = "name, parent, version, state, verb, target, valid_from_time, valid_to_time, valid_from_position, "
    columns += "valid_to_position, error_code, cancel_requested, metadata_type"
    after = (-1, "", 0)  # an interval that began before `since` and ended after it is exported again, closed
    touched = (
        "((valid_from_position > ? AND valid_from_position <= ?) OR (valid_to_position > ? AND valid_to_position <= ?))"
    )
    while True:
        cursor.execute(
            d.sql(
                f"SELECT {columns} FROM {sql_view(d, 'versions')} WHERE {touched} AND (valid_from_position > ? "
                "OR (valid_from_position = ? AND (name > ? OR (name = ? AND version > ?)))) "
                "ORDER BY valid_from_position, name, version LIMIT ?"
            ),
            (since, to, since, to, after[0], after[0], after[1], after[1], after[2], chunk),
        )
        batch = cursor.fetchall()
        for name, parent, version, state, verb, target, start, end, start_at, end_at, code, cancelled, kind in batch:
            yield {
                "name": name,
                "parent": parent,
                "version": int(version),
                "state": state,
                "verb": verb,
                "target": target,
                "validFrom": _time(start),
                "validTo": _time(end) if end_at is not None and int(end_at) <= to else None,
                "validFromPosition": int(start_at),
                "validToPosition": int(end_at) if end_at is not None and int(end_at) <= to else None,
                "errorCode": code,
                "cancelRequested": bool(cancelled),
                "metadataType": kind,
            }
        if len(batch) < chunk:
            return
        name, _, version, *_, start_at, _, _, _, _ = batch[-1]
        after = (int(start_at), name, int(version))
