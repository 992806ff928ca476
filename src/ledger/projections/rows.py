"""View rows derived from an operation's state: the indexed columns and the served JSON bytes. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from ..domain.errors import Code, LedgerError
from ..domain.names import parent_of
from ..domain.operation import Operation, State
from ..domain.rendering import render_operation
from ..domain.timestamps import Timestamp, format_sortable, format_timestamp, parse_timestamp
from ..domain.values import JSONObject

STATES = tuple(s.value for s in State)

# The columns of an operations view row, in this order. The metadata is kept as JSON beside the body:
# a metadata path filter read from a column of its own ran 2.6x (SQLite) and 5.5x (PostgreSQL) as
# fast as from the body (bench/lean.py, 10k operations). Response paths are read from the body.
OPERATION_COLUMNS = (
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
    "body",
    "metadata",
)
COLUMN_AT = {column: index for index, column in enumerate(OPERATION_COLUMNS)}  # where a row holds each


sortable_time = format_sortable


def operation_row(op: Operation) -> tuple[Any, ...]:
    """The OPERATION_COLUMNS of `op` as it is now; `body` holds the exact Operation JSON bytes."""
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
        # Filters on response paths read it as JSON.
        orjson.dumps(rendered),
        orjson.dumps(rendered.get("metadata", {})).decode(),  # a verbatim operation may have none
    )


def stored_time(value: str) -> Timestamp:
    """A time column as the views store it; one edited into something else is DATA_LOSS."""
    try:
        return parse_timestamp(value, "time")
    except LedgerError:
        raise LedgerError(
            Code.DATA_LOSS, f"a view row holds {value!r} as a time; `ledger replay` rebuilds the views"
        ) from None


def flat_row(row: dict[str, Any]) -> JSONObject:
    """View columns under the names the Operation JSON uses, times printed as protobuf prints them."""

    def time_text(value: str | None) -> str:
        return format_timestamp(stored_time(value)) if value else ""

    return {
        "name": row["name"],
        "state": row["state"],
        "verb": row["verb"],
        "target": row["target"],
        "createTime": time_text(row["create_time"]),
        "endTime": time_text(row["end_time"]),
        "errorCode": row["error_code"] if row["error_code"] is not None else "",
        "metadataType": row["metadata_type"],
    }
