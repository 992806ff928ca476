"""The structured values operations carry: `Any` messages, `google.rpc.Status`, merge patches.

Each check raises INVALID_ARGUMENT naming the field, so a bad value never reaches an event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from .errors import error_code, invalid

JSONObject = dict[str, Any]

EMPTY_TYPE = "type.googleapis.com/google.protobuf.Empty"
EMPTY: JSONObject = {"@type": EMPTY_TYPE}


def parse_json(text: str | bytes, field: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise invalid(field, f"not valid JSON: {e}") from None


def check_storable(value: object, field: str) -> None:
    """JSON that both databases can hold: encodable (64-bit integers, valid UTF-8, string keys) and
    without NUL characters, which PostgreSQL's text and jsonb cannot hold."""
    try:
        orjson.dumps(value)
    except TypeError as e:
        raise invalid(field, f"cannot be stored as JSON: {e}") from None
    _reject_nul(value, field)


def _reject_nul(value: object, field: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise invalid(field, "contains a NUL character")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _reject_nul(key, field)
            _reject_nul(item, f"{field}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _reject_nul(item, f"{field}[{index}]")


def any_message(value: object, field: str) -> JSONObject:
    """A JSON `Any`: an object whose `@type` names a type URL; returned with `@type` first."""
    if isinstance(value, (str, bytes)):
        value = parse_json(value, field)
    if not isinstance(value, Mapping):
        raise invalid(field, "must be a JSON object with an @type")
    type_url = value.get("@type")
    if not isinstance(type_url, str) or "/" not in type_url or not type_url.rsplit("/", 1)[1]:
        raise invalid(field, f"needs an @type such as {EMPTY_TYPE!r}, got {type_url!r}")
    check_storable(value, field)
    rest = {k: v for k, v in value.items() if k != "@type"}
    if type_url == EMPTY_TYPE and rest:
        raise invalid(field, "google.protobuf.Empty has no fields")
    return {"@type": type_url, **rest}


def status(code: object, message: object, details: Iterable[object] | None, field: str = "error") -> JSONObject:
    """A `google.rpc.Status` in proto3 JSON: code 1..16, empty message and details omitted."""
    checked = error_code(code, f"{field}.code")
    if message is None:
        message = ""
    if not isinstance(message, str):
        raise invalid(f"{field}.message", "must be a string")
    check_storable(message, f"{field}.message")
    if details is not None and not isinstance(details, (list, tuple)):
        raise invalid(f"{field}.details", "must be a list of Any objects")
    out: JSONObject = {"code": int(checked)}
    if message:
        out["message"] = message
    detail_list = [any_message(d, f"{field}.details[{i}]") for i, d in enumerate(details or ())]
    if detail_list:
        out["details"] = detail_list
    return out


def merge_patch(target: object, patch: object) -> Any:
    """RFC 7396: objects merge recursively, `null` removes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
