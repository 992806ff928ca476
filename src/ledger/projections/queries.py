"""Reads answered by the views: one operation now or as it was, and list pages (AIP-160 filters,
AIP-158 keyset paging). Results are the stored JSON bytes, never re-encoded."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ..domain.errors import Code, LedgerError, invalid
from ..domain.names import validate_name
from ..domain.operation import State
from ..domain.timestamps import Timestamp
from ..domain.values import MAX_POSITION
from ..storage.base import Cursor, Dialect
from . import history
from .rows import COLUMN_AT, OPERATION_COLUMNS, sortable_time
from .views import ROW_KEYS, column_types, sql_view

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
    cursor.execute(
        d.sql(f"SELECT body FROM {sql_view(d, 'operations')} WHERE name = ? AND state <> ?"), (name, DELETED)
    )
    row = cursor.fetchone()
    return _body(row[0]) if row else None


# What a flat listing (csv, table) shows: the view's own columns, whatever the metadata convention.
FLAT_COLUMNS = ("name", "state", "verb", "target", "create_time", "end_time", "error_code", "metadata_type")
_BEYOND = "(create_time < ? OR (create_time = ? AND name > ?))"  # after a page's last row, in page order
DELETED = State.DELETED.value

# The rows (OPERATION_COLUMNS) of the named operations that existed, undeleted, at a past point.
PastRows = Callable[[list[str], history.Until], dict[str, tuple[Any, ...]]]


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


def list_page(cursor: Cursor, d: Dialect, request: ListRequest, view_position: int, past: PastRows) -> Page:
    """One page of operations, newest createTime first, then by name.

    The first page reads the operations view, at `view_position`; the token carries that position, and
    later pages read the operations as they were there, so a listing is one snapshot however long it
    is read: an operation that changes, or appears, after the first page neither moves nor shows up.
    A page as of an earlier position or time reads each row that has not changed since as it stands
    and folds the others back to that point from their events (`past`), then filters those with
    the same condition.
    """
    # The filter language is loaded here, not at the top: `get` never needs it (start-up time of single commands).
    from .compiler import compile_filter
    from .filters import parse_filter

    size = page_size(request.page_size)
    tree = parse_filter(request.filter)  # first: the token's binding holds the filter
    after = _decode_token(request.page_token, request.binding) if request.page_token else None
    condition = compile_filter(tree, d, metadata_column=True)
    pinned = after[2] if after is not None else view_position
    scope, scope_params = ["TRUE"], list[Any]()
    if request.parent is not None:
        scope.append("parent = ?")
        scope_params.append(request.parent)
    wanted, wanted_params = f"state <> ? AND {condition.sql}", [DELETED, *condition.params]
    stands, stands_params, until = "1", list[Any](), None  # the present: every row as it stands
    point: str | int
    if request.as_of is not None or after is not None:
        if request.as_of is not None:
            at = sortable_time(request.as_of)
            scope.append("create_time <= ?")
            scope_params.append(at)
            unchanged, point, until = "changed_time <= ?", at, history.until_time(at)
        else:
            unchanged, point, until = "position <= ?", pinned, history.until_position(pinned)
        stands, stands_params = f"CASE WHEN {unchanged} THEN 1 ELSE 0 END", [point]
        wanted, wanted_params = f"({unchanged} AND {wanted}) OR NOT {unchanged}", [point, *wanted_params, point]
    found: list[tuple[bytes, dict[str, Any]]] = []
    key = (after[0], after[1]) if after is not None else None
    limit = size + 1
    while len(found) <= size:
        beyond, beyond_params = ("TRUE", []) if key is None else (_BEYOND, [key[0], key[0], key[1]])
        cursor.execute(
            d.sql(
                f"SELECT body, {', '.join(FLAT_COLUMNS)}, {stands} FROM {sql_view(d, 'operations')} "
                f"WHERE {' AND '.join(scope)} AND {beyond} AND ({wanted}) ORDER BY create_time DESC, name LIMIT ?"
            ),
            [*stands_params, *scope_params, *beyond_params, *wanted_params, limit],
        )
        rows = cursor.fetchall()
        changed = [row[1] for row in rows if not row[-1]]
        then = past(changed, until) if changed and until is not None else {}
        matching = _matching(cursor, d, condition, list(then.values())) if then else set()
        for row in rows:
            if row[-1]:
                found.append((_body(row[0]), dict(zip(FLAT_COLUMNS, row[1:-1], strict=True))))
            elif row[1] in matching:
                past_row = then[row[1]]
                found.append((bytes(past_row[COLUMN_AT["body"]]), {c: past_row[COLUMN_AT[c]] for c in FLAT_COLUMNS}))
        if len(rows) < limit:
            break
        key = (rows[-1][1 + FLAT_COLUMNS.index("create_time")], rows[-1][1])
        limit = min(limit * 2, MAX_PAGE_SIZE)  # rows that were otherwise then: read further at once
    page, more = found[:size], len(found) > size
    flat = [row for _, row in page]
    token = _encode_token(flat[-1]["create_time"], flat[-1]["name"], request.binding, pinned) if more else ""
    return Page([body for body, _ in page], flat, token)


def _matching(cursor: Cursor, d: Dialect, condition: Any, rows: list[tuple[Any, ...]]) -> set[str]:
    """The names of `rows` (OPERATION_COLUMNS) that meet `condition`, asked of the database itself so
    that a folded row is filtered exactly as a stored one."""
    one = "(" + ", ".join(_typed_placeholder(column_types(d)[c]) for c in OPERATION_COLUMNS) + ")"
    cursor.execute(
        d.sql(
            f"WITH past ({', '.join(OPERATION_COLUMNS)}) AS (VALUES {', '.join([one] * len(rows))}) "
            f"SELECT name FROM past WHERE {condition.sql}"
        ),
        [*(value for row in rows for value in row), *condition.params],
    )
    return {name for (name,) in cursor.fetchall()}


def _typed_placeholder(column_type: str) -> str:
    """A parameter of a column's type and collation (`TEXT COLLATE "C" NOT NULL`), for a VALUES row."""
    kind, _, collation = column_type.removesuffix(" NOT NULL").partition(" COLLATE ")
    return f"CAST(? AS {kind})" + (f" COLLATE {collation}" if collation else "")


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


def view_rows(cursor: Cursor, d: Dialect, names: list[str]) -> dict[str, ViewRow]:
    """The operations view's row (OPERATION_COLUMNS, then ROW_KEYS) of each named operation."""
    operations: dict[str, ViewRow] = {}
    columns = ", ".join((*OPERATION_COLUMNS, *ROW_KEYS))
    for start in range(0, len(names), 500):
        part = names[start : start + 500]
        in_list, as_array = d.in_list("name", len(part))
        cursor.execute(
            d.sql(f"SELECT {columns} FROM {sql_view(d, 'operations')} WHERE {in_list}"), (part,) if as_array else part
        )
        for row in cursor.fetchall():
            operations[row[0]] = tuple(row)
    return operations
