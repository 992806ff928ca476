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


class LogDigest:
    """A hash chain over the whole log in position order: each step covers the previous digest and one
    stored event exactly as stored (position, operation, version, topic, payload bytes).

    A digest taken at position N stays valid however many events come after N, and changes if any
    event at or before N is altered, removed, reordered, or slipped in.
    """

    def __init__(self) -> None:
        self.position = 0
        self._digest = hashlib.sha256(b"ledger log digest v1").digest()

    def update(self, position: int, name: str, version: int, topic: str, state: bytes) -> None:
        step = hashlib.sha256(self._digest)
        step.update(f"\x1e{position}\x1f{name}\x1f{version}\x1f{topic}\x1f".encode())
        step.update(state)
        self._digest = step.digest()
        self.position = position

    @property
    def digest(self) -> str:
        return "sha256:" + self._digest.hex()
