"""Past states, folded from the log. An operation's versions are its events: the log keys them by
name and version already, so no view keeps a row per state; a read of the past folds the operation's
few events instead, as the views fold them (`project`), and stops where the reader's point in time is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import Transcoder

from ..domain.operation import Operation, OperationEvent
from ..domain.timestamps import Timestamp
from ..storage import log
from ..storage.base import Cursor, Database, LogRow
from ..storage.codec import decode_stored
from .views import Change, project, rendered

# Where a read of the past stops: it takes the events the predicate admits (an event and its log
# position), in version order, up to the first it refuses. It is asked before the event is applied.
Until = Callable[[OperationEvent, int], bool]


def until_version(version: int) -> Until:
    return lambda event, position: event.originator_version <= version


def until_position(position: int) -> Until:
    return lambda event, at: at <= position


def until_time(when: Timestamp) -> Until:
    """Every event that occurred at or before a time."""
    return lambda event, position: event.occurred_at <= when


def changes_until(
    cursor: Cursor, db: Database, transcoder: Transcoder, names: Sequence[str], until: Until
) -> dict[str, list[Change]]:
    """Each named operation's Changes (one an event: its row, version, position and time) up to the
    point `until` marks; an operation with no event there is left out.

    Events the views cannot show (undecodable, out of sequence) end an operation's fold, as they end
    the views' own."""
    return _fold(cursor, db, transcoder, names, until, render=True)[0]


def past_changes(
    cursor: Cursor, db: Database, transcoder: Transcoder, names: Sequence[str], until: Until
) -> dict[str, Change]:
    """Each named operation's state at the point `until` marks, as the Change of its last event there.
    Only that state is rendered into a row, not the ones before it."""
    found, states = _fold(cursor, db, transcoder, names, until, render=False)
    return {change.name: change for change in rendered([changes[-1] for changes in found.values()], states)}


def _fold(
    cursor: Cursor, db: Database, transcoder: Transcoder, names: Sequence[str], until: Until, render: bool
) -> tuple[dict[str, list[Change]], dict[str, Operation]]:
    """The Changes of `changes_until`, each with its row when `render`, and each operation's state."""
    found: dict[str, list[Change]] = {}
    states: dict[str, Operation] = {}
    name, state, stopped = None, None, True
    for row in log.histories(cursor, db, names):
        if row.name != name:
            name, state, stopped = row.name, None, False
        if stopped:
            continue
        landed = _landed(state, row, transcoder, until, render)
        if landed is None:
            stopped = True
            continue
        state, change = landed
        states[row.name] = state
        found.setdefault(row.name, []).append(change)
    return found, states


def _landed(
    state: Operation | None, row: LogRow, transcoder: Transcoder, until: Until, render: bool
) -> tuple[Operation, Change] | None:
    """The state and Change after the event `row` holds; None when it is past `until`, or cannot be
    folded. `until` is asked first: a fold that does not render changes the state in place."""
    try:
        event = decode_stored(row.name, row.version, row.topic, row.state, transcoder)
        if not until(event, int(row.position)):
            return None
        return project(state, event, int(row.position), render)
    except Exception:  # undecodable or unfoldable: audit reports it; a read shows what came before
        return None


def past_rows(
    cursor: Cursor, db: Database, transcoder: Transcoder, names: Sequence[str], until: Until
) -> dict[str, tuple[Any, ...]]:
    """The operations view's row (OPERATION_COLUMNS) of each named operation that existed, and was
    not deleted, at the point `until` marks."""
    changes = past_changes(cursor, db, transcoder, names, until)
    return {name: change.row for name, change in changes.items() if not change.deleted}
