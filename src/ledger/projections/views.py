"""The two views and how a batch of changes lands in them.

Each view lives in generation tables (`ledger_operations_g3`), with a SQL view of the plain name
(`ledger_operations`) over the current generation: a rebuild fills a new generation while readers
keep the old one, then one transaction points the SQL view at the new tables.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..domain.operation import Operation, OperationEvent, follows
from ..storage.base import Cursor, Dialect
from .rows import COLUMNS, OPERATION_COLUMNS, operation_row, sortable_time

# The views' table layout, kept with each generation in the tracking table. 1: every row held its
# metadata and response JSON twice (columns beside the body) and the operations view had twelve
# indexes. 2: versions rows hold the body alone, operations rows the body and the metadata, and only
# measured queries have indexes.
LAYOUT = 2


@dataclass(frozen=True)
class Change:
    """One event as a view sees it: where it is in the log, and the operation's row after it."""

    position: int
    name: str
    version: int
    occurred_at: str  # sortable time
    row: tuple[Any, ...] | None  # None: the event deleted the operation


def _column_types(d: Dialect) -> dict[str, str]:
    return {
        "name": f"{d.text} NOT NULL",
        "parent": f"{d.text} NOT NULL",
        "state": f"{d.text} NOT NULL",
        "verb": f"{d.text} NOT NULL",
        "target": f"{d.text} NOT NULL",
        "create_time": f"{d.text} NOT NULL",
        "end_time": d.text,
        "cancel_requested": "INTEGER NOT NULL",
        "error_code": "INTEGER",
        "error_message": d.text,
        "metadata_type": f"{d.text} NOT NULL",
        "response_type": d.text,
        "body": f"{d.blob} NOT NULL",
        "metadata": f"{d.json} NOT NULL",
    }


def _values_placeholders(d: Dialect, columns: Sequence[str]) -> str:
    return ", ".join(d.json_placeholder if c == "metadata" else "?" for c in columns)


def sql_view(d: Dialect, name: str) -> str:
    """The SQL view, of the view's plain name, that readers query: the current generation's table."""
    return d.table(f"ledger_{name}")


class View(ABC):
    """One projection of the log into tables of one generation."""

    name: str

    def table(self, generation: int) -> str:
        return f"ledger_{self.name}_g{generation}"

    @abstractmethod
    def create_statements(self, d: Dialect, generation: int) -> list[str]:
        """The table (primary key only: a rebuild adds secondary indexes after bulk loading)."""

    @abstractmethod
    def index_statements(self, d: Dialect, generation: int) -> list[str]:
        """Secondary indexes, each `IF NOT EXISTS` so that an interrupted rebuild can rerun them."""

    @abstractmethod
    def apply(self, cursor: Cursor, d: Dialect, generation: int, changes: Sequence[Change]) -> None:
        """Write a batch of changes (all after this view's position, in log order)."""

    def _index(self, d: Dialect, generation: int, suffix: str, columns: str) -> str:
        table = self.table(generation)
        return f'CREATE INDEX IF NOT EXISTS "{table}_{suffix}" ON {d.table(table)} ({columns})'


class OperationsView(View):
    """One row per live operation: its current Operation JSON and every filterable column."""

    name = "operations"

    def create_statements(self, d: Dialect, generation: int) -> list[str]:
        types = _column_types(d)
        columns = ", ".join(f"{c} {types[c]}" for c in OPERATION_COLUMNS)
        return [
            f"CREATE TABLE IF NOT EXISTS {d.table(self.table(generation))} "
            f"({columns}, version INTEGER NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (name))"
        ]

    def index_statements(self, d: Dialect, generation: int) -> list[str]:
        order = "create_time DESC, name"
        return [
            self._index(d, generation, "order", order),
            self._index(d, generation, "parent", f"parent, {order}"),
            self._index(d, generation, "state", f"state, {order}"),
            # Fields filtered by equality carry the page order too: `error.code = X` then reads its
            # first page straight from one index. With the field alone, SQLite chose that index and
            # sorted every match (79 ms a page at 1M operations) over walking the order index.
            # Only fields whose filters were measured to need one have an index: each costs about as
            # much disk as a fifth of the view (target, response type, cancel requested and end time
            # filters walk the order index until a page is full).
            *(
                self._index(d, generation, f"{column}_order", f"{column}, {order}")
                for column in ("verb", "error_code", "metadata_type")
            ),
            self._index(d, generation, "position", "position"),  # incremental exports of operations
        ]

    def apply(self, cursor: Cursor, d: Dialect, generation: int, changes: Sequence[Change]) -> None:
        upserts, deletes = operation_rows(changes)
        table = d.table(self.table(generation))
        if upserts:
            columns = (*OPERATION_COLUMNS, "version", "position")
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
            cursor.executemany(
                d.sql(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({_values_placeholders(d, columns)}) "
                    f"ON CONFLICT (name) DO UPDATE SET {updates}"
                ),
                upserts,
            )
        if deletes:
            cursor.executemany(d.sql(f"DELETE FROM {table} WHERE name = ?"), deletes)


