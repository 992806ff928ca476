"""Analytics feeds: events, operations or intervals, as JSON lines, CSV or Parquet, from a position on.

- events: every event after `since` in the SPEC's event JSON, in position order.
- operations: one flat row per live operation whose latest event is after `since`, as it is now.
- intervals: one row per state interval (versions view) that began or ended after `since`.

Rows are read inside one snapshot and bounded by a position taken at its start, so an export covers
exactly `(since, to]`. In directory mode a manifest records each file's range, and the next export
starts where the last one ended: run on a schedule, the files hold every event exactly once.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from eventsourcing.persistence import Transcoder

from .domain.errors import Code, LedgerError, invalid
from .domain.rendering import render_event
from .domain.timestamps import format_timestamp, parse_timestamp
from .storage import log
from .storage.backend import decode_stored
from .storage.database import ViewDatabase

WHATS = ("events", "operations", "intervals")
FORMATS = ("jsonl", "csv", "parquet")
CHUNK = 5000

COLUMNS = {
    "events": ("type", "name", "occurredAt", "version", "position", "recordedAt", "hash", "fields"),
    "operations": (
        "name", "parent", "state", "verb", "target", "createTime", "endTime", "durationSeconds",
        "errorCode", "cancelRequested", "metadataType", "version", "position",
    ),
    "intervals": (
        "name", "parent", "version", "state", "verb", "target", "validFrom", "validTo",
        "validFromPosition", "validToPosition", "errorCode", "cancelRequested", "metadataType",
    ),
}  # fmt: skip
TIME_COLUMNS = {"occurredAt", "recordedAt", "createTime", "endTime", "validFrom", "validTo"}
INT_COLUMNS = {"version", "position", "errorCode", "validFromPosition", "validToPosition"}


@dataclass(frozen=True)
class Export:
    what: str
    format: str
    since: int
    to: int
    rows: int
    file: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "format": self.format,
            "fromPosition": self.since,
            "toPosition": self.to,
            "rows": self.rows,
            "file": self.file,
        }


def rows(
    cursor: Any, db: ViewDatabase, transcoder: Transcoder, what: str, since: int, to: int
) -> Iterator[dict[str, Any]]:
    """The rows of one feed in (since, to], as flat dicts (events keep their nested fields)."""
    if what == "events":
        yield from _events(cursor, db, transcoder, since, to)
    elif what == "operations":
        yield from _operations(cursor, db, since, to)
    else:
        yield from _intervals(cursor, db, since, to)


def _events(cursor: Any, db: ViewDatabase, transcoder: Transcoder, since: int, to: int) -> Iterator[dict[str, Any]]:
    after = since
    while after < to:
        batch = log.read_after(cursor, db, after, CHUNK, upto=to)
        if not batch:
            return
        for position, name, version, topic, state in batch:
            event = decode_stored(name, version, topic, state, transcoder)
            yield render_event(event, int(position))
        after = int(batch[-1][0])


def _time(value: str | None) -> str | None:
    return format_timestamp(parse_timestamp(value, "time")) if value else None


def _operations(cursor: Any, db: ViewDatabase, since: int, to: int) -> Iterator[dict[str, Any]]:
    d = db.dialect
    columns = "name, parent, state, verb, target, create_time, end_time, error_code, cancel_requested, "
    columns += "metadata_type, version, position"
    after = (since, "")
    while True:
        cursor.execute(
            d.sql(
                f"SELECT {columns} FROM {d.table('ledger_operations')} WHERE position > ? AND position <= ? "
                "AND (position > ? OR (position = ? AND name > ?)) ORDER BY position, name LIMIT ?"
            ),
            (since, to, after[0], after[0], after[1], CHUNK),
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
        if len(batch) < CHUNK:
            return
        after = (int(batch[-1][-1]), batch[-1][0])


def _intervals(cursor: Any, db: ViewDatabase, since: int, to: int) -> Iterator[dict[str, Any]]:
    d = db.dialect
    columns = "name, parent, version, state, verb, target, valid_from_time, valid_to_time, valid_from_position, "
    columns += "valid_to_position, error_code, cancel_requested, metadata_type"
    after = (-1, "", 0)  # an interval that began before `since` and ended after it is exported again, closed
    touched = (
        "((valid_from_position > ? AND valid_from_position <= ?) OR (valid_to_position > ? AND valid_to_position <= ?))"
    )
    while True:
        cursor.execute(
            d.sql(
                f"SELECT {columns} FROM {d.table('ledger_versions')} WHERE {touched} AND (valid_from_position > ? "
                "OR (valid_from_position = ? AND (name > ? OR (name = ? AND version > ?)))) "
                "ORDER BY valid_from_position, name, version LIMIT ?"
            ),
            (since, to, since, to, after[0], after[0], after[1], after[1], after[2], CHUNK),
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
        if len(batch) < CHUNK:
            return
        last = batch[-1]
        after = (int(last[8]), last[0], int(last[2]))


# -- writing ------------------------------------------------------------------------------------------


def write(what: str, fmt: str, records: Iterator[dict[str, Any]], out: IO[bytes]) -> int:
    """Write records to a binary stream in the format; return how many."""
    if fmt == "jsonl":
        count = 0
        for record in records:
            out.write(orjson.dumps(record) + b"\n")
            count += 1
        return count
    if fmt == "csv":
        return _write_csv(what, records, out)
    return _write_parquet(what, records, out)


def _write_csv(what: str, records: Iterator[dict[str, Any]], out: IO[bytes]) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.DictWriter(text, fieldnames=COLUMNS[what], lineterminator="\n")
    writer.writeheader()
    count = 0
    for record in records:
        writer.writerow(_flat_event(record) if what == "events" else record)
        count += 1
    text.detach()
    return count


def _flat_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event as one row: the common columns, and the type's own fields as one JSON text."""
    common = {k: event.get(k) for k in COLUMNS["events"] if k != "fields"}
    own = {k: v for k, v in event.items() if k not in common}
    return {**common, "fields": orjson.dumps(own).decode()}


