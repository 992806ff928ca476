"""Events that explain an Operation snapshot (as an API, `gcloud ... describe` or a ListOperations
page returns it) given the state the ledger holds. Pure.

An operation first seen in a snapshot is recorded `verbatim`: it renders exactly as the API last
returned it, and its events explain each change (Created, Progressed with the merge patch between two
polls, CancelRequested when the API's flag appears, Succeeded or Failed when done). The ledger's own
times for those events come from the API's time fields (`TIME_FIELDS`), never from the import.

A snapshot that shows nothing new records nothing: it is UNCHANGED when it equals the current state,
STALE when it equals a state the operation already passed or is older than the current one (a running
poll after the done one, polls read out of order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import commands
from .errors import Code, LedgerError, invalid
from .operation import (
    COMMON_METADATA_TYPE,
    OWNED_KEYS,
    VERBATIM,
    CancelRequested,
    Created,
    Failed,
    Operation,
    OperationEvent,
    Progressed,
    Succeeded,
)
from .rendering import render_operation
from .timestamps import Timestamp, parse_timestamp
from .values import JSONObject, any_message, status

Explained = tuple[type[OperationEvent], Timestamp, JSONObject]
Path = tuple[str | int, ...]

RECORDED, UNCHANGED, STALE = "RECORDED", "UNCHANGED", "STALE"
_SNAPSHOT_KEYS = {"name", "metadata", "done", "error", "response"}

# Where real APIs keep an operation's times, inside its metadata, in the order they are tried. An
# event takes the first time its own kind's fields hold (Created: create, Progressed and
# CancelRequested: change, Succeeded and Failed: end), else the first of the other kinds' (a change
# is known to have happened by then), else the time the ledger saw the snapshot.
TIME_FIELDS: dict[str, tuple[Path, ...]] = {
    "create": (
        ("createTime",),  # most Cloud APIs, Dataproc batches, Cloud Run v2, Genomics
        ("startTime",),  # Firestore, Spanner instances, Speech v1
        ("commonMetadata", "createTime"),  # Document AI, Cloud Storage
        ("genericMetadata", "createTime"),  # Vertex AI
        ("requestTime",),  # Bigtable
        ("statusHistory", 0, "stateStartTime"),  # Dataproc clusters: when the first state began
        ("status", "stateStartTime"),  # Dataproc clusters, first poll: when the current state began
    ),
    "change": (
        ("updateTime",),
        ("lastUpdateTime",),  # Speech v1
        ("commonMetadata", "updateTime"),
        ("genericMetadata", "updateTime"),
        ("status", "stateStartTime"),
    ),
    "end": (
        ("endTime",),
        ("doneTime",),  # Dataproc batches
        ("finishTime",),  # Bigtable
        ("commonMetadata", "endTime"),
        ("status", "stateStartTime"),  # Dataproc clusters: when DONE began
    ),
}
# The lifecycle facts the ledger keeps for every operation (for filters and views), by metadata key.
_KNOWN_KEYS = {
    "verb": ("verb",),
    "target": ("target",),
    "api_version": ("apiVersion",),
    "detail": ("statusDetail", "statusMessage"),
    "cancelled": ("cancelRequested", "requestedCancellation"),
}


@dataclass(frozen=True)
class Snapshot:
    """An Operation as an API returned it, checked; `document` is what the ledger must render."""

    name: str
    metadata: JSONObject | None
    done: bool
    error: JSONObject | None
    response: JSONObject | None
    document: JSONObject

    @classmethod
    def parse(cls, raw: Mapping[str, Any], name: str) -> Snapshot:
        if raw.get("kind") == "compute#operation":
            raise invalid(
                "kind",
                "compute#operation is a Compute Engine operation, a resource of its own (status, progress, "
                "insertTime, ...), not a google.longrunning.Operation; the ledger keeps the latter only",
            )
        unknown = sorted(set(raw) - _SNAPSHOT_KEYS)
        if unknown:
            raise invalid(unknown[0], "is not a field of google.longrunning.Operation")
        done = raw.get("done", False)
        if not isinstance(done, bool):
            raise invalid("done", "must be true or false")
        metadata = any_message(raw["metadata"], "metadata") if raw.get("metadata") is not None else None
        error, response = raw.get("error"), raw.get("response")
        if not done and (error is not None or response is not None):
            raise invalid("done", "an operation with an error or a response is done")
        if error is not None and response is not None:
            raise invalid("response", "an operation holds an error or a response, not both")
        if error is not None:
            error = _status_as_given(error)
        if response is not None:
            response = any_message(response, "response")
        document: JSONObject = {"name": name}
        if metadata is not None:
            document["metadata"] = metadata
        if done:
            document["done"] = True
        if error is not None:
            document["error"] = error
        elif response is not None:
            document["response"] = response
        return cls(name, metadata, done, error, response, document)


@dataclass
class Explanation:
    outcome: str  # RECORDED, UNCHANGED or STALE
    events: list[Explained] = field(default_factory=list)


def explain(
    op: Operation | None, snapshot: Snapshot, passed: Callable[[], Iterable[JSONObject]], now: Timestamp
) -> Explanation:
    """What recording `snapshot` takes after `op`. `passed()` gives the states the operation went
    through before its current one (asked only when needed)."""
    if op is None:
        return Explanation(RECORDED, _verbatim_events(None, snapshot, now))
    current = render_operation(op)
    if op.deleted:  # a poll from before the delete is stale; anything new cannot follow it
        if snapshot.document == current or snapshot.document in passed():
            return Explanation(STALE)
        raise LedgerError(Code.FAILED_PRECONDITION, f"operation {op.name!r} was deleted; nothing follows Deleted")
    if snapshot.document == current:
        return Explanation(UNCHANGED)
    if op.done:
        if snapshot.done and _newest(snapshot.document) > _newest(current):
            raise LedgerError(
                Code.FAILED_PRECONDITION,
                f"operation {op.name!r} is done ({op.state.value}); the API changed it after it ended, "
                "and nothing follows the end",
            )
        return Explanation(STALE)
    if snapshot.document in passed() or _newest(snapshot.document) < _newest(current):
        return Explanation(STALE)
    events = _verbatim_events(op, snapshot, now) if op.verbatim else _convention_events(op, snapshot)
    return Explanation(RECORDED, events)


def _verbatim_events(op: Operation | None, snapshot: Snapshot, now: Timestamp) -> list[Explained]:
    """The events that take `op` (None: nothing yet) to the snapshot exactly."""
    known = _known(snapshot.metadata)
    clock = _Clock(op.last_occurred_at if op else None, now)
    events: list[Explained] = []
    if op is None:
        values = commands.created_values(
            verb=known["verb"],
            target=known["target"],
            api_version=known["api_version"],
            metadata=snapshot.metadata,
            lifecycle_fields=VERBATIM,
            request_id=None,
        )
        events.append((Created, clock.at(snapshot.metadata, "create", "change", "end"), values))
        op = Operation(snapshot.name, metadata=None, lifecycle_fields=VERBATIM)
    elif op.metadata is not None and snapshot.metadata is None:
        raise invalid("metadata", f"the API no longer gives the metadata of {op.name!r}; a poll cannot drop it")
    patch = merge_patch_between(op.metadata or {}, snapshot.metadata or {}) if events == [] else {}
    detail = known["detail"] if known["detail"] != op.status_detail else None
    if patch or detail is not None:
        values = commands.progressed_values(
            op, status_detail=detail, progress_percent=None, metadata_patch=patch or None
        )
        events.append((Progressed, clock.at(snapshot.metadata, "change", "end", "create"), values))
    if known["cancelled"] and not op.cancel_requested:
        events.append((CancelRequested, clock.at(snapshot.metadata, "change", "end", "create"), {}))
    if snapshot.done:
        ended = clock.at(snapshot.metadata, "end", "change", "create")
        if snapshot.error is not None:
            events.append((Failed, ended, {"error": snapshot.error}))
        else:
            events.append((Succeeded, ended, {"response": snapshot.response}))
    _check_exact(op if op.version else None, snapshot, events)
    return events


def _check_exact(op: Operation | None, snapshot: Snapshot, events: list[Explained]) -> None:
    """Refuse a snapshot the events would not render exactly (a null inside its metadata, which an
    RFC 7396 merge patch cannot carry), rather than record something the API never returned."""
    state = op.copy() if op is not None else None
    for event_class, when, values in events:
        state = event_class.next_after(state, snapshot.name, when, values).mutate(state)
    if state is None or render_operation(state) != snapshot.document:
        raise invalid("metadata", "holds a value the ledger cannot record exactly (a null inside metadata)")


class _Clock:
    """Event times from the API's fields; never before the event before (time never runs backwards
    within an operation: an earlier API time puts the event at the previous event's time)."""

    def __init__(self, last: Timestamp | None, now: Timestamp) -> None:
        self.last, self.now = last, now

    def at(self, metadata: JSONObject | None, *kinds: str) -> Timestamp:
        chosen = next((t for kind in kinds for t in _times(metadata, kind)), self.now)
        self.last = Timestamp(max(chosen, self.last)) if self.last is not None else chosen
        return self.last