class VersionsView(View):
    """One row per state interval: valid from an event (position and time) until the next one."""

    name = "versions"
    KEYS = ("version", "valid_from_position", "valid_to_position", "valid_from_time", "valid_to_time")

    def create_statements(self, d: Dialect, generation: int) -> list[str]:
        types = _column_types(d)
        columns = ", ".join(f"{c} {types[c]}" for c in COLUMNS)
        return [
            f"CREATE TABLE IF NOT EXISTS {d.table(self.table(generation))} ({columns}, "
            f"version INTEGER NOT NULL, valid_from_position BIGINT NOT NULL, valid_to_position BIGINT, "
            f"valid_from_time {d.text} NOT NULL, valid_to_time {d.text}, PRIMARY KEY (name, version))"
        ]

    def index_statements(self, d: Dialect, generation: int) -> list[str]:
        order = "create_time DESC, name"
        # Later pages of one collection (ListOperations with a parent, the call clients page through)
        # read this view: without the parent index they walked the order index, 1 ms a page at 2,000
        # operations against 0.03 ms with it.
        return [
            self._index(d, generation, "order", order),
            self._index(d, generation, "parent", f"parent, {order}"),
            self._index(d, generation, "from_position", "valid_from_position"),
        ]

    def apply(self, cursor: Cursor, d: Dialect, generation: int, changes: Sequence[Change]) -> None:
        inserts, closes = version_rows(changes)
        table = d.table(self.table(generation))
        if closes:
            cursor.executemany(
                d.sql(f"UPDATE {table} SET valid_to_position = ?, valid_to_time = ? WHERE name = ? AND version = ?"),
                closes,
            )
        if inserts:
            columns = (*COLUMNS, *self.KEYS)
            cursor.executemany(
                d.sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({_values_placeholders(d, columns)})"),
                inserts,
            )


VIEWS: dict[str, View] = {view.name: view for view in (OperationsView(), VersionsView())}


def project(op: Operation | None, event: OperationEvent | None, position: int) -> tuple[Operation, Change] | None:
    """How one stored event lands in the views, from the operation's state before it.

    None when the views cannot show it: undecodable, or out of sequence (no Created first, a version
    skipped). Such events are audit's to report; rule-breaking events that do fit are shown.
    """
    if not fits(op, event):
        return None
    assert event is not None
    after = event.mutate(op)
    assert after is not None
    row = None if after.deleted else operation_row(after)
    return after, Change(position, after.name, event.originator_version, sortable_time(event.occurred_at), row)


def fits(op: Operation | None, event: OperationEvent | None) -> bool:
    """Whether `event` can follow `op` in a fold: decoded, Created first, no version skipped."""
    return event is not None and follows(op, event)


def operation_rows(changes: Sequence[Change]) -> tuple[list[tuple[Any, ...]], list[tuple[str]]]:
    """The operations view after `changes`: rows to upsert (with version and position), names to delete."""
    latest: dict[str, Change] = {}
    for change in changes:
        latest[change.name] = change
    upserts = [(*c.row, c.version, c.position) for c in latest.values() if c.row is not None]
    deletes = [(c.name,) for c in latest.values() if c.row is None]
    return upserts, deletes


# Where a versions row (COLUMNS, then VersionsView.KEYS) keeps the end of its interval.
_VALID_TO_POSITION = len(COLUMNS) + VersionsView.KEYS.index("valid_to_position")
_VALID_TO_TIME = len(COLUMNS) + VersionsView.KEYS.index("valid_to_time")


def version_rows(changes: Sequence[Change]) -> tuple[list[list[Any]], list[tuple[Any, ...]]]:
    """The versions view after `changes`: rows to insert, and closes (position, time, name, version) of
    intervals opened before these changes. For a whole history from version 1 there are no closes."""
    opened: dict[str, list[Any]] = {}
    inserts: list[list[Any]] = []
    closes: list[tuple[Any, ...]] = []
    for change in changes:
        previous = opened.pop(change.name, None)
        if previous is not None:  # the interval began among these changes: close it in place
            previous[_VALID_TO_POSITION], previous[_VALID_TO_TIME] = change.position, change.occurred_at
        elif change.version > 1:
            closes.append((change.position, change.occurred_at, change.name, change.version - 1))
        if change.row is not None:
            row = [*change.row[: len(COLUMNS)], change.version, change.position, None, change.occurred_at, None]
            inserts.append(row)
            opened[change.name] = row
    return inserts, closes
