"""Ingest: event JSON lines (or Operation snapshots) into the ledger, in batches.

Each batch of lines is checked against the operations' current state with the same rules and input
checks as the commands, saved in one transaction (many operations at once), and projected into the
views in the same pass. A line that is not valid JSON, names no valid operation, or breaks a rule is
rejected with its line number and reason; every other line lands. A line identical to an event the
operation already has (same type, occurredAt and fields, or the same version) is a duplicate and is
skipped, so ingesting a file twice changes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import orjson
from eventsourcing.persistence import RecordConflictError, Transcoder

from .domain import commands
from .domain.errors import Code, LedgerError, invalid
from .domain.names import validate_name
from .domain.operation import (
    EVENT_TYPES,
    CancelRequested,
    Created,
    Operation,
    OperationEvent,
    fold,
)
from .domain.snapshots import events_from_snapshot
from .domain.timestamps import now, parse_timestamp
from .domain.values import JSONObject
from .storage import log
from .storage.base import Database
from .storage.codec import decode_stored

BATCH_LINES = 1000
OUTPUT_ONLY = ("position", "recordedAt", "hash")
_FIELDS: dict[str, set[str]] = {
    cls.TYPE: {"type", "name", "occurredAt", "version", *OUTPUT_ONLY, *cls.KEYS.values()}
    for cls in EVENT_TYPES.values()
}


@dataclass(frozen=True)
class Rejection:
    line: int
    reason: str  # "CODE: message"
    input: str

    def to_json(self) -> JSONObject:
        return {"line": self.line, "reason": self.reason, "input": self.input}


@dataclass
class Summary:
    lines: int = 0
    recorded: int = 0
    duplicates: int = 0
    rejected: int = 0
    operations: set[str] = field(default_factory=set)

    def to_json(self) -> JSONObject:
        return {
            "lines": self.lines,
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "operations": len(self.operations),
        }


@dataclass
class _Known:
    """An operation as ingest sees it: its state and the signatures of every event it holds."""

    op: Operation | None
    signatures: set[tuple[str, int, bytes]]
    by_version: dict[int, tuple[str, int, bytes]]
    created: bytes = b""  # the Created event's content, time aside


class Ingester:
    def __init__(
        self,
        db: Database,
        transcoder: Transcoder,
        save: Callable[[Sequence[Operation]], None],
    ) -> None:
        self.db, self.d = db, db.dialect
        self.transcoder = transcoder
        self.save = save  # records the events and brings the views up to date

    def run(
        self,
        lines: Iterable[bytes],
        *,
        snapshots: bool = False,
        on_reject: Callable[[Rejection], None] | None = None,
        on_accept: Callable[[int, str], None] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Summary:
        """Apply every line. `on_accept(line, outcome)` hears of each line that landed, as RECORDED
        (it added events), DUPLICATE (every event it holds was there) or UNCHANGED (a snapshot with
        nothing new); `on_reject` of each line that did not."""
        summary = Summary()
        for batch in _batches(lines):
            rejections, outcomes = self._batch(batch, snapshots, summary)
            for rejection in rejections:
                summary.rejected += 1
                if on_reject:
                    on_reject(rejection)
            if on_accept:
                for number, outcome in outcomes:
                    on_accept(number, outcome)
            summary.lines += len(batch)
            if progress:
                progress(len(batch))
        return summary

    def _batch(
        self, batch: list[tuple[int, bytes]], snapshots: bool, summary: Summary
    ) -> tuple[list[Rejection], list[tuple[int, str]]]:
        """Apply one batch; on a lost race with another writer, reload and apply it again."""
        parsed = [_parse(raw) for _, raw in batch]
        for attempt in range(3):
            known = self._load({name for line in parsed for name in _names(line, snapshots)})
            rejections: list[Rejection] = []
            outcomes: list[tuple[int, str]] = []
            counts = Summary()
            for (number, raw), line in zip(batch, parsed, strict=True):
                before = (counts.recorded, counts.duplicates)
                try:
                    if isinstance(line, LedgerError):
                        raise line
                    if snapshots:
                        self._snapshot_line(line, known, counts)
                    else:
                        self._event_line(line, known, counts)
                    outcome = (
                        "RECORDED"
                        if counts.recorded > before[0]
                        else "DUPLICATE"
                        if counts.duplicates > before[1]
                        else "UNCHANGED"
                    )
                    outcomes.append((number, outcome))
                except LedgerError as e:
                    rejections.append(Rejection(number, f"{e.code_name}: {e.message}", _text(raw)))
                except (TypeError, ValueError, AttributeError) as e:  # a shape no check foresaw: still this line's
                    rejections.append(Rejection(number, f"INVALID_ARGUMENT: {e}", _text(raw)))
            changed = [k.op for k in known.values() if k.op is not None and k.op.pending]
            try:
                self.save(changed)
            except RecordConflictError:
                if attempt == 2:
                    raise LedgerError(Code.ABORTED, "other writers kept changing the same operations; retry") from None
                continue
            summary.recorded += counts.recorded
            summary.duplicates += counts.duplicates
            summary.operations |= counts.operations
            return rejections, outcomes
        raise AssertionError("unreachable")  # pragma: no cover

    # -- one line ---------------------------------------------------------------------------------

    def _event_line(self, line: JSONObject, known: dict[str, _Known], counts: Summary) -> None:
        kind = line.get("type")
        if not isinstance(kind, str) or kind not in EVENT_TYPES:
            raise invalid("type", f"{kind!r} is not one of {', '.join(EVENT_TYPES)}")
        unknown = sorted(set(line) - _FIELDS[kind])
        if unknown:
            raise invalid(unknown[0], f"is not a field of {kind}")
        name = line.get("name")
        if not (isinstance(name, str) and name in known):  # names the batch loaded are valid
            name = validate_name(name)
        if "occurredAt" not in line:
            raise invalid("occurredAt", "is required in ingested events, so that a second ingest finds it again")
        when = parse_timestamp(line["occurredAt"], "occurredAt")
        version = line.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise invalid("version", f"{version!r} is not a version")
        entry = known.setdefault(name, _Known(None, set(), {}))
        event_class = EVENT_TYPES[kind]
        values = _values(event_class, line, entry.op)
        self._append(name, entry, event_class, when, values, version, counts)

    def _snapshot_line(self, parsed: JSONObject, known: dict[str, _Known], counts: Summary) -> None:
        snapshots = parsed.get("operations", []) if "operations" in parsed or not parsed else [parsed]
        if not isinstance(snapshots, list):
            raise invalid("operations", "must be a list of Operation objects")
        if not all(isinstance(snapshot, dict) for snapshot in snapshots):
            raise invalid("operations", "must be a list of Operation objects")
        names = [validate_name(snapshot.get("name")) for snapshot in snapshots]
        # A line lands whole or not at all: keep what it could change, to put back if it is rejected.
        before = {name: copy.deepcopy(known.get(name)) for name in names}
        tally = (counts.recorded, counts.duplicates, set(counts.operations))
        try:
            for name, snapshot in zip(names, snapshots, strict=True):
                entry = known.setdefault(name, _Known(None, set(), {}))
                for event_class, when, values in list(events_from_snapshot(entry.op, snapshot, now())):
                    self._append(name, entry, event_class, when, values, None, counts)
        except LedgerError:
            for name, kept in before.items():
                if kept is None:
                    known.pop(name, None)
                else:
                    known[name] = kept
            counts.recorded, counts.duplicates, counts.operations = tally
            raise

    def _append(
        self,
        name: str,
        entry: _Known,
        event_class: type[OperationEvent],
        when: int,
        values: JSONObject,
        version: int | None,
        counts: Summary,
    ) -> None:
        op = entry.op
        candidate = event_class.next_after(op, name, when, values)  # type: ignore[arg-type]
        signature = candidate.signature()
        if version is not None and op is not None and version <= op.version:
            if entry.by_version.get(version) == signature:
                counts.duplicates += 1
                return
            raise LedgerError(Code.FAILED_PRECONDITION, f"version {version} of {name!r} holds another event")
        if signature in entry.signatures:
            counts.duplicates += 1
            return
        if version is not None and version != (op.version if op else 0) + 1:
            latest = op.version if op else 0
            raise LedgerError(Code.FAILED_PRECONDITION, f"version {version} would leave a gap after version {latest}")
        if isinstance(candidate, Created) and op is not None:
            if entry.created == _content(candidate) or (values["request_id"] and values["request_id"] == op.request_id):
                counts.duplicates += 1  # a repeated create, as the command treats it (even once deleted)
                return
            if op.deleted:
                raise LedgerError(Code.FAILED_PRECONDITION, f"operation {name!r} was deleted; a name is created once")
            raise LedgerError(Code.ALREADY_EXISTS, f"operation {name!r} already exists with different content")
        if op is None and not isinstance(candidate, Created):
            raise LedgerError(Code.NOT_FOUND, f"operation {name!r} not found")
        if isinstance(candidate, CancelRequested) and op is not None and op.cancel_requested:
            counts.duplicates += 1  # a second request is a no-op, whenever it comes
            return
        if op is None:
            op = entry.op = Operation.start(candidate)
            entry.created = _content(candidate)
        else:
            op.append(candidate)
        entry.signatures.add(signature)
        entry.by_version[op.version] = signature
        counts.recorded += 1
        counts.operations.add(name)

    # -- state ------------------------------------------------------------------------------------

    def _load(self, names: set[str]) -> dict[str, _Known]:
        """Every named operation's state and event signatures, read from the log in one query."""
        known: dict[str, _Known] = {name: _Known(None, set(), {}) for name in names}
        with self.db.read() as cursor:
            rows = log.histories(cursor, self.db, sorted(names))
        histories: dict[str, list[OperationEvent]] = {}
        for _, name, version, topic, state in rows:
            histories.setdefault(name, []).append(decode_stored(name, version, topic, state, self.transcoder))
        for name, events in histories.items():
            entry = known[name]
            entry.op = fold(events)
            for event in events:
                entry.signatures.add(event.signature())
                entry.by_version[event.originator_version] = event.signature()
                if isinstance(event, Created):
                    entry.created = _content(event)
        return known


