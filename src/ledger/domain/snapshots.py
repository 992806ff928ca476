"""Events that explain an Operation snapshot (as an API or `gcloud ... describe --format=json` returns
it) given the state the ledger holds: Created at first sight, Progressed for a new status or metadata,
CancelRequested when the flag appears, Succeeded or Failed when done. An unchanged snapshot explains
nothing. Times come from the metadata (createTime, updateTime, endTime) where present; a change
without one is put at the operation's latest known time. Pure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from . import commands
from .errors import LedgerError, invalid
from .operation import (
    COMMON_METADATA_TYPE,
    OWNED_KEYS,
    CancelRequested,
    Created,
    Failed,
    Operation,
    OperationEvent,
    Progressed,
    Succeeded,
)
from .timestamps import Timestamp, parse_timestamp
from .values import JSONObject, any_message

Explained = tuple[type[OperationEvent], Timestamp, JSONObject]
_SNAPSHOT_KEYS = {"name", "metadata", "done", "error", "response"}


def events_from_snapshot(op: Operation | None, snapshot: Mapping[str, Any], now: Timestamp) -> Iterator[Explained]:
    unknown = sorted(set(snapshot) - _SNAPSHOT_KEYS)
    if unknown:
        raise invalid(unknown[0], "is not a field of google.longrunning.Operation")
    metadata = any_message(snapshot["metadata"], "metadata") if snapshot.get("metadata") is not None else None
    # An operation the ledger holds keeps its convention; only a first sight is judged by the names.
    convention = op.lifecycle_fields if op is not None else _convention(metadata)
    fields = OWNED_KEYS[convention]
    labels = ("createTime", "endTime", "target", "verb", "detail", "cancelled", "apiVersion")
    lifecycle = (
        {label: metadata.get(key) for label, key in zip(labels, fields, strict=True)} if metadata and fields else {}
    )
    own = None
    if metadata is not None and metadata["@type"] != COMMON_METADATA_TYPE:
        own = {k: v for k, v in metadata.items() if k not in fields}
    # occurredAt comes from the API's own times only: a change the snapshot gives no time for is put
    # at the latest time known for the operation (it happened after that; when exactly is not known),
    # and recordedAt, the ledger's clock, says when it was seen. First sight without createTime: now.
    last: Timestamp | None = op.last_occurred_at if op else None

    def at(*candidates: object) -> Timestamp:
        """The first time the snapshot gives, never before the event before it."""
        nonlocal last
        chosen = last if last is not None else now
        for candidate in candidates:
            if isinstance(candidate, str):
                try:
                    chosen = parse_timestamp(candidate, "metadata")
                    break
                except LedgerError:
                    continue
        last = Timestamp(max(chosen, last)) if last is not None else chosen
        return last

    update_time = metadata.get("updateTime") if metadata else None
    if op is None:
        created_at = at(lifecycle.get("createTime"))
        yield (
            Created,
            created_at,
            commands.created_values(
                verb=lifecycle.get("verb"),
                target=lifecycle.get("target"),
                api_version=lifecycle.get("apiVersion"),
                metadata=own,  # None: the ledger's own OperationMetadata
                lifecycle_fields=convention,
                request_id=None,
            ),
        )
        op = Operation(str(snapshot["name"]), metadata=own, lifecycle_fields=convention)
    detail = lifecycle.get("detail")
    if detail is not None and not isinstance(detail, str):
        raise invalid(f"metadata.{fields[4]}", "must be a string")
    patch = _merge_patch(op.metadata, own) if own is not None and op.metadata is not None else None
    if (detail is not None and detail != op.status_detail) or patch:
        values = commands.progressed_values(
            op,
            status_detail=detail if detail != op.status_detail else None,
            progress_percent=None,
            metadata_patch=patch or None,
        )
        yield Progressed, at(update_time), values
    if lifecycle.get("cancelled") is True and not op.cancel_requested and not op.done:
        yield CancelRequested, at(update_time), {}
    if snapshot.get("done") is True and not op.done:
        ended = at(lifecycle.get("endTime"), update_time)
        if snapshot.get("error") is not None:
            error = snapshot["error"]
            if not isinstance(error, dict):
                raise invalid("error", "must be a google.rpc.Status object")
            yield Failed, ended, commands.failed_values(error.get("code"), error.get("message"), error.get("details"))
        else:
            yield Succeeded, ended, commands.succeeded_values(snapshot.get("response"))


def _convention(metadata: JSONObject | None) -> str:
    """Which lifecycle-field names a snapshot's metadata uses."""
    if metadata is None or metadata["@type"] == COMMON_METADATA_TYPE:
        return "common"
    if any(key in metadata for key in ("statusMessage", "requestedCancellation")):
        return "per-api"
    if any(key in metadata for key in ("statusDetail", "cancelRequested")):
        return "common"
    if any(key in metadata for key in ("createTime", "endTime", "verb", "target", "apiVersion")):
        return "per-api"
    return "none"


def _merge_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> JSONObject:
    """The RFC 7396 patch that turns `before` into `after` (empty when they are equal)."""
    patch: JSONObject = {}
    for key in before:
        if key not in after:
            patch[key] = None
    for key, value in after.items():
        old = before.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            inner = _merge_patch(old, value)
            if inner:
                patch[key] = inner
        elif key not in before or old != value:
            patch[key] = value
    return patch
