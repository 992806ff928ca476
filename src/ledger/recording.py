"""The write: one object that reads an operation's history, folds it, and records new events.

Commands, ingest and the server's `POST /v1/events` all record through `Recorder.save`: the events go
into eventsourcing's table under its writers' lock and, in the same transaction, into the views,
projected from the state the events were folded into. A connection found dead is made again once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from eventsourcing.persistence import OperationalError, RecordConflictError

from .domain.errors import not_found
from .domain.operation import Operation, OperationEvent, fold, repeats_create
from .domain.rendering import render_operation
from .domain.timestamps import Timestamp
from .domain.values import JSONObject
from .projections.engine import ProjectionEngine
from .storage import log
from .storage.base import LogRow
from .storage.codec import decode_stored
from .storage.store import Store

_log = logging.getLogger("ledger")
_T = TypeVar("_T")


class Recorder:
    """Reads and records the events of operations, keeping the views in step with every write."""

    def __init__(self, store: Store, engine: ProjectionEngine) -> None:
        self.store, self.db, self.engine = store, store.db, engine

    # -- reading one history --------------------------------------------------------------------

    def events(self, name: str) -> list[OperationEvent]:
        """The operation's events, oldest first, read in one statement on the ledger's own connection
        (as eventsourcing's repository would read them, without its pool and transaction: a round trip
        saved on every command)."""

        def read() -> list[LogRow]:
            with self.db.quick() as cursor:
                return log.histories(cursor, self.db, [name])

        transcoder = self.store.transcoder
        return [decode_stored(r.name, r.version, r.topic, r.state, transcoder) for r in self._reconnecting(read)]

    def find(self, name: str) -> Operation | None:
        """The operation as its events fold, or None when it has none."""
        return fold(self.events(name))

    def load(self, name: str) -> Operation:
        op = self.find(name)
        if op is None:
            raise not_found(name)
        return op

    # -- writing --------------------------------------------------------------------------------

    def create(self, name: str, when: Timestamp, values: JSONObject) -> JSONObject:
        """Record Created. Repeated with the same content or request id, returns the existing operation."""
        for attempt in range(2):
            existing = self.find(name)
            if existing is not None and repeats_create(existing, values):
                return render_operation(existing)
            op = Operation.create(name, when, values)
            try:
                self.save([op])
            except RecordConflictError:  # a concurrent create won; answer as a repeat would
                if attempt:
                    raise
                continue
            return render_operation(op)
        raise AssertionError("unreachable")  # pragma: no cover

    def record(
        self, op: Operation, event_class: type[OperationEvent], when: Timestamp, values: JSONObject
    ) -> JSONObject:
        """Record one event on `op` (as loaded) and return the operation after it."""
        op.trigger(event_class, when, **values)
        self.save([op])
        return render_operation(op)

    def save(self, ops: Sequence[Operation]) -> None:
        """Record the operations' pending events; the views show them before this returns.

        The events go into eventsourcing's table under its writers' lock, and in the same transaction
        into the views, projected from the state they were folded into: no read back, no decoding, no
        moment when the log holds an event the views lack. When the views lag (another writer's
        catch-up failed, or a plain eventsourcing save), they catch up after the commit instead.
        """
        projected = None
        if ops:
            stored = [self.store.mapper.to_stored_event(event) for op in ops for event in op.pending]

            def record() -> dict[str, Operation] | None:
                with self.db.recording(len(stored)) as cursor:
                    self.db.lock_log(cursor)
                    end, views = self.engine.lock_current(cursor)
                    positions = log.append(cursor, self.db, stored, after=end)
                    return self.engine.project_written(cursor, end, views, ops, positions)

            projected = self._reconnecting(record)
            for op in ops:
                op.collect_events()
        if projected is None:
            self._after_save()
        else:
            self.engine.remember(projected)

    def _reconnecting(self, action: Callable[[], _T]) -> _T:
        """`action()`, and once more on a new connection when the ledger's own turned out dead (a
        server restart, an idle connection killed), as eventsourcing's recorders retry. A commit
        whose answer was lost comes back the second time as a version conflict, never twice."""
        try:
            return action()
        except OperationalError:
            if not self.db.lost():
                raise
            return action()

    def _after_save(self) -> None:
        """Read-your-writes when the write could not project its own events. They are stored by now,
        so a failure here must not fail the write (a retry would record them twice): it is logged,
        and the next read or write catches the views up."""
        try:
            self.engine.catch_up()
        except Exception as e:
            _log.warning("views not caught up after a write (the next read will): %s", e)
