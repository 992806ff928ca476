"""The Operation aggregate, its six events, and the lifecycle rules. Pure: no I/O.

Events follow eventsourcing's protocols (`originator_id`, `originator_version`, `timestamp`,
`mutate`), so the library's repository and event store persist and rebuild them; they are plain frozen
dataclasses rather than `Aggregate.Event` subclasses because their stored form is the SPEC event JSON,
their topics are pinned strings, and each carries a hash chained to the one before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any, ClassVar

import orjson

from . import chain
from .errors import Code, LedgerError
from .timestamps import Timestamp, format_timestamp, from_datetime, parse_timestamp, to_datetime
from .values import JSONObject, merge_patch

COMMON_METADATA_TYPE = "type.googleapis.com/google.cloud.common.OperationMetadata"
# The conventions a creator may ask for. An operation learned from an API's snapshots is `verbatim`:
# it renders exactly as the API returned it, with nothing the ledger adds (no OperationMetadata, no
# Empty response, no lifecycle fields).
LIFECYCLE_FIELDS = ("common", "per-api", "none")
VERBATIM = "verbatim"
STORED_LIFECYCLE_FIELDS = (*LIFECYCLE_FIELDS, VERBATIM)
# The metadata keys the ledger maintains under each convention, in proto field order.
OWNED_KEYS: dict[str, tuple[str, ...]] = {
    "common": ("createTime", "endTime", "target", "verb", "statusDetail", "cancelRequested", "apiVersion"),
    "per-api": ("createTime", "endTime", "target", "verb", "statusMessage", "requestedCancellation", "apiVersion"),
    "none": (),
    VERBATIM: (),
}


class State(Enum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    DELETED = "DELETED"


_NEVER = Timestamp(0)


@dataclass
class Operation:
    """Current state of one operation, folded from its events. `id` is its resource name."""

    id: str
    version: int = 0
    last_hash: str = chain.GENESIS
    last_occurred_at: Timestamp = _NEVER
    create_time: Timestamp = _NEVER
    end_time: Timestamp | None = None
    verb: str | None = None
    target: str | None = None
    api_version: str | None = None
    request_id: str | None = None
    metadata: JSONObject | None = None  # None: the ledger's own OperationMetadata (verbatim: no metadata)
    lifecycle_fields: str = "common"
    origin: Created | None = field(default=None, repr=False, compare=False)  # the Created event
    status_detail: str | None = None
    progress_percent: int | None = None
    cancel_requested: bool = False
    response: JSONObject | None = None  # None when done: failed, or (verbatim) no result given
    error: JSONObject | None = None
    ended: bool = False
    deleted: bool = False
    pending: list[OperationEvent] = field(default_factory=list, repr=False, compare=False)
    # False when the stored history breaks the sequence a fold needs (see `follows`): the views skip
    # such events, so a write after them is left to the views' own catch-up.
    in_sequence: bool = field(default=True, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.id

    @property
    def done(self) -> bool:
        return self.ended

    @property
    def verbatim(self) -> bool:
        return self.lifecycle_fields == VERBATIM

    @property
    def state(self) -> State:
        if self.deleted:
            return State.DELETED
        if self.error is not None:
            return State.CANCELLED if self.error["code"] == Code.CANCELLED else State.FAILED
        return State.SUCCEEDED if self.ended else State.RUNNING

    @classmethod
    def create(cls, name: str, occurred_at: Timestamp, values: JSONObject) -> Operation:
        """A new operation whose first, pending event is Created."""
        return cls.start(Created.next_after(None, name, occurred_at, values))

    @classmethod
    def start(cls, event: OperationEvent) -> Operation:
        """A new operation from its Created event, kept pending."""
        refuse_if_broken(None, event)
        op = event.mutate(None)
        assert op is not None
        op.pending.append(event)
        return op

    def copy(self) -> Operation:
        """This state, without pending events. Shallow: events set attributes whole (a patch makes a
        new metadata dict), so the copy keeps this state whatever follows."""
        state = object.__new__(Operation)
        state.__dict__.update(self.__dict__)
        state.pending = []
        return state

    def collect_events(self) -> list[OperationEvent]:
        """eventsourcing's protocol: hand over the events not yet saved."""
        collected, self.pending = self.pending, []
        return collected

    def trigger(self, event_class: type[OperationEvent], occurred_at: Timestamp, **values: Any) -> None:
        """Build the next event, refuse it if it breaks a rule, else apply it and keep it pending."""
        self.append(event_class.next_after(self, self.id, occurred_at, values))

    def append(self, event: OperationEvent) -> None:
        """Apply an event built by `next_after` on this state, unless it breaks a rule; keep it pending."""
        refuse_if_broken(self, event)
        event.mutate(self)
        self.pending.append(event)


