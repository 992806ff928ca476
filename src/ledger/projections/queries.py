"""Reads answered by the views: one operation now or as it was, and list pages (AIP-160 filters,
AIP-158 keyset paging). Results are the stored JSON bytes, never re-encoded."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from ..domain.errors import Code, LedgerError, invalid
from ..domain.names import validate_name
from ..domain.timestamps import Timestamp
from ..domain.values import MAX_POSITION
from ..storage.base import Cursor, Dialect
from .rows import COLUMNS, OPERATION_COLUMNS, sortable_time
from .views import VersionsView, sql_view

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class ListRequest:
    parent: str | None  # None: every collection; "": the root collection
    filter: str
    page_size: int
    page_token: str
    as_of: Timestamp | None

    @property
    def binding(self) -> str:
        """What a page token is bound to: a token is valid only for the request that issued it."""
        key = orjson.dumps([self.parent, self.filter, str(self.as_of)])  # nanoseconds may pass 64 bits
        return hashlib.sha256(key).hexdigest()[:24]


def normalize_parent(parent: str | None) -> str | None:
    """`projects/p` and `projects/p/operations` name the same collection; `operations` is the root."""
    if parent is None:
        return None
    if parent in ("", "operations"):
        return ""
    collection = parent.removesuffix("/operations")
    try:
        validate_name(f"{collection}/operations/x", "parent")
    except LedgerError:
        raise invalid("parent", f"{parent!r} is not a collection such as projects/p/locations/l") from None
    return collection


def page_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise invalid("page_size", f"{size!r} is not a page size (0 for the default of {DEFAULT_PAGE_SIZE})")
    return min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def operation_body(cursor: Cursor, d: Dialect, name: str) -> bytes | None:
    cursor.execute(d.sql(f"SELECT body FROM {sql_view(d, 'operations')} WHERE name = ?"), (name,))
    row = cursor.fetchone()
    return _body(row[0]) if row else None


def version_body(cursor: Cursor, d: Dialect, name: str, version: int) -> bytes | None:
    cursor.execute(d.sql(f"SELECT body FROM {sql_view(d, 'versions')} WHERE name = ? AND version = ?"), (name, version))
    row = cursor.fetchone()
    return _body(row[0]) if row else None


def body_as_of(cursor: Cursor, d: Dialect, name: str, at: Timestamp) -> bytes | None:
    """The state after every event that occurred at or before `at`."""
    when = sortable_time(at)
    cursor.execute(
        d.sql(
            f"SELECT body FROM {sql_view(d, 'versions')} WHERE name = ? AND valid_from_time <= ? "
            "AND (valid_to_time IS NULL OR valid_to_time > ?)"
        ),
        (name, when, when),
    )
    row = cursor.fetchone()
    return _body(row[0]) if row else None


# What a flat listing (csv, table) shows: the view's own columns, whatever the metadata convention.
FLAT_COLUMNS = ("name", "state", "verb", "target", "create_time", "end_time", "error_code", "metadata_type")


@dataclass(frozen=True)
class Page:
    bodies: list[bytes]
    flat: list[dict[str, Any]]
    next_token: str

    def json(self) -> bytes:
        """ListOperationsResponse JSON, assembled from the stored operation bytes."""
        out = b'{"operations":[' + b",".join(self.bodies) + b"]"
        if self.next_token:
            out += b',"nextPageToken":"' + self.next_token.encode() + b'"'
        return out + b"}"


def list_page(cursor: Cursor, d: Dialect, request: ListRequest, view_position: int) -> Page:
    """One page of operations, newest createTime first, then by name.

    The first page reads the operations view, at `view_position`; the token carries that position, and
    later pages read the versions view as of it, so a listing is one snapshot however long it is read:
    an operation that changes, or appears, after the first page neither moves nor shows up.
    """
    # The filter language is loaded here, not at the top: `get` never needs it (start-up time of single commands).
    from .compiler import compile_filter
    from .filters import parse_filter

    size = page_size(request.page_size)
    tree = parse_filter(request.filter)  # first: the token's binding holds the filter
    after = _decode_token(request.page_token, request.binding) if request.page_token else None
    first = request.as_of is None and after is None  # the operations view, with its metadata column
    condition = compile_filter(tree, d, metadata_column=first)
    where, params = [condition.sql], list(condition.params)
    if request.parent is not None:
        where.append("parent = ?")
        params.append(request.parent)
    pinned = after[2] if after is not None else view_position
    if request.as_of is not None:
        table = sql_view(d, "versions")
        at = sortable_time(request.as_of)
        where.append("create_time <= ? AND valid_from_time <= ? AND (valid_to_time IS NULL OR valid_to_time > ?)")
        params += [at, at, at]
    elif after is None:
        table = sql_view(d, "operations")
    else:
        table = sql_view(d, "versions")
        where.append("valid_from_position <= ? AND (valid_to_position IS NULL OR valid_to_position > ?)")
        params += [pinned, pinned]
    if after is not None:
        where.append("(create_time < ? OR (create_time = ? AND name > ?))")
        params += [after[0], after[0], after[1]]
    cursor.execute(
        d.sql(
            f"SELECT body, {', '.join(FLAT_COLUMNS)} FROM {table} WHERE {' AND '.join(where)} "
            "ORDER BY create_time DESC, name LIMIT ?"
        ),
        [*params, size + 1],
    )
    rows = cursor.fetchall()
    page, more = rows[:size], len(rows) > size
    flat = [dict(zip(FLAT_COLUMNS, row[1:], strict=True)) for row in page]
    token = _encode_token(flat[-1]["create_time"], flat[-1]["name"], request.binding, pinned) if more else ""
    return Page([_body(row[0]) for row in page], flat, token)


def _body(stored: Any) -> bytes:
    """A view's stored Operation JSON, checked to be a JSON object: a row edited by hand into
    something else is DATA_LOSS naming the cure, not bytes passed on that no client can read."""
    body = bytes(stored)
    try:
        if not isinstance(orjson.loads(body), dict):
            raise orjson.JSONDecodeError("not an object", "", 0)
    except orjson.JSONDecodeError:
        raise LedgerError(
            Code.DATA_LOSS, "a view row holds a body that is not Operation JSON; `ledger replay` rebuilds the views"
        ) from None
    return body


def _encode_token(create_time: str, name: str, binding: str, position: int) -> str:
    raw = orjson.dumps([create_time, name, binding, position])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_token(token: str, binding: str) -> tuple[str, str, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        create_time, name, bound, position = orjson.loads(raw)
        if not all(isinstance(v, str) for v in (create_time, name, bound)) or type(position) is not int:
            raise TypeError
        if not 0 <= position <= MAX_POSITION:
            raise ValueError
    except (binascii.Error, ValueError, TypeError):
        raise invalid("page_token", "is not a page token this ledger issued") from None
    if bound != binding:
        raise invalid("page_token", "was issued for another parent, filter or as-of; start again without it")
    return create_time, name, position


ViewRow = tuple[Any, ...]


def view_rows(cursor: Cursor, d: Dialect, names: list[str]) -> tuple[dict[str, ViewRow], dict[str, list[ViewRow]]]:
    """The operations view's row and the versions view's rows (by version) of each named operation."""
    operations: dict[str, ViewRow] = {}
    versions: dict[str, list[ViewRow]] = {}
    for start in range(0, len(names), 500):
        part = names[start : start + 500]
        in_list, as_array = d.in_list("name", len(part))
        params = (part,) if as_array else part
        op_columns = ", ".join((*OPERATION_COLUMNS, "version", "position"))
        cursor.execute(d.sql(f"SELECT {op_columns} FROM {sql_view(d, 'operations')} WHERE {in_list}"), params)
        for row in cursor.fetchall():
            operations[row[0]] = tuple(row)
        version_columns = ", ".join((*COLUMNS, *VersionsView.KEYS))
        cursor.execute(
            d.sql(f"SELECT {version_columns} FROM {sql_view(d, 'versions')} WHERE {in_list} ORDER BY name, version"),
            params,
        )
        for row in cursor.fetchall():
            versions.setdefault(row[0], []).append(tuple(row))
    return operations, versions
