"""The operations view and how a batch of changes lands in it.

Each view lives in generation tables (`ledger_operations_g3`), with a SQL view of the plain name
(`ledger_operations`) over the current generation: a rebuild fills a new generation while readers
keep the old one, then one transaction points the SQL view at the new tables.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..domain.operation import Operation, OperationEvent, follows
from ..domain.timestamps import Timestamp
from ..storage.base import Cursor, Dialect
from .rows import OPERATION_COLUMNS, operation_row, sortable_time

# The views' table layout, kept with each generation in the tracking table. 1: every row held its
# metadata and response JSON twice (columns beside the body) and the operations view had twelve
# indexes. 2: versions rows hold the body alone, operations rows the body and the metadata, and only
# measured queries have indexes. 3: no versions view (an operation's past states are folded from its
# events, which the log keys by name and version already); the operations view keeps a deleted
# operation as a row in state DELETED, and the time of each row's latest event, so that a page as
# of an earlier position or time knows which rows it can read as they stand.
LAYOUT = 3

# What a row holds after the Operation's own columns: where its latest event is in the log and when
# that event occurred (a sortable time).
ROW_KEYS = ("version", "position", "changed_time")


@dataclass(frozen=True)
class Change:
    """One event as a view sees it: where it is in the log, and the operation's row after it."""

    position: int
    name: str
    version: int
    occurred_at: Timestamp  # the event's; a view row keeps its operation's last as `changed_time`
    row: tuple[Any, ...]  # OPERATION_COLUMNS; a deleted operation's state is DELETED
    deleted: bool


def column_types(d: Dialect) -> dict[str, str]:
    """Each of OPERATION_COLUMNS with its SQL type on this backend."""
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


def values_placeholders(d: Dialect, columns: Sequence[str]) -> str:
    return ", ".join(d.json_placeholder if c == "metadata" else "?" for c in columns)


def generation_table(view: str, generation: int) -> str:
    """The table that holds one generation of a view (also of a view an earlier layout had)."""
    return f"ledger_{view}_g{generation}"


def sql_view(d: Dialect, name: str) -> str:
    """The SQL view, of the view's plain name, that readers query: the current generation's table."""
    return d.table(f"ledger_{name}")


class View(ABC):
    """One projection of the log into tables of one generation."""

    name: str

    def table(self, generation: int) -> str:
        return generation_table(self.name, generation)

    @abstractmethod
    def create_statements(self, d: Dialect, generation: int) -> list[str]:
        """The table (primary key only: a rebuild adds secondary indexes after bulk loading)."""

    @abstractmethod
    def index_statements(self, d: Dialect, generation: int) -> list[str]:
        """Secondary indexes, each `IF NOT EXISTS` so that an interrupted rebuild can rerun them."""

    @abstractmethod
    def rows(self, changes: Sequence[Change]) -> list[tuple[Any, ...]]:
        """The rows a batch of changes (in log order) writes: pure, so that other processes can make them."""

    @abstractmethod
    def write(self, cursor: Cursor, d: Dialect, generation: int, rows: Sequence[tuple[Any, ...]]) -> None:
        """Write rows made by `rows` from changes all after this view's position."""

    def apply(self, cursor: Cursor, d: Dialect, generation: int, changes: Sequence[Change]) -> None:
        """Write a batch of changes (all after this view's position, in log order)."""
        self.write(cursor, d, generation, self.rows(changes))

    @abstractmethod
    def position_of(self, row: tuple[Any, ...]) -> int:
        """The log position of the latest event a row shows."""

    def _index(self, d: Dialect, generation: int, suffix: str, columns: str) -> str:
        table = self.table(generation)
        return f'CREATE INDEX IF NOT EXISTS "{table}_{suffix}" ON {d.table(table)} ({columns})'