@dataclass(frozen=True)
class OperationEvent:
    """What every event carries. `timestamp` is when it was recorded; `occurred_at` is domain time."""

    originator_id: str
    originator_version: int
    timestamp: datetime
    occurred_at: Timestamp
    hash: str

    TYPE: ClassVar[str]
    TOPIC: ClassVar[str]  # stored with each event; never derived from the module path
    KEYS: ClassVar[dict[str, str]] = {}  # attribute -> event JSON key, in JSON order

    @property
    def name(self) -> str:
        return self.originator_id

    def values(self) -> JSONObject:
        """The type's own fields as event JSON, unset ones omitted."""
        out: JSONObject = {}
        for attribute, key in self.KEYS.items():
            value = getattr(self, attribute)
            if value is not None:
                out[key] = value
        return out

    def body(self) -> JSONObject:
        """The event JSON without the output-only position and hash: what the hash covers.

        Made once per event (the hash and the stored payload both need it); read it, never change it.
        """
        cached: JSONObject | None = self.__dict__.get("_body")
        if cached is None:
            cached = {
                "type": self.TYPE,
                "name": self.name,
                "occurredAt": format_timestamp(self.occurred_at),
                **self.values(),
                "version": self.originator_version,
                "recordedAt": format_timestamp(from_datetime(self.timestamp)),
            }
            self.__dict__["_body"] = cached  # frozen fields, so the body never goes stale
        return cached

    def signature(self) -> tuple[str, Timestamp, bytes]:
        """What makes two events the same for ingest: type, occurredAt and fields."""
        return self.TYPE, self.occurred_at, orjson.dumps(self.values(), option=orjson.OPT_SORT_KEYS)

    def expected_hash(self, previous: str) -> str:
        return chain.link(previous, self.body())

    @classmethod
    def next_after(cls, op: Operation | None, name: str, occurred_at: Timestamp, values: JSONObject) -> OperationEvent:
        version = op.version + 1 if op else 1
        previous = op.last_hash if op else chain.GENESIS
        if not values.keys() <= cls.KEYS.keys():  # as the dataclass's own __init__ would refuse them
            unknown = sorted(values.keys() - cls.KEYS.keys())
            raise TypeError(f"{cls.TYPE} has no field {unknown[0]!r}")
        event = cls.assembled(name, version, datetime.now(UTC), occurred_at, "", values)
        # Sealed before anyone else sees it: the hash covers the body, which does not hold the hash.
        event.__dict__["hash"] = event.expected_hash(previous)
        return event

    @classmethod
    def assembled(
        cls, name: str, version: int, recorded: datetime, occurred_at: Timestamp, digest: str, values: JSONObject
    ) -> OperationEvent:
        """`cls(name, version, recorded, occurred_at, digest, **values)`, for values keyed by the type's
        own attributes, at a third of the cost: a frozen dataclass's `__init__` sets every field
        through `object.__setattr__`, which was most of decoding a stored event. Fields left out
        read their defaults from the class, as dataclasses keep them there, so `vars(event)` lacks
        them (equality, `repr`, `asdict`, `replace` and pickling read attributes and are the same).
        A new event type joins `EVENT_TYPES`, which `_FACTORIES` is made from. The caller vouches
        for the keys (a decoded payload's come from `KEYS`; `next_after` checks its caller's)."""
        event = object.__new__(cls)
        own = event.__dict__
        for attribute, factory in _FACTORIES[cls]:
            own[attribute] = factory()
        own.update(values)
        own.update(originator_id=name, originator_version=version, timestamp=recorded, occurred_at=occurred_at)
        own["hash"] = digest
        return event

    def mutate(self, op: Operation | None) -> Operation | None:
        """eventsourcing's projector protocol: evolve the operation by this event."""
        assert op is not None, f"{self.TYPE} before Created"
        self.apply(op)
        op.version = self.originator_version
        op.last_hash = self.hash
        op.last_occurred_at = self.occurred_at
        return op

    def apply(self, op: Operation) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Created(OperationEvent):
    verb: str | None = None
    target: str | None = None
    api_version: str | None = None
    metadata: JSONObject | None = None
    lifecycle_fields: str | None = None
    request_id: str | None = None

    TYPE = "Created"
    TOPIC = "ledger.Created"
    KEYS = {
        "verb": "verb",
        "target": "target",
        "api_version": "apiVersion",
        "metadata": "metadata",
        "lifecycle_fields": "lifecycleFields",
        "request_id": "requestId",
    }

    def mutate(self, op: Operation | None) -> Operation | None:
        return super().mutate(Operation(self.originator_id))

    def apply(self, op: Operation) -> None:
        op.create_time = self.occurred_at
        op.verb, op.target, op.api_version = self.verb, self.target, self.api_version
        op.metadata, op.request_id = self.metadata, self.request_id
        op.lifecycle_fields = self.lifecycle_fields or default_lifecycle_fields(self.metadata)
        op.origin = self


