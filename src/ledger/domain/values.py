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


MAX_DEPTH = 64
"""Objects and arrays nested deeper than this are refused: orjson, Python's recursion and the
filters' JSON paths all have limits further down, and a value stored must stay readable."""
MAX_INDEXED_BYTES = 1024
"""Text that the views index (verb, target, an `Any`'s @type) is at most this many bytes of UTF-8: with
a name of up to 1,024 bytes it still fits one PostgreSQL btree index row (at most 2,704 bytes)."""
MAX_POSITION = 2**63 - 1  # a log position is a signed 64-bit integer in both databases


def check_position(value: object, field: str) -> int:
    """A log position given by a caller: an integer from 0 to MAX_POSITION."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POSITION:
        raise invalid(field, f"{value!r} is not a log position (0..{MAX_POSITION})")
    return value


_INT_RANGE = (-(2**63), 2**64 - 1)
_FLOAT_LIMIT = 1e16  # from here orjson writes floats with an exponent, which jsonb turns into digits


def check_storable(value: object, field: str) -> None:
    """JSON that both databases hold alike and give back unchanged: valid UTF-8, string keys, no NUL
    (PostgreSQL's text and jsonb cannot hold it), at most MAX_DEPTH levels, and numbers that read back
    the same from SQLite's text and PostgreSQL's jsonb: integers within 64 bits and finite floats of
    magnitude below 1e16 (jsonb writes `1e30` as 31 digits, which then read back as another value)."""
    _check_value(value, field, 0)
    try:
        orjson.dumps(value)
    except TypeError as e:
        raise invalid(field, f"cannot be stored as JSON: {e}") from None


def _check_value(value: object, field: str, depth: int) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise invalid(field, "contains a NUL character")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            raise invalid(field, f"{value} is outside the 64-bit integers both databases store alike")
    elif isinstance(value, float):
        if not abs(value) < _FLOAT_LIMIT:  # also NaN and infinities, which JSON cannot hold
            raise invalid(field, f"{value!r} is not a number both databases store alike (|x| < 1e16)")
    elif isinstance(value, (Mapping, list, tuple)):
        if depth >= MAX_DEPTH:
            raise invalid(field, f"is nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, Mapping):
            for key, item in value.items():
                _check_value(key, field, depth)
                _check_value(item, f"{field}.{key}", depth + 1)
        else:
            for index, item in enumerate(value):
                _check_value(item, f"{field}[{index}]", depth + 1)


def check_indexed_text(value: str, field: str) -> None:
    """Text the views index: at most MAX_INDEXED_BYTES of UTF-8."""
    if len(value) > MAX_INDEXED_BYTES // 4 and len(value.encode("utf-8", "surrogatepass")) > MAX_INDEXED_BYTES:
        raise invalid(field, f"longer than {MAX_INDEXED_BYTES} bytes")


def any_message(value: object, field: str) -> JSONObject:
    """A JSON `Any`: an object whose `@type` names a type URL; returned with `@type` first."""
    if isinstance(value, (str, bytes)):
        value = parse_json(value, field)
    if not isinstance(value, Mapping):
        raise invalid(field, "must be a JSON object with an @type")
    type_url = value.get("@type")
    if not isinstance(type_url, str) or "/" not in type_url or not type_url.rsplit("/", 1)[1]:
        raise invalid(field, f"needs an @type such as {EMPTY_TYPE!r}, got {type_url!r}")
    check_indexed_text(type_url, f"{field}.@type")
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