def _values(event_class: type[OperationEvent], line: JSONObject, op: Operation | None) -> JSONObject:
    """A line's fields, checked exactly as the matching command checks its arguments."""
    if event_class is Created:
        return commands.created_values(
            verb=line.get("verb"),
            target=line.get("target"),
            api_version=line.get("apiVersion"),
            metadata=line.get("metadata"),
            lifecycle_fields=line.get("lifecycleFields"),
            request_id=line.get("requestId"),
        )
    if op is None:
        return {}  # NOT_FOUND comes next, with the name
    if event_class.TYPE == "Progressed":
        return commands.progressed_values(
            op,
            status_detail=line.get("statusDetail"),
            progress_percent=line.get("progressPercent"),
            metadata_patch=line.get("metadataPatch"),
        )
    if event_class.TYPE == "Succeeded":
        return commands.succeeded_values(line.get("response"))
    if event_class.TYPE == "Failed":
        error = line.get("error")
        if not isinstance(error, dict):
            raise invalid("error", "must be a google.rpc.Status object with a code")
        unknown = sorted(set(error) - {"code", "message", "details"})
        if unknown:
            raise invalid(f"error.{unknown[0]}", "is not a field of google.rpc.Status")
        return commands.failed_values(error.get("code"), error.get("message"), error.get("details"))
    return {}


