"""Operation and event JSON exactly as SPEC §1 and §2 and the proto3 JSON mapping print them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .operation import COMMON_METADATA_TYPE, OWNED_KEYS, Operation, OperationEvent
from .timestamps import format_timestamp
from .values import JSONObject


def render_operation(op: Operation) -> JSONObject:
    """`google.longrunning.Operation` JSON: name, metadata, done (only when true), error or response.

    A verbatim operation shows what its API returned and nothing else: no metadata when it gave none,
    done without a result when it gave none.
    """
    out: JSONObject = {"name": op.name}
    if not op.verbatim or op.metadata is not None:
        out["metadata"] = render_metadata(op)
    if op.done:
        out["done"] = True
        if op.error is not None:
            out["error"] = op.error
        elif op.response is not None:
            out["response"] = op.response
    return out


def render_metadata(op: Operation) -> JSONObject:
    metadata = op.metadata if op.metadata is not None else {"@type": COMMON_METADATA_TYPE}
    owned = OWNED_KEYS[op.lifecycle_fields]
    if not owned:
        return metadata
    rendered = {k: v for k, v in metadata.items() if k not in owned}
    rendered.update(_lifecycle_values(op, owned))
    return rendered


def _lifecycle_values(op: Operation, keys: tuple[str, ...]) -> JSONObject:
    """The seven maintained fields under the convention's names; unset or false ones omitted."""
    create_time, end_time, target, verb, detail, cancelled, api_version = keys
    values: list[tuple[str, Any]] = [
        (create_time, format_timestamp(op.create_time)),
        (end_time, format_timestamp(op.end_time) if op.end_time is not None else None),
        (target, op.target),
        (verb, op.verb),
        (detail, op.status_detail),
        (cancelled, True if op.cancel_requested else None),
        (api_version, op.api_version),
    ]
    return {key: value for key, value in values if value not in (None, "")}


def states_passed(events: Iterable[OperationEvent]) -> list[JSONObject]:
    """The Operation JSON after each of an operation's events, oldest first."""
    states: list[JSONObject] = []
    op: Operation | None = None
    for event in events:
        op = event.mutate(op)
        if op is not None:
            states.append(render_operation(op))
    return states


def render_event(event: OperationEvent, position: int | None) -> JSONObject:
    """SPEC event JSON: type, name, occurredAt, the type's fields, version, position, recordedAt, hash."""
    body = event.body()
    out = {k: v for k, v in body.items() if k not in ("version", "recordedAt")}
    out["version"] = body["version"]
    if position is not None:
        out["position"] = position
    out["recordedAt"] = body["recordedAt"]
    out["hash"] = event.hash
    return out