def _times(metadata: JSONObject | None, kind: str) -> Iterable[Timestamp]:
    """Each time the metadata holds under `kind`'s fields, in the table's order."""
    for path in TIME_FIELDS[kind]:
        value: Any = metadata
        for step in path:
            if isinstance(step, int):
                value = value[step] if isinstance(value, list) and len(value) > step else None
            else:
                value = value.get(step) if isinstance(value, dict) else None
        if isinstance(value, str):
            try:
                yield parse_timestamp(value, "metadata")
            except LedgerError:
                continue


def _newest(document: JSONObject) -> Timestamp:
    """The latest API time a rendered operation carries (0 when none): how recent a poll is."""
    metadata = document.get("metadata")
    return max((t for kind in TIME_FIELDS for t in _times(metadata, kind)), default=Timestamp(0))


def _known(metadata: JSONObject | None) -> dict[str, Any]:
    """Verb, target, API version, status detail and cancel flag, where the metadata holds them."""
    found: dict[str, Any] = dict.fromkeys(_KNOWN_KEYS)
    for fact, keys in _KNOWN_KEYS.items():
        for key in keys:
            value = (metadata or {}).get(key)
            if value is None:
                continue
            if fact == "cancelled" and not isinstance(value, bool):
                raise invalid(f"metadata.{key}", "must be true or false")
            if fact != "cancelled" and not isinstance(value, str):
                raise invalid(f"metadata.{key}", "must be a string")
            found[fact] = value or None
            break
    return found