def parquet_schema(what: str) -> Any:
    import pyarrow as pa

    def kind(column: str) -> Any:
        if column in TIME_COLUMNS:
            return pa.timestamp("us", tz="UTC")
        if column in INT_COLUMNS:
            return pa.int64()
        if column == "durationSeconds":
            return pa.float64()
        if column == "cancelRequested":
            return pa.bool_()
        return pa.string()

    return pa.schema([(column, kind(column)) for column in COLUMNS[what]])


def _write_parquet(what: str, records: Iterator[dict[str, Any]], out: IO[bytes]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise LedgerError(
            Code.FAILED_PRECONDITION, "Parquet export needs pyarrow: pip install 'ledger[parquet]'"
        ) from None
    schema = parquet_schema(what)
    count = 0
    with pq.ParquetWriter(out, schema) as writer:
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            columns = {c: [_parquet_value(c, r.get(c)) for r in batch] for c in COLUMNS[what]}
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))

        for record in records:
            batch.append(_flat_event(record) if what == "events" else record)
            count += 1
            if len(batch) == CHUNK:
                flush()
                batch = []
        if batch or not count:
            flush()
    return count


def _parquet_value(column: str, value: Any) -> Any:
    if column in TIME_COLUMNS and value is not None:
        return datetime.fromtimestamp(0, UTC) + _micros(parse_timestamp(value, column))
    return value


def _micros(ns: int) -> Any:
    from datetime import timedelta

    return timedelta(microseconds=ns // 1000)


# -- directories and manifests --------------------------------------------------------------------------


MANIFEST = "manifest.json"


def resume_position(directory: Path, what: str) -> int:
    """Where the last export of `what` into this directory ended (0 when there was none)."""
    manifest = _read_manifest(directory)
    return max((e["toPosition"] for e in manifest["exports"] if e["what"] == what), default=0)


def write_into_directory(
    directory: Path, what: str, fmt: str, since: int, to: int, records: Callable[[], Iterator[dict[str, Any]]]
) -> Export:
    """A new file for (since, to] and a manifest entry for it; nothing when the range is empty.

    The file is written under a temporary name and renamed, then the manifest replaced the same way:
    interrupted, a rerun writes the same range again, under the same name.
    """
    if to <= since:
        return Export(what, fmt, since, to, 0, None)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{what}-{since + 1:012d}-{to:012d}.{fmt}"
    listed = {e["file"] for e in _read_manifest(directory)["exports"]}
    for orphan in directory.glob(f"{what}-{since + 1:012d}-*.{fmt}"):
        if orphan.name not in listed:  # written by a run that stopped before its manifest entry
            orphan.unlink()
    partial = directory / f".{name}.partial"
    try:
        with open(partial, "wb") as out:
            count = write(what, fmt, records(), out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, directory / name)
    finally:
        partial.unlink(missing_ok=True)
    manifest = _read_manifest(directory)
    manifest["exports"].append(
        {
            "what": what,
            "format": fmt,
            "file": name,
            "fromPosition": since,
            "toPosition": to,
            "rows": count,
            "exportedAt": format_timestamp(parse_timestamp(datetime.now(UTC), "now")),
        }
    )
    staged = directory / f".{MANIFEST}.partial"
    staged.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(staged, directory / MANIFEST)
    return Export(what, fmt, since, to, count, str(directory / name))


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.exists():
        return {"exports": []}
    try:
        manifest = orjson.loads(path.read_bytes())
        assert isinstance(manifest, dict)
        assert isinstance(manifest["exports"], list)
    except (orjson.JSONDecodeError, AssertionError, KeyError):
        raise invalid("out", f"{path} is not an export manifest this ledger wrote") from None
    return manifest