@dataclass(frozen=True)
class Progressed(OperationEvent):
    status_detail: str | None = None
    progress_percent: int | None = None
    metadata_patch: JSONObject | None = None

    TYPE = "Progressed"
    TOPIC = "ledger.Progressed"
    KEYS = {"status_detail": "statusDetail", "progress_percent": "progressPercent", "metadata_patch": "metadataPatch"}

    def apply(self, op: Operation) -> None:
        if self.status_detail is not None:
            op.status_detail = self.status_detail
        if self.progress_percent is not None:
            op.progress_percent = self.progress_percent
        if self.metadata_patch is not None and (op.metadata is not None or op.verbatim):
            op.metadata = merge_patch(op.metadata or {}, self.metadata_patch)


@dataclass(frozen=True)
class CancelRequested(OperationEvent):
    TYPE = "CancelRequested"
    TOPIC = "ledger.CancelRequested"

    def apply(self, op: Operation) -> None:
        op.cancel_requested = True


@dataclass(frozen=True)
class Succeeded(OperationEvent):
    # Commands always give a response (google.protobuf.Empty by default); only a verbatim operation
    # whose API reported it done without a result has none.
    response: JSONObject | None = None

    TYPE = "Succeeded"
    TOPIC = "ledger.Succeeded"
    KEYS = {"response": "response"}

    def apply(self, op: Operation) -> None:
        op.response = self.response
        op.ended = True
        op.end_time = self.occurred_at


@dataclass(frozen=True)
class Failed(OperationEvent):
    error: JSONObject = field(default_factory=dict)

    TYPE = "Failed"
    TOPIC = "ledger.Failed"
    KEYS = {"error": "error"}

    def apply(self, op: Operation) -> None:
        op.error = self.error
        op.ended = True
        op.end_time = self.occurred_at


@dataclass(frozen=True)
class Deleted(OperationEvent):
    TYPE = "Deleted"
    TOPIC = "ledger.Deleted"

    def apply(self, op: Operation) -> None:
        op.deleted = True