def _status_as_given(error: object) -> JSONObject:
    """The API's google.rpc.Status, checked as the ledger checks its own, kept as it was written."""
    if not isinstance(error, Mapping):
        raise invalid("error", "must be a google.rpc.Status object")
    unknown = sorted(set(error) - {"code", "message", "details"})
    if unknown:
        raise invalid(f"error.{unknown[0]}", "is not a field of google.rpc.Status")
    status(error.get("code"), error.get("message"), error.get("details"))
    return {key: error[key] for key in ("code", "message", "details") if key in error}


# -- operations recorded by commands, later polled ------------------------------------------------


def _convention_events(op: Operation, snapshot: Snapshot) -> list[Explained]:
    """The events that explain a snapshot of an operation that commands recorded: its lifecycle
    fields (under its convention's names) become the ledger's own, the rest of the metadata a patch.
    A change the snapshot gives no time for follows the operation's latest event."""
    metadata = snapshot.metadata
    fields = OWNED_KEYS[op.lifecycle_fields]
    labels = ("createTime", "endTime", "target", "verb", "detail", "cancelled", "apiVersion")
    lifecycle = (
        {label: metadata.get(key) for label, key in zip(labels, fields, strict=True)} if metadata and fields else {}
    )
    own = None
    if metadata is not None and metadata["@type"] != COMMON_METADATA_TYPE:
        own = {k: v for k, v in metadata.items() if k not in fields}
    clock = _Clock(op.last_occurred_at, op.last_occurred_at)
    events: list[Explained] = []
    detail = lifecycle.get("detail")
    if detail is not None and not isinstance(detail, str):
        raise invalid(f"metadata.{fields[4]}", "must be a string")
    patch = merge_patch_between(op.metadata, own) if own is not None and op.metadata is not None else None
    if (detail is not None and detail != op.status_detail) or patch:
        values = commands.progressed_values(
            op,
            status_detail=detail if detail != op.status_detail else None,
            progress_percent=None,
            metadata_patch=patch or None,
        )
        events.append((Progressed, clock.at(metadata, "change"), values))
    if lifecycle.get("cancelled") is True and not op.cancel_requested:
        events.append((CancelRequested, clock.at(metadata, "change"), {}))
    if snapshot.done:
        ended = clock.at(metadata, "end", "change")
        if snapshot.error is not None:
            events.append((Failed, ended, commands.failed_values(**_status_parts(snapshot.error))))
        else:
            events.append((Succeeded, ended, commands.succeeded_values(snapshot.response)))
    return events


def _status_parts(error: JSONObject) -> dict[str, Any]:
    return {"code": error.get("code"), "message": error.get("message"), "details": error.get("details")}


def merge_patch_between(before: Mapping[str, Any], after: Mapping[str, Any]) -> JSONObject:
    """The RFC 7396 patch that turns `before` into `after` (empty when they are equal)."""
    patch: JSONObject = {}
    for key in before:
        if key not in after:
            patch[key] = None
    for key, value in after.items():
        old = before.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            inner = merge_patch_between(old, value)
            if inner:
                patch[key] = inner
        elif key not in before or old != value:
            patch[key] = value
    return patch
