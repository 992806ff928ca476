"""Analytics feeds: events, operations or intervals, as JSON lines, CSV or Parquet, from a position on.

- events: every event after `since` in the SPEC's event JSON, in position order.
- operations: one flat row per live operation whose latest event is after `since`, as it is now.
- intervals: one row per state interval (folded from the log) that began or ended after `since`.

Rows are read inside one snapshot and bounded by a position taken at its start, so an export covers
exactly `(since, to]`. In directory mode a manifest records each file's range, and the next export
starts where the last one ended: run on a schedule, the files hold every event exactly once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from eventsourcing.persistence import Transcoder

from .domain.errors import Code, LedgerError, invalid
from .domain.rendering import render_event
from .domain.timestamps import format_timestamp, parse_timestamp
from .domain.values import MAX_POSITION, JSONObject, check_position
from .files import staged
from .projections import feeds
from .projections.engine import ProjectionEngine
from .storage import log
from .storage.base import Cursor, Database
from .storage.codec import decode_stored
from .storage.store import Store

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


def check_request(what: str, fmt: str, since: int | None) -> None:
    if what not in WHATS:
        raise invalid("what", f"{what!r} is not one of {', '.join(WHATS)}")
    if fmt not in FORMATS:
        raise invalid("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    if since is not None:
        check_position(since, "since")


def run(
    store: Store, engine: ProjectionEngine, what: str, fmt: str, since: int | None, out: str | Path | IO[bytes] | None
) -> JSONObject:
    """Export one feed from `since` (default: where the directory's last export ended, else 0) to
    the end of the log (events) or of the views (operations, intervals), as they stand at the start."""
    directory = Path(out) if isinstance(out, (str, Path)) and (str(out).endswith("/") or Path(out).is_dir()) else None
    with _out_errors(out):
        if what != "events":
            engine.catch_up()
        if what == "intervals":
            store.db.refresh_statistics()  # intervals fold operations' histories, read by name
        with store.db.snapshot() as cursor:
            positions = engine.positions_in(cursor)
            to = engine.log_end(cursor) if what == "events" else min(positions.values())
            start = since if since is not None else (resume_position(directory, what) if directory else 0)
            if directory is not None and since is None and start > to:
                raise LedgerError(
                    Code.FAILED_PRECONDITION,
                    f"{directory / MANIFEST} says {what} were exported up to position {start}, but this "
                    f"ledger ends at {to}: the directory belongs to another ledger (or this one was restored)",
                )

            def records() -> Iterator[JSONObject]:
                return rows(cursor, store.db, store.transcoder, what, start, to)

            if directory is not None:
                return write_into_directory(directory, what, fmt, start, to, records).to_json()
            if isinstance(out, (str, Path)):
                return _export_file(Path(out), what, fmt, start, to, records)
            if out is None:
                raise invalid("out", "give a directory, a file or a stream")
            count = write(what, fmt, records(), out)
    return Export(what, fmt, start, to, count, None).to_json()


def _export_file(
    path: Path, what: str, fmt: str, start: int, to: int, records: Callable[[], Iterator[JSONObject]]
) -> JSONObject:
    with staged(path, path.with_name(f".{path.name}.partial")) as out:
        count = write(what, fmt, records(), out)
    return Export(what, fmt, start, to, count, str(path)).to_json()


@contextmanager
def _out_errors(out: object) -> Iterator[None]:
    """A file that cannot be written is the caller's `out`, named as given."""
    try:
        yield
    except BrokenPipeError:
        raise  # the reader went away (`export | head`): no error of the caller's; the CLI ends quietly
    except OSError as e:
        raise invalid("out", f"cannot write {out}: {e.strerror or e}") from None


def rows(
    cursor: Cursor, db: Database, transcoder: Transcoder, what: str, since: int, to: int
) -> Iterator[dict[str, Any]]:
    """The rows of one feed in (since, to], as flat dicts (events keep their nested fields)."""
    if what == "events":
        yield from _events(cursor, db, transcoder, since, to)
    elif what == "operations":
        yield from feeds.operations(cursor, db.dialect, since, to, CHUNK)
    else:
        yield from feeds.intervals(cursor, db, transcoder, since, to, CHUNK)


def _events(cursor: Cursor, db: Database, transcoder: Transcoder, since: int, to: int) -> Iterator[dict[str, Any]]:
    after = since
    while after < to:
        batch = log.read_after(cursor, db, after, CHUNK, upto=to)
        if not batch:
            return
        for row in batch:
            event = decode_stored(row.name, row.version, row.topic, row.state, transcoder)
            yield render_event(event, int(row.position))
        after = int(batch[-1].position)


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
    with staged(directory / name, directory / f".{name}.partial") as out:
        count = write(what, fmt, records(), out)
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
    with staged(directory / MANIFEST, directory / f".{MANIFEST}.partial") as out:
        out.write(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return Export(what, fmt, since, to, count, str(directory / name))


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.exists():
        return {"exports": []}
    try:
        manifest = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        manifest = None
    if not _is_manifest(manifest):
        raise invalid("out", f"{path} is not an export manifest this ledger wrote") from None
    return manifest  # type: ignore[no-any-return]


def _is_manifest(manifest: object) -> bool:
    """Each entry as `write_into_directory` writes it, as far as a later run reads it."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("exports"), list):
        return False
    return all(
        isinstance(entry, dict)
        and isinstance(entry.get("what"), str)
        and isinstance(entry.get("file"), str)
        and type(entry.get("toPosition")) is int
        and 0 <= entry["toPosition"] <= MAX_POSITION
        for entry in manifest["exports"]
    )
