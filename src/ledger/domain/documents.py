"""Operation snapshots in the shapes users have them, found from the content:

- JSON lines, one Operation (or ListOperationsResponse page) a line: read as a stream;
- a JSON array of them (`gcloud ... operations list --format=json`);
- pretty-printed JSON documents one after another (`gcloud ... operations describe --format=json`);
- YAML documents separated by `---` lines (gcloud's default output).

Each document comes with the line it starts on, so a rejection names the place in the file. A
document that cannot be read is its own rejection; the others still land.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from .errors import LedgerError, invalid
from .values import JSONObject

Document = tuple[int, bytes, "JSONObject | LedgerError"]  # line, text, the object or why it is none


def json_lines(lines: Iterable[bytes]) -> Iterator[Document]:
    """Event or snapshot JSON lines; blank lines are skipped but counted."""
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            yield number, raw, parse_object(raw)


def snapshot_documents(lines: Iterable[bytes]) -> Iterator[Document]:
    """Snapshots in whichever of the shapes above the input has."""
    stream = iter(lines)
    head: list[bytes] = []
    for raw in stream:
        head.append(raw)
        if raw.strip():
            break
    first = head[-1].strip() if head else b""
    if first.startswith(b"{") and first != b"{":  # a pretty-printed document opens with `{` alone
        yield from json_lines(_chain(head, stream))
        return
    text = b"".join(_ending(raw) for raw in _chain(head, stream)).decode("utf-8", errors="replace")
    if first.startswith((b"[", b"{")):
        yield from _json_documents(text)
    elif first:
        yield from _yaml_documents(text)


def parse_object(raw: bytes) -> JSONObject | LedgerError:
    """A line's JSON object, or why it is not one (its line's rejection, when the batch gets to it)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return invalid("line", f"not valid JSON: {e}")
    if not isinstance(value, dict):
        return invalid("line", "must be a JSON object")
    return value


def _json_documents(text: str) -> Iterator[Document]:
    """Pretty-printed documents one after another, or the elements of one JSON array."""
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    in_array = text.startswith("[", position)
    if in_array:
        position = _skip_space(text, position + 1)
    while position < len(text):
        if in_array and text.startswith("]", position):
            position = _skip_space(text, position + 1)
            in_array = False
            continue
        line = text.count("\n", 0, position) + 1
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as e:
            yield line, text[position : position + 200].encode(), invalid("line", f"not valid JSON: {e.msg}")
            return  # where one document breaks, the next cannot be found
        yield line, text[position:end].encode(), _object(value)
        position = _skip_space(text, end)
        if in_array and text.startswith(",", position):
            position = _skip_space(text, position + 1)


def _yaml_documents(text: str) -> Iterator[Document]:
    """gcloud's YAML: documents between `---` lines, each read on its own."""
    import yaml

    class Loader(yaml.SafeLoader):
        """Times stay the strings the API wrote (SafeLoader would make them datetimes)."""

    Loader.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for line, chunk in _yaml_chunks(text):
        try:
            value = yaml.load(chunk, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as e:
            yield line, chunk.encode(), invalid("line", f"not valid YAML: {str(e).splitlines()[0]}")
            continue
        if value is not None:
            yield line, chunk.encode(), _object(value)


def _yaml_chunks(text: str) -> Iterator[tuple[int, str]]:
    start, lines = 1, list[str]()
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if line.rstrip() == "---" or line.startswith("--- "):
            if any(part.strip() for part in lines):
                yield start, "".join(lines)
            start, lines = number + 1, [line[4:]] if line.startswith("--- ") else []
        else:
            lines.append(line)
    if any(part.strip() for part in lines):
        yield start, "".join(lines)


def _object(value: Any) -> JSONObject | LedgerError:
    if not isinstance(value, dict):
        return invalid("line", "must be a JSON object (an Operation or a ListOperationsResponse)")
    try:
        orjson.dumps(value)  # a YAML document may hold what JSON cannot (sets, binary)
    except TypeError as e:
        return invalid("line", f"holds a value JSON cannot: {e}")
    return value


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _chain(head: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from head
    yield from rest


def _ending(raw: bytes) -> bytes:
    return raw if raw.endswith(b"\n") else raw + b"\n"