EVENT_TYPES: dict[str, type[OperationEvent]] = {
    cls.TYPE: cls for cls in (Created, Progressed, CancelRequested, Succeeded, Failed, Deleted)
}
EVENTS_BY_TOPIC: dict[str, type[OperationEvent]] = {cls.TOPIC: cls for cls in EVENT_TYPES.values()}
# The fields whose default is made afresh for each event, which the class does not hold.
_FACTORIES: dict[type[OperationEvent], tuple[tuple[str, Callable[[], Any]], ...]] = {
    cls: tuple((f.name, f.default_factory) for f in fields(cls) if f.default_factory is not MISSING)
    for cls in EVENT_TYPES.values()
}


def default_lifecycle_fields(metadata: JSONObject | None) -> str:
    """The ledger's own OperationMetadata gets `common`; a creator's own type is left alone."""
    if metadata is None or metadata.get("@type") == COMMON_METADATA_TYPE:
        return "common"
    return "none"


def broken_rule(op: Operation | None, event: OperationEvent) -> tuple[Code, str] | None:
    """Which SPEC §2 rule `event` breaks when applied after `op`, if any.

    Commands refuse such an event; audit reports it in stored history.
    """
    name = event.name
    if isinstance(event, Created):
        if op is not None:
            return Code.FAILED_PRECONDITION, f"operation {name!r} was already created; a name is created once"
    elif op is None:
        return Code.FAILED_PRECONDITION, f"{event.TYPE} before Created for operation {name!r}"
    elif op.deleted:
        return Code.FAILED_PRECONDITION, f"operation {name!r} was deleted; nothing follows Deleted"
    elif op.done and not isinstance(event, Deleted):
        return Code.FAILED_PRECONDITION, f"operation {name!r} is done ({op.state.value}); {event.TYPE} not allowed"
    elif isinstance(event, CancelRequested) and op.cancel_requested:
        return Code.FAILED_PRECONDITION, f"cancellation of {name!r} was already requested"
    elif isinstance(event, Progressed) and event.metadata_patch is not None:
        if op.metadata is None and not op.verbatim:
            return Code.INVALID_ARGUMENT, "metadataPatch: the ledger's own OperationMetadata takes no patch"
        if op.metadata is not None and event.metadata_patch.get("@type", op.metadata["@type"]) != op.metadata["@type"]:
            return Code.INVALID_ARGUMENT, f"metadataPatch.@type: may not change {op.metadata['@type']!r}"
    if isinstance(event, Failed) and not 1 <= event.error.get("code", 0) <= 16:
        return Code.INVALID_ARGUMENT, f"error.code: {event.error.get('code')!r} is not an error code 1..16"
    if op is not None and event.occurred_at < op.last_occurred_at:
        return Code.INVALID_ARGUMENT, (
            f"occurredAt: {format_timestamp(event.occurred_at)} is before the previous event's "
            f"{format_timestamp(op.last_occurred_at)}; time never goes backwards within an operation"
        )
    return None


def repeats_create(op: Operation, values: JSONObject, *, rereading: bool = False) -> bool:
    """Whether a create with `values` repeats the operation's Created (the same content, or the same
    request id): answered with the operation as it is, recording nothing. Other content is
    ALREADY_EXISTS. Once the operation is deleted a command is FAILED_PRECONDITION (a name is created
    once), while a line of a file being read again (`rereading`, ingest) stays a repeat: re-reading
    a file must change nothing and fail nothing."""
    if op.deleted and not rereading:
        raise LedgerError(Code.FAILED_PRECONDITION, f"operation {op.name!r} was deleted; a name is created once")
    same_request = values.get("request_id") is not None and values["request_id"] == op.request_id
    if same_request or (op.origin is not None and created_content(op.origin) == created_content_of(values)):
        return True
    if op.deleted:
        raise LedgerError(Code.FAILED_PRECONDITION, f"operation {op.name!r} was deleted; a name is created once")
    raise LedgerError(Code.ALREADY_EXISTS, f"operation {op.name!r} already exists with different content")


