"""Which Any types the ledger holds, and whether each can go out over gRPC (`ledger types`).

Every live operation is read and packed exactly as GetOperation would pack it, so the answer is the
server's own: a type is servable when some descriptor defines it and every operation holding it
packs; otherwise the first problem met is shown, with how to supply the type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from ... import Ledger
from .anys import TypeRegistry, UnpackableError, type_urls

PAGE = 1000


@dataclass
class TypeUse:
    type_url: str
    operations: int = 0
    fields: set[str] = field(default_factory=set)
    problem: str = ""

    def report(self, registry: TypeRegistry) -> dict[str, object]:
        source = registry.find(self.type_url)
        entry: dict[str, object] = {
            "type": self.type_url,
            "operations": self.operations,
            "fields": sorted(self.fields),
            "grpc": source is not None and not self.problem,
        }
        if source is not None:
            entry["source"] = source
        if self.problem or source is None:
            entry["problem"] = self.problem or f"no descriptor of {self.type_url.rsplit('/', 1)[-1]} is known"
        return entry


def held_types(ledger: Ledger, registry: TypeRegistry) -> list[dict[str, object]]:
    """One entry per type URL found in live operations' metadata, responses and error details."""
    uses: dict[str, TypeUse] = {}
    token = ""
    while True:
        page = ledger.list(None, page_size=PAGE, page_token=token)
        for operation in page["operations"]:
            _count(operation, uses, registry)
        token = page.get("nextPageToken", "")
        if not token:
            return [uses[url].report(registry) for url in sorted(uses)]


def _count(operation: dict[str, object], uses: dict[str, TypeUse], registry: TypeRegistry) -> None:
    held: set[str] = set()
    for name, value in (("metadata", operation.get("metadata")), ("response", operation.get("response"))):
        for url in type_urls(value):
            uses.setdefault(url, TypeUse(url)).fields.add(name)
            held.add(url)
    error = operation.get("error")
    for url in type_urls(error.get("details", []) if isinstance(error, dict) else []):
        uses.setdefault(url, TypeUse(url)).fields.add("error.details")
        held.add(url)
    for url in held:
        uses[url].operations += 1
    if not held:
        return
    try:
        registry.operation(orjson.dumps(operation))
    except UnpackableError as e:  # blamed on the type it names, or on all of this operation's types
        blamed = [url for url in held if url.rsplit("/", 1)[-1] == e.type_name] or sorted(held)
        for url in blamed:
            uses[url].problem = uses[url].problem or e.message
