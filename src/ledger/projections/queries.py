"""Reads answered by the views: one operation now or as it was, and list pages (AIP-160 filters,
AIP-158 keyset paging). Results are the stored JSON bytes, never re-encoded."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # the filter language is loaded by the first list: `get` never needs it
    from .compiler import Condition

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


def operation_body(
    cursor: Cursor, d: Dialect, name: str, beside: tuple[str, tuple[Any, ...]] = ("NULL", ())
) -> tuple[bytes | None, Any]:
    """The operation's Operation JSON as the view stores it (None when it has none), and the value
    of the expression `beside` (with its parameters), selected in the same statement."""
    expression, params = beside
    cursor.execute(
        d.sql(f"SELECT (SELECT body FROM {sql_view(d, 'operations')} WHERE name = ? AND state <> ?), {expression}"),
        (name, DELETED, *params),
    )
    body, value = cursor.fetchone()
    return (_body(body) if body is not None else None), value


# What a flat listing (csv, table) shows: the view's own columns, whatever the metadata convention.
FLAT_COLUMNS = ("name", "state", "verb", "target", "create_time", "end_time", "error_code", "metadata_type")
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
    """
    # The filter language is loaded here, not at the top: `get` never needs it (start-up time of single commands).
    from .compiler import compile_filter
    from .filters import parse_filter

    size = page_size(request.page_size)
    tree = parse_filter(request.filter)  # first: the token's binding holds the filter
    after = _decode_token(request.page_token, request.binding) if request.page_token else None
    condition = compile_filter(tree, d, metadata_column=True)
    pinned = after[2] if after is not None else view_position
    scope = Where(["TRUE"], [])
    if request.parent is not None:
        scope = scope.also("parent = ?", request.parent)
    wanted = scope.also("state <> ?", DELETED).also(condition.sql, *condition.params)
    key = (after[0], after[1]) if after is not None else None
    if request.as_of is None and after is None:  # the present: every row as it stands
        rows = _select(cursor, d, _SHOWN, wanted, key, size + 1)
        found = [_shown(row) for row in rows]
    else:
        if request.as_of is not None:
            at = sortable_time(request.as_of)
            scope, wanted = scope.also("create_time <= ?", at), wanted.also("create_time <= ?", at)
            unchanged = Where(["changed_time <= ?"], [at])
            until = history.until_time(request.as_of)
        else:
            unchanged, until = Where(["position <= ?"], [pinned]), history.until_position(pinned)
        found = _past_page(
            cursor, d, size, key, condition, wanted.also(unchanged), scope.excluding(unchanged), until, past
        )
    page, more = found[:size], len(found) > size
    flat = [row for _, row in page]
    token = _encode_token(flat[-1]["create_time"], flat[-1]["name"], request.binding, pinned) if more else ""
    return Page([body for body, _ in page], flat, token)


@dataclass(frozen=True)
class Where:
    """Conditions to AND together, with their parameters in order."""

    terms: list[str]
    params: list[Any]

    def also(self, term: str | Where, *params: Any) -> Where:
        if isinstance(term, Where):
            return Where([*self.terms, *term.terms], [*self.params, *term.params])
        return Where([*self.terms, term], [*self.params, *params])

    def excluding(self, excluded: Where) -> Where:
        """These conditions, and not all of `excluded`."""
        return Where([*self.terms, f"NOT ({' AND '.join(excluded.terms)})"], [*self.params, *excluded.params])

    @property
    def sql(self) -> str:
        return " AND ".join(f"({term})" for term in self.terms)


Key = tuple[str, str]  # (create_time, name): where a row stands in page order
_SHOWN = ("body", *FLAT_COLUMNS)
# After a key in page order; before it, or it. Each with a bare bound on create_time, which the
# database can seek an index to (an OR alone it reads row by row from the start of the order).
_BEYOND = "create_time <= ? AND (create_time < ? OR name > ?)"
_UP_TO = "create_time >= ? AND (create_time > ? OR name <= ?)"


