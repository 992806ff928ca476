"""Command arguments checked and shaped into event values. Pure: every failure is INVALID_ARGUMENT.

The lifecycle rules that depend on history (done, deleted, time order) live in `domain.broken_rule`;
this module checks what a caller typed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import invalid
from .operation import (
    COMMON_METADATA_TYPE,
    OWNED_KEYS,
    STORED_LIFECYCLE_FIELDS,
    VERBATIM,
    Operation,
    default_lifecycle_fields,
)
from .values import EMPTY, JSONObject, any_message, check_storable, merge_patch, parse_json, status


def created_values(
    *,
    verb: object,
    target: object,
    api_version: object,
    metadata: object,
    lifecycle_fields: object,
    request_id: object,
) -> JSONObject:
    meta = any_message(metadata, "metadata") if metadata is not None else None
    if lifecycle_fields is None or lifecycle_fields == "":
        fields = default_lifecycle_fields(meta)
    elif lifecycle_fields in STORED_LIFECYCLE_FIELDS:
        fields = str(lifecycle_fields)
    else:
        raise invalid("lifecycleFields", f"{lifecycle_fields!r} is not one of {', '.join(STORED_LIFECYCLE_FIELDS)}")
    if meta is None and fields not in ("common", VERBATIM):
        raise invalid(
            "lifecycleFields",
            f"{fields!r} needs metadata of the API's own @type; without metadata the ledger keeps "
            "OperationMetadata and its seven fields (common)",
        )
    if meta is not None and meta["@type"] == COMMON_METADATA_TYPE and fields == "per-api":
        raise invalid("lifecycleFields", f"'per-api' names are not fields of {COMMON_METADATA_TYPE}")
    if meta is not None:
        _refuse_owned_keys(meta, fields, "metadata")
    return {
        "verb": _text(verb, "verb"),
        "target": _text(target, "target"),
        "api_version": _text(api_version, "apiVersion"),
        "metadata": meta,
        "lifecycle_fields": fields,
        "request_id": _text(request_id, "requestId"),
    }


def progressed_values(
    op: Operation, *, status_detail: object, progress_percent: object, metadata_patch: object
) -> JSONObject:
    if status_detail is None and progress_percent is None and metadata_patch is None:
        raise invalid("progress", "give at least one of statusDetail, progressPercent, metadataPatch")
    if status_detail is not None and not isinstance(status_detail, str):
        raise invalid("statusDetail", "must be a string")
    check_storable(status_detail, "statusDetail")
    if progress_percent is not None and (
        isinstance(progress_percent, bool) or not isinstance(progress_percent, int) or not 0 <= progress_percent <= 100
    ):
        raise invalid("progressPercent", f"{progress_percent!r} is not a whole number from 0 to 100")
    patch = _metadata_patch(op, metadata_patch) if metadata_patch is not None else None
    return {"status_detail": status_detail, "progress_percent": progress_percent, "metadata_patch": patch}


def succeeded_values(response: object, *, verbatim: bool = False) -> JSONObject:
    """The response, google.protobuf.Empty when none is given; a verbatim operation keeps none."""
    if response is not None:
        return {"response": any_message(response, "response")}
    return {"response": None if verbatim else dict(EMPTY)}


def failed_values(code: object, message: object, details: Iterable[object] | str | bytes | None) -> JSONObject:
    if isinstance(details, (str, bytes)):
        details = parse_json(details, "error.details")
    return {"error": status(code, message, details)}


def _metadata_patch(op: Operation, patch: object) -> JSONObject:
    if isinstance(patch, (str, bytes)):
        patch = parse_json(patch, "metadataPatch")
    if not isinstance(patch, Mapping):
        raise invalid("metadataPatch", "must be a JSON object (an RFC 7396 merge patch)")
    check_storable(patch, "metadataPatch")
    if op.metadata is None and not op.verbatim:
        raise invalid(
            "metadataPatch",
            f"operation {op.name!r} has the ledger's own OperationMetadata; record statusDetail instead",
        )
    if op.metadata is not None and "@type" in patch and patch["@type"] != op.metadata["@type"]:
        raise invalid("metadataPatch.@type", f"may not change the metadata type {op.metadata['@type']!r}")
    _refuse_owned_keys(patch, op.lifecycle_fields, "metadataPatch")
    any_message(merge_patch(op.metadata or {}, patch), "metadataPatch")
    return dict(patch)


def _refuse_owned_keys(metadata: Mapping[str, Any], lifecycle_fields: str, field: str) -> None:
    for key in OWNED_KEYS[lifecycle_fields]:
        if key in metadata:
            raise invalid(
                f"{field}.{key}",
                f"is maintained by the ledger (lifecycleFields={lifecycle_fields}); pass it as its own argument",
            )


def _text(value: object, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    check_storable(value, field)
    return value
