"""Ingest: event JSON lines (or Operation snapshots) into the ledger, in batches.

Each batch of lines is checked against the operations' current state with the same rules and input
checks as the commands, saved in one transaction (many operations at once), and projected into the
views in the same pass. A line that is not valid JSON, names no valid operation, or breaks a rule is
rejected with its line number and reason; every other line lands. A line identical to an event the
operation already has (same type, occurredAt and fields, or the same version) is a duplicate and is
skipped, so ingesting a file twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from eventsourcing.persistence import PersistenceError, RecordConflictError, Transcoder

from .domain import commands
from .domain.documents import Document, json_lines, snapshot_documents
from .domain.errors import Code, LedgerError, invalid
from .domain.names import validate_name
from .domain.operation import (
    EVENT_TYPES,
    CancelRequested,
    Created,
    Operation,
    OperationEvent,
    fold,
    repeats_cancel,
    repeats_create,
)
from .domain.rendering import states_passed
from .domain.snapshots import RECORDED, STALE, UNCHANGED, Snapshot, explain
from .domain.timestamps import now, parse_timestamp
from .domain.values import JSONObject
from .storage import log
from .storage.base import Database
from .storage.codec import decode_stored
from .storage.errors import refused_data

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
    unchanged: int = 0  # snapshots equal to the operation's current state
    stale: int = 0  # snapshots of a state the operation already passed
    operations: set[str] = field(default_factory=set)
    snapshots: bool = False

    def to_json(self) -> JSONObject:
        counts: JSONObject = {
            "lines": self.lines,
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }
        if self.snapshots:
            counts.update(unchanged=self.unchanged, stale=self.stale)
        counts["operations"] = len(self.operations)
        return counts


@dataclass
class _Known:
    """An operation as ingest sees it: its state, its stored events and the signatures of each."""

    op: Operation | None
    signatures: set[tuple[str, int, bytes]]
    by_version: dict[int, tuple[str, int, bytes]]
    history: list[OperationEvent] = field(default_factory=list)

    def kept(self) -> _Known:
        """What to put back if a line is rejected. Events are immutable, so only the containers and
        the state are copied (a deep copy would copy the whole history for every line)."""
        op = None
        if self.op is not None:
            op = self.op.copy()
            op.pending = list(self.op.pending)
        return _Known(op, set(self.signatures), dict(self.by_version), self.history)

    def passed(self) -> list[JSONObject]:
        """The states the operation went through before its current one, stored or from this batch."""
        pending = self.op.pending if self.op is not None else []
        return states_passed([*self.history, *pending])[:-1]


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
        (it added events), DUPLICATE (every event it holds was there), UNCHANGED (a snapshot of the
        current state) or STALE (a snapshot of a state already passed); `on_reject` of each line that
        did not."""
        summary = Summary(snapshots=snapshots)
        documents = snapshot_documents(lines) if snapshots else json_lines(lines)
        for batch in _batches(documents):
            self.db.refresh_statistics()  # a long ingest grows the log it reads its batches' names from
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
        self.db.refresh_statistics()  # for the next reader of a log this ingest has grown
        return summary

    def _batch(
        self, batch: list[Document], snapshots: bool, summary: Summary
    ) -> tuple[list[Rejection], list[tuple[int, str]]]:
        """Apply one batch; on a lost race with another writer, reload and apply it again."""
        parsed = [line for _, _, line in batch]
        for attempt in range(3):
            # In file order (not a set's): operations are saved, and take positions, as the file has them.
            named = dict.fromkeys(name for line in parsed for name in _names(line, snapshots))
            known = self._load([name for name in named if _valid_name(name)])
            rejections: list[Rejection] = []
            outcomes: list[tuple[int, str]] = []
            counts = Summary()
            for number, raw, line in batch:
                before = (counts.recorded, counts.duplicates, counts.stale)
                try:
                    if isinstance(line, LedgerError):
                        raise line
                    if snapshots:
                        self._snapshot_line(line, known, counts)
                    else:
                        self._event_line(line, known, counts)
                    outcomes.append((number, _outcome(before, counts)))
                except LedgerError as e:
                    rejections.append(Rejection(number, f"{e.code_name}: {e.message}", _text(raw)))
                except (TypeError, ValueError, AttributeError, LookupError, ArithmeticError, RecursionError) as e:
                    # a shape no check foresaw: still this line's, never the batch's
                    rejections.append(Rejection(number, f"INVALID_ARGUMENT: {e}", _text(raw)))
            changed = [k.op for k in known.values() if k.op is not None and k.op.pending]
            try:
                self.save(changed)
            except RecordConflictError:
                if attempt == 2:
                    raise LedgerError(Code.ABORTED, "other writers kept changing the same operations; retry") from None
                continue
            except PersistenceError as e:
                if not refused_data(e):
                    raise  # the database is down or busy: the whole batch is worth retrying
                return self._isolate(batch, snapshots, summary, e)
            summary.recorded += counts.recorded
            summary.duplicates += counts.duplicates
            summary.unchanged += counts.unchanged
            summary.stale += counts.stale
            summary.operations |= counts.operations
            return rejections, outcomes
        raise AssertionError("unreachable")  # pragma: no cover

    def _isolate(
        self, batch: list[Document], snapshots: bool, summary: Summary, error: PersistenceError
    ) -> tuple[list[Rejection], list[tuple[int, str]]]:
        """The database refused what the batch would store: halve it until the lines it refuses are
        alone, so that every other line still lands."""
        if len(batch) == 1:
            number, raw, _ = batch[0]
            reason = f"INVALID_ARGUMENT: the database refused it: {str(error).strip()}"
            return [Rejection(number, reason, _text(raw))], []
        middle = len(batch) // 2
        first_rejections, first_outcomes = self._batch(batch[:middle], snapshots, summary)
        rejections, outcomes = self._batch(batch[middle:], snapshots, summary)
        return first_rejections + rejections, first_outcomes + outcomes

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
        """One Operation, or a ListOperationsResponse page of them; a line lands whole or not at all."""
        page = "operations" in parsed or "nextPageToken" in parsed or not parsed
        raw_snapshots = parsed.get("operations", []) if page else [parsed]
        if not isinstance(raw_snapshots, list) or not all(isinstance(item, dict) for item in raw_snapshots):
            raise invalid("operations", "must be a list of Operation objects")
        if page and set(parsed) - {"operations", "nextPageToken", "unreachable"}:
            raise invalid(
                sorted(set(parsed) - {"operations", "nextPageToken", "unreachable"})[0],
                "is not a field of ListOperationsResponse",
            )
        snapshots = [Snapshot.parse(raw, validate_name(raw.get("name"))) for raw in raw_snapshots]
        # Keep what the line could change, to put back if it is rejected.
        before = {s.name: entry.kept() if (entry := known.get(s.name)) else None for s in snapshots}
        tally = (counts.recorded, counts.duplicates, counts.unchanged, counts.stale, set(counts.operations))
        try:
            for snapshot in snapshots:
                entry = known.setdefault(snapshot.name, _Known(None, set(), {}))
                explanation = explain(entry.op, snapshot, entry.passed, now())
                if explanation.outcome == UNCHANGED:
                    counts.unchanged += 1
                elif explanation.outcome == STALE:
                    counts.stale += 1
                for event_class, when, values in explanation.events:
                    self._append(snapshot.name, entry, event_class, when, values, None, counts)
        except LedgerError:
            for name, kept in before.items():
                if kept is None:
                    known.pop(name, None)
                else:
                    known[name] = kept
            counts.recorded, counts.duplicates, counts.unchanged, counts.stale, counts.operations = tally
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
        if isinstance(candidate, Created) and op is not None and repeats_create(op, values, rereading=True):
            counts.duplicates += 1  # a repeated create, as the command answers it
            return
        if op is None and not isinstance(candidate, Created):
            raise LedgerError(Code.NOT_FOUND, f"operation {name!r} not found")
        if isinstance(candidate, CancelRequested) and op is not None and repeats_cancel(op, rereading=True):
            counts.duplicates += 1  # a second request is a no-op, whenever it comes
            return
        if op is None:
            op = entry.op = Operation.start(candidate)
        else:
            op.append(candidate)
        entry.signatures.add(signature)
        entry.by_version[op.version] = signature
        counts.recorded += 1
        counts.operations.add(name)

    # -- state ------------------------------------------------------------------------------------

    def _load(self, names: list[str]) -> dict[str, _Known]:
        """Every named operation's state and event signatures, read from the log in one query."""
        known: dict[str, _Known] = {name: _Known(None, set(), {}) for name in names}
        with self.db.read() as cursor:
            rows = log.histories(cursor, self.db, sorted(names))
        histories: dict[str, list[OperationEvent]] = {}
        for _, name, version, topic, state in rows:
            histories.setdefault(name, []).append(decode_stored(name, version, topic, state, self.transcoder))
        for name, events in histories.items():
            entry = known[name]
            entry.op, entry.history = fold(events), events
            for event in events:
                entry.signatures.add(event.signature())
                entry.by_version[event.originator_version] = event.signature()
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
        return commands.succeeded_values(line.get("response"), verbatim=op.verbatim)
    if event_class.TYPE == "Failed":
        error = line.get("error")
        if not isinstance(error, dict):
            raise invalid("error", "must be a google.rpc.Status object with a code")
        unknown = sorted(set(error) - {"code", "message", "details"})
        if unknown:
            raise invalid(f"error.{unknown[0]}", "is not a field of google.rpc.Status")
        return commands.failed_values(error.get("code"), error.get("message"), error.get("details"))
    return {}


def _outcome(before: tuple[int, int, int], counts: Summary) -> str:
    """What a line did, from the counts it moved."""
    recorded, duplicates, stale = before
    if counts.recorded > recorded:
        return RECORDED
    if counts.duplicates > duplicates:
        return "DUPLICATE"
    return STALE if counts.stale > stale else UNCHANGED


def _batches(documents: Iterable[Document]) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for document in documents:
        batch.append(document)
        if len(batch) == BATCH_LINES:
            yield batch
            batch = []
    if batch:
        yield batch


def _names(line: JSONObject | LedgerError, snapshots: bool) -> list[str]:
    """The operation names a line speaks of, for loading their state before the batch runs."""
    if isinstance(line, LedgerError):
        return []
    items = line.get("operations") if snapshots and isinstance(line.get("operations"), list) else [line]
    names = [item.get("name") for item in items if isinstance(item, dict)]  # type: ignore[union-attr]
    return [name for name in names if isinstance(name, str)]


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