def _select(
    cursor: Cursor, d: Dialect, columns: tuple[str, ...], where: Where, key: Key | None, limit: int
) -> list[Any]:
    """Up to `limit` rows' `columns` that meet `where`, after `key` in page order."""
    if key is not None:
        where = where.also(_BEYOND, key[0], key[0], key[1])
    cursor.execute(
        d.sql(
            f"SELECT {', '.join(columns)} FROM {sql_view(d, 'operations')} WHERE {where.sql} "
            "ORDER BY create_time DESC, name LIMIT ?"
        ),
        [*where.params, limit],
    )
    return cursor.fetchall()


def _shown(row: tuple[Any, ...]) -> tuple[bytes, dict[str, Any]]:
    return _body(row[0]), dict(zip(FLAT_COLUMNS, row[1:], strict=True))


def _past_page(
    cursor: Cursor,
    d: Dialect,
    size: int,
    key: Key | None,
    condition: Condition,
    stood: Where,
    changed: Where,
    until: history.Until,
    past: PastRows,
) -> list[tuple[bytes, dict[str, Any]]]:
    """The first `size + 1` operations after `key`, as they were at the point `until` marks.

    A row that has not changed since that point is as it was then: the database filters those with
    the indexes of a present listing (`stood`). The rows changed since (`changed`), between `key` and
    the last of those the page can hold, are folded back to the point from their events and then
    filtered with the same condition, a stretch of the page order at a time."""
    found = [_shown(row) for row in _select(cursor, d, _SHOWN, stood, key, size + 1)]
    if len(found) > size:  # no row after the last of these can be on the page
        last = found[-1][1]
        changed = changed.also(_UP_TO, last["create_time"], last["create_time"], last["name"])
    edge, limit = key, size + 1
    while True:
        rows = _select(cursor, d, ("name", "create_time"), changed, edge, limit)
        then = past([name for name, _ in rows], until) if rows else {}
        matching = _matching(cursor, d, condition, list(then.values())) if then else set()
        for name, _ in rows:
            if name in matching:
                row = then[name]
                found.append((bytes(row[COLUMN_AT["body"]]), {c: row[COLUMN_AT[c]] for c in FLAT_COLUMNS}))
        if len(rows) < limit:
            break
        edge = (rows[-1][1], rows[-1][0])
        if sum(1 for _, flat in found if _up_to(flat, edge)) > size:  # the page is whole before the edge
            break
        limit = min(limit * 2, MAX_PAGE_SIZE)
    found.sort(key=lambda shown: shown[1]["name"])
    found.sort(key=lambda shown: shown[1]["create_time"], reverse=True)  # stable: by name within a time
    return found


def _up_to(flat: dict[str, Any], edge: Key) -> bool:
    """Whether a row stands before `edge` in page order, or is it."""
    return bool(flat["create_time"] > edge[0] or (flat["create_time"] == edge[0] and flat["name"] <= edge[1]))


def _matching(cursor: Cursor, d: Dialect, condition: Condition, rows: list[tuple[Any, ...]]) -> set[str]:
    """The names of `rows` (OPERATION_COLUMNS) that meet `condition`, asked of the database itself so
    that a folded row is filtered exactly as a stored one. Only the columns the condition reads are
    sent: a row's body and metadata are most of its bytes."""
    columns = ["name", *(c for c in OPERATION_COLUMNS if c in condition.columns and c != "name")]
    one = "(" + ", ".join(_typed_placeholder(column_types(d)[c]) for c in columns) + ")"
    cursor.execute(
        d.sql(
            f"WITH past ({', '.join(columns)}) AS (VALUES {', '.join([one] * len(rows))}) "
            f"SELECT name FROM past WHERE {condition.sql}"
        ),
        [*(row[COLUMN_AT[c]] for row in rows for c in columns), *condition.params],
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