class OperationsView(View):
    """One row per operation: its current Operation JSON and every filterable column. A deleted
    operation keeps its row in state DELETED, which reads of the present never show."""

    name = "operations"

    def create_statements(self, d: Dialect, generation: int) -> list[str]:
        types = column_types(d)
        columns = ", ".join(f"{c} {types[c]}" for c in OPERATION_COLUMNS)
        return [
            f"CREATE TABLE IF NOT EXISTS {d.table(self.table(generation))} "
            f"({columns}, version INTEGER NOT NULL, position BIGINT NOT NULL, changed_time {d.text} NOT NULL, "
            "PRIMARY KEY (name))"
        ]

    def index_statements(self, d: Dialect, generation: int) -> list[str]:
        # Pages run newest first (create_time DESC, name), which both databases read from these
        # indexes backwards. Kept ascending, a new operation's entry lands at the end of the index
        # (or of its group) and pages fill up as they split; kept descending, it landed at the start,
        # and SQLite's and PostgreSQL's splits there left every page half empty (bench/NOTES.md).
        order = "create_time, name DESC"
        return [
            # The time a row last changed rides in the order index: a page as of a past time looks for
            # the rows changed since (to fold back) along the order, which then reads no row itself.
            self._index(d, generation, "order", f"{order}, changed_time"),
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

    def rows(self, changes: Sequence[Change]) -> list[tuple[Any, ...]]:
        return operation_rows(changes)

    def write(self, cursor: Cursor, d: Dialect, generation: int, rows: Sequence[tuple[Any, ...]]) -> None:
        columns = (*OPERATION_COLUMNS, *ROW_KEYS)
        d.upsert(cursor, d.table(self.table(generation)), columns, values_placeholders(d, columns), "name", rows)

    def position_of(self, row: tuple[Any, ...]) -> int:
        return int(row[_POSITION])


VIEWS: dict[str, View] = {view.name: view for view in (OperationsView(),)}
_POSITION = len(OPERATION_COLUMNS) + ROW_KEYS.index("position")  # in an operations view row


def project(
    op: Operation | None, event: OperationEvent | None, position: int, render: bool = True
) -> tuple[Operation, Change] | None:
    """How one stored event lands in the views, from the operation's state before it.

    None when the views cannot show it: undecodable, or out of sequence (no Created first, a version
    skipped). Such events are audit's to report; rule-breaking events that do fit are shown.
    `render=False` leaves the Change's row empty, for a fold that renders only the last state of each
    operation (`rendered`): the state is mutated in place, so a row must be rendered before the next
    event lands.
    """
    if not fits(op, event):
        return None
    assert event is not None
    after = event.mutate(op)
    assert after is not None
    return after, change_after(after, event, position, operation_row(after) if render else ())


def change_after(state: Operation, event: OperationEvent, position: int, row: tuple[Any, ...]) -> Change:
    """The Change of `event` (at `position`) that left the operation in `state`, with its `row`."""
    return Change(position, state.name, event.originator_version, event.occurred_at, row, state.deleted)


def rendered(changes: Sequence[Change], states: Mapping[str, Operation]) -> list[Change]:
    """The last change of each operation among `changes` (a batch folded without rendering), with
    its row rendered from the operation's state after the batch: all that a batch writes."""
    last: dict[str, Change] = {}
    for change in changes:
        last[change.name] = change
    return [replace(change, row=operation_row(states[change.name])) for change in last.values()]


def fits(op: Operation | None, event: OperationEvent | None) -> bool:
    """Whether `event` can follow `op` in a fold: decoded, Created first, no version skipped."""
    return event is not None and follows(op, event)


def operation_rows(changes: Sequence[Change]) -> list[tuple[Any, ...]]:
    """The operations view's rows after `changes` (OPERATION_COLUMNS, then ROW_KEYS), to upsert."""
    latest: dict[str, Change] = {}
    for change in changes:
        latest[change.name] = change
    return [(*c.row, c.version, c.position, sortable_time(c.occurred_at)) for c in latest.values()]
