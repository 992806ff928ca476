"""View rows derived from an operation's state: the indexed columns and the served JSON bytes. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from ..domain import Operation, State
from ..names import parent_of
from ..rendering import render_operation
from ..timestamps import format_sortable

STATES = tuple(s.value for s in State)

# The columns every view row carries, in this order.
COLUMNS = (
    "name",
    "parent",
    "state",
    "verb",
    "target",
    "create_time",
    "end_time",
    "cancel_requested",
    "error_code",
    "error_message",
    "metadata_type",
    "response_type",
    "metadata",
    "response",
    "body",
)
JSON_COLUMNS = ("metadata", "response")


sortable_time = format_sortable


def operation_row(op: Operation) -> tuple[Any, ...]:
    """The COLUMNS of `op` as it is now; `body` holds the exact Operation JSON bytes."""
    rendered = render_operation(op)
    response = rendered.get("response")
    error = op.error
    return (
        op.name,
        parent_of(op.name),
        op.state.value,
        op.verb or "",
        op.target or "",
        sortable_time(op.create_time),
        sortable_time(op.end_time) if op.end_time is not None else None,
        1 if op.cancel_requested else 0,
        error["code"] if error else None,
        error.get("message", "") if error else None,
        # A verbatim operation may have no metadata: no type, and an empty object to filter on.
        rendered.get("metadata", {}).get("@type", ""),
        response["@type"] if response else None,
        orjson.dumps(rendered.get("metadata", {})).decode(),
        orjson.dumps(response).decode() if response else None,
        orjson.dumps(rendered),
    )
