"""Operation resource names: `[collection path/]operations/{id}`."""

from __future__ import annotations

import re

from .errors import invalid

MAX_NAME_BYTES = 1024
_BAD_SEGMENT_CHAR = re.compile(r"[/\s?#\x00-\x1f\x7f]")


def validate_name(name: object, field: str = "name") -> str:
    """The name unchanged when it is a valid operation name; INVALID_ARGUMENT naming the flaw otherwise."""
    if not isinstance(name, str) or not name:
        raise invalid(field, "an operation name is required (e.g. projects/p/operations/op-1)")
    try:
        size = len(name.encode())
    except UnicodeEncodeError:
        raise invalid(field, f"{name!r} is not valid Unicode text") from None
    if size > MAX_NAME_BYTES:
        raise invalid(field, f"longer than {MAX_NAME_BYTES} bytes")
    segments = name.split("/")
    if len(segments) < 2 or segments[-2] != "operations":
        raise invalid(field, f"{name!r} does not end in operations/{{id}}")
    for segment in segments:
        if not segment:
            raise invalid(field, f"{name!r} has an empty segment")
        bad = _BAD_SEGMENT_CHAR.search(segment)
        if bad:
            raise invalid(field, f"{name!r} contains {bad.group()!r}, which a segment may not hold")
    return name


def parent_of(name: str) -> str:
    """`A/B/operations/x` -> `A/B`; `operations/x` -> `` (the root collection)."""
    return name.rsplit("/", 2)[0] if name.count("/") >= 2 else ""
