"""The per-operation hash chain: each event's hash covers its content and the previous hash.

Any later change to a stored event (a byte of its payload, its version, the operation it belongs to,
its order) changes the hash that a fresh computation gives, so audit can see it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

GENESIS = ""
"""The `previous` of an operation's first event."""


def link(previous: str, body: Mapping[str, Any]) -> str:
    """`sha256:<hex>` over the previous hash and the canonical (sorted-key) JSON of the event body."""
    digest = hashlib.sha256(previous.encode())
    digest.update(b"\n")
    digest.update(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    return "sha256:" + digest.hexdigest()
