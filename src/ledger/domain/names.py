"""Operation resource names, as the server that runs the operation assigned them.

Under the default HTTP mapping a name ends in `operations/{id}`, but real APIs choose otherwise: Speech
v1 names operations with a bare number, Access Context Manager `operations/accessPolicies/{p}/create/{id}`.
The ledger accepts every such name and only refuses what no URL or shell could carry safely.
"""

from __future__ import annotations

import re

from .errors import invalid

MAX_NAME_BYTES = 1024
_BAD_CHAR = re.compile(r"[\s?#\x00-\x1f\x7f]")


def validate_name(name: object, field: str = "name") -> str:
    """The name unchanged when it is a valid operation name; INVALID_ARGUMENT naming the flaw otherwise.

    Valid: non-empty, at most 1,024 bytes of UTF-8, no whitespace, control characters, `?` or `#`,
    and no empty segment.
    """
    if not isinstance(name, str) or not name:
        raise invalid(field, "an operation name is required (e.g. projects/p/operations/op-1)")
    try:
        size = len(name.encode())
    except UnicodeEncodeError:
        raise invalid(field, f"{name!r} is not valid Unicode text") from None
    if size > MAX_NAME_BYTES:
        raise invalid(field, f"longer than {MAX_NAME_BYTES} bytes")
    bad = _BAD_CHAR.search(name)
    if bad:
        raise invalid(field, f"{name!r} contains {bad.group()!r}, which a name may not hold")
    if "" in name.split("/"):
        raise invalid(field, f"{name!r} has an empty segment")
    return name


def parent_of(name: str) -> str:
    """What comes before the last `operations` segment that is not the name's last segment.

    `A/B/operations/x` -> `A/B`; `operations/x`, `5263634183516942311` and
    `operations/accessPolicies/1/create/2` are in the root collection, ``.
    """
    segments = name.split("/")
    for index in range(len(segments) - 2, -1, -1):
        if segments[index] == "operations":
            return "/".join(segments[:index])
    return ""