def repeats_cancel(op: Operation, *, rereading: bool = False) -> bool:
    """Whether a cancel request repeats one already recorded: a no-op, not an event (SPEC §2). For a
    command only while the request stands (after the end, a cancel is refused as any change is); for a
    line read again, whenever it comes."""
    if rereading:
        return op.cancel_requested
    return op.cancel_requested and not op.done and not op.deleted


def created_content(event: Created) -> bytes:
    """A Created event's content, time aside: what makes two creates the same."""
    return orjson.dumps(event.values(), option=orjson.OPT_SORT_KEYS)


def created_content_of(values: JSONObject) -> bytes:
    """`created_content` of the values a Created would be built from (unset ones omitted alike)."""
    shown = {Created.KEYS[k]: v for k, v in values.items() if v is not None}
    return orjson.dumps(shown, option=orjson.OPT_SORT_KEYS)


def refuse_if_broken(op: Operation | None, event: OperationEvent) -> None:
    broken = broken_rule(op, event)
    if broken:
        raise LedgerError(*broken)


def follows(op: Operation | None, event: OperationEvent) -> bool:
    """Whether `event` can follow `op` in a fold: Created first, no version skipped."""
    if (op is None) != isinstance(event, Created):
        return False
    return op is None or op.version == event.originator_version - 1


def fold(events: list[OperationEvent]) -> Operation | None:
    """The operation after `events`, marked when they are not in sequence."""
    op: Operation | None = None
    in_sequence = True
    for event in events:
        in_sequence = in_sequence and follows(op, event)
        op = event.mutate(op)
    if op is not None:
        op.in_sequence = in_sequence
    return op


def _recorded_at(text: str) -> datetime:
    """recordedAt comes from a datetime, so at most six digits: the C parser takes it directly."""
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return to_datetime(parse_timestamp(text, "recordedAt"))


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _any(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("@type"), str)


def _status(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("code"), int)
        and not isinstance(value.get("code"), bool)
        and isinstance(value.get("message", ""), str)
        and isinstance(value.get("details", []), list)
        and all(_any(d) for d in value.get("details", []))
    )


# The shape each stored field must have for the ledger to fold it. A payload that decodes but breaks
# one of these (written past the ledger) is undecodable to it: audit reports it, the views skip it.
_STORED_SHAPES: dict[str, Callable[[Any], bool]] = {
    "verb": _text,
    "target": _text,
    "api_version": _text,
    "request_id": _text,
    "status_detail": _text,
    "metadata": _any,
    "response": _any,
    "lifecycle_fields": lambda v: v in STORED_LIFECYCLE_FIELDS,
    "progress_percent": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100,
    "metadata_patch": lambda v: isinstance(v, dict),
    "error": _status,
}


def event_from_json(name: str, version: int, event_type: type[OperationEvent], payload: JSONObject) -> OperationEvent:
    """Rebuild an event from its stored payload (the event JSON less type, name and version).

    Raises ValueError when the payload is not one the ledger wrote.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("hash", ""), str):
        raise ValueError("the payload is not an event object")
    values = {attr: payload.get(key) for attr, key in event_type.KEYS.items() if key in payload}
    for attr, value in values.items():
        if value is not None and not _STORED_SHAPES[attr](value):
            raise ValueError(f"{event_type.KEYS[attr]} holds {value!r}, which no {event_type.TYPE} event has")
    if event_type is Failed and "error" not in values:
        raise ValueError("a Failed event without its error")
    recorded = _recorded_at(payload["recordedAt"])
    occurred_at = parse_timestamp(payload["occurredAt"], "occurredAt")
    return event_type.assembled(name, version, recorded, occurred_at, payload.get("hash", ""), values)