def _content(event: OperationEvent) -> bytes:
    return orjson.dumps(event.values(), option=orjson.OPT_SORT_KEYS)


def _batches(lines: Iterable[bytes]) -> Iterator[list[tuple[int, bytes]]]:
    batch: list[tuple[int, bytes]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        batch.append((number, raw))
        if len(batch) == BATCH_LINES:
            yield batch
            batch = []
    if batch:
        yield batch


def _parse(raw: bytes) -> JSONObject | LedgerError:
    """A line's JSON object, or why it is not one (its line's rejection, when the batch gets to it)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return invalid("line", f"not valid JSON: {e}")
    if not isinstance(value, dict):
        return invalid("line", "must be a JSON object")
    return value


def _names(line: JSONObject | LedgerError, snapshots: bool) -> list[str]:
    """The operation names a line speaks of, for loading their state before the batch runs."""
    if isinstance(line, LedgerError):
        return []
    items = line.get("operations") if snapshots and isinstance(line.get("operations"), list) else [line]
    names = [item.get("name") for item in items if isinstance(item, dict)]  # type: ignore[union-attr]
    return [name for name in names if isinstance(name, str) and _valid_name(name)]


def _valid_name(name: str) -> bool:
    """Only valid names are looked up: an invalid one is its own line's rejection, never the batch's
    (a NUL in a name would fail the whole query on PostgreSQL)."""
    try:
        validate_name(name)
    except LedgerError:
        return False
    return True


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")
