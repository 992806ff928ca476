"""The projection engine: pulls the log after each view's tracked position, in batches, and writes
the views' rows and their new position in one transaction, so a crash never applies a batch twice
or half. Gaps in notification ids (rolled-back inserts) are skipped, never waited for.

A write projects its own events in its own transaction, from the state its writer folded them into,
whenever every view had reached the log's end before them; otherwise the next catch-up reads them
back.

A rebuild fills new generation tables from position 0 (resumable batch by batch), adds indexes,
then points the SQL views at them in one transaction; readers keep the old tables until then.
"""

from __future__ import annotations

import logging
from collections import ChainMap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import PersistenceError, Transcoder

from ..domain.operation import Operation, OperationEvent
from ..runtime import batch_job
from ..storage import log
from ..storage.base import Cursor, Database, LogRow
from ..storage.codec import decode_stored
from . import sharded
from .rows import operation_row
from .views import LAYOUT, VIEWS, Change, change_after, fits, generation_table, project, rendered, sql_view

PROJECTIONS_TABLE = "ledger_projections"
CURRENT, BUILDING, RETIRED = "current", "building", "retired"
BATCH_SIZE = 1000
CACHE_LIMIT = 20_000  # operations whose latest state is kept between batches (most of a fold's memory)
_log = logging.getLogger("ledger")

Progress = Callable[[int], None]


def behind(lag: Any) -> bool:
    """Whether a lag selected with `lag_sql` says a catch-up has something to apply."""
    return lag is not None and int(lag) > 0


@dataclass
class Target:
    view: str
    generation: int
    position: int


class ProjectionEngine:
    def __init__(
        self,
        db: Database,
        transcoder: Transcoder,
        batch_size: int = BATCH_SIZE,
        url: str | None = None,
        cache_limit: int = CACHE_LIMIT,
    ) -> None:
        self.db, self.d = db, db.dialect
        self.url = url  # where other processes reach the same database: a large rebuild is sharded
        self.transcoder = transcoder
        self.batch_size = batch_size
        self._states: dict[str, Operation] = {}  # the log's latest state of recently seen operations
        self._cache_limit = cache_limit  # how many of them at most
        self._projections = self.d.table(PROJECTIONS_TABLE)

    # -- setting up -----------------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the tracking table, a first generation of each view, and the SQL views (idempotent);
        move views of an earlier layout to the current one by rebuilding them from the log.

        A ledger that has them all is only read: opening one for reading writes nothing.
        """
        if self.ready():
            return
        with self.db.write() as cursor:
            self.d.serialize_writers(cursor)
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self._projections} (view TEXT NOT NULL, generation INTEGER NOT NULL, "
                "role TEXT NOT NULL, position BIGINT NOT NULL, layout INTEGER NOT NULL DEFAULT 1, "
                "PRIMARY KEY (view, generation))"
            )
            if not self.d.column_exists(cursor, PROJECTIONS_TABLE, "layout"):  # written before layouts
                cursor.execute(f"ALTER TABLE {self._projections} ADD COLUMN layout INTEGER NOT NULL DEFAULT 1")
            # A rebuild of an earlier layout that stopped part way cannot be resumed into this one.
            cursor.execute(
                self.d.sql(f"UPDATE {self._projections} SET role = ? WHERE role = ? AND layout < ?"),
                (RETIRED, BUILDING, LAYOUT),
            )
            # Views an earlier layout had and this one has not (layout 2's versions view) go.
            known = ", ".join("?" * len(VIEWS))
            cursor.execute(
                self.d.sql(f"UPDATE {self._projections} SET role = ? WHERE view NOT IN ({known})"), (RETIRED, *VIEWS)
            )
            cursor.execute(self.d.sql(f"SELECT view FROM {self._projections} WHERE role = ?"), (CURRENT,))
            existing = {row[0] for row in cursor.fetchall()}
            for name, view in VIEWS.items():
                if name in existing:
                    continue
                for statement in (*view.create_statements(self.d, 1), *view.index_statements(self.d, 1)):
                    cursor.execute(statement)
                self._track(cursor, name, 1, CURRENT)
                self._point_sql_view(cursor, name, 1)
        self._drop_retired()
        self._migrate()

    def _migrate(self) -> None:
        """Rebuild the current views whose tables an earlier layout made (a catch-up would write rows
        of this layout into them). Readers keep the old tables until the swap."""
        with self.db.read() as cursor:
            cursor.execute(
                self.d.sql(f"SELECT view FROM {self._projections} WHERE role = ? AND layout < ? ORDER BY view"),
                (CURRENT, LAYOUT),
            )
            stale = [row[0] for row in cursor.fetchall()]
        if stale:
            _log.warning("ledger: rebuilding the %s view(s) from the log into layout %d", ", ".join(stale), LAYOUT)
            self.rebuild(stale)

    def _track(self, cursor: Cursor, name: str, generation: int, role: str) -> None:
        cursor.execute(
            self.d.sql(
                f"INSERT INTO {self._projections} (view, generation, role, position, layout) VALUES (?, ?, ?, ?, ?)"
            ),
            (name, generation, role, 0, LAYOUT),
        )

    def ready(self) -> bool:
        """Whether the tracking table and every view are there, in this layout, with nothing left from
        a rebuild."""
        try:
            with self.db.read() as cursor:
                cursor.execute(f"SELECT view, role, layout FROM {self._projections}")
                rows = cursor.fetchall()
        except PersistenceError:  # no tracking table yet, or one from before layouts
            return False
        current = {view for view, role, layout in rows if role == CURRENT and layout == LAYOUT}
        return current == set(VIEWS) and all(role != RETIRED and view in VIEWS for view, role, _ in rows)

    def not_a_ledger(self) -> str | None:
        """Why the database cannot be read as a ledger (None when it can), found without writing."""
        with self.db.read() as cursor:
            if not log.log_exists(cursor, self.db):
                return f"it has no event log (table {self.db.events_table_name}): not a ledger, or not initialised"
            if not self.d.table_exists(cursor, PROJECTIONS_TABLE):
                return f"it has an event log but no views (table {PROJECTIONS_TABLE})"
            cursor.execute(self.d.sql(f"SELECT view FROM {self._projections} WHERE role = ?"), (CURRENT,))
            missing = set(VIEWS) - {row[0] for row in cursor.fetchall()}
        if missing:
            return f"{PROJECTIONS_TABLE} names no current generation of the {', '.join(sorted(missing))} view"
        return None

    def bookkeeping_problems(self, cursor: Cursor) -> list[str]:
        """What is wrong with `ledger_projections` itself, seen in the transaction on `cursor`: a view
        without exactly one current generation, a generation whose table is gone (every write would
        fail), a position past the log's end (new events would stay hidden from reads)."""
        cursor.execute(f"SELECT view, generation, role, position FROM {self._projections}")
        rows = [(str(v), int(g), str(r), int(p)) for v, g, r, p in cursor.fetchall()]
        end = self.log_end(cursor)
        problems = []
        for name in VIEWS:
            current = [(g, p) for v, g, r, p in rows if v == name and r == CURRENT]
            if len(current) != 1:
                problems.append(f"the {name} view has {len(current)} current generations, not one")
            for generation, position in current:
                if not self.d.table_exists(cursor, VIEWS[name].table(generation)):
                    problems.append(f"the {name} view's current generation {generation} has no table")
                if position > end:
                    problems.append(
                        f"the {name} view is at position {position}, past the log's end {end}: "
                        "events recorded up to there would not show in reads"
                    )
        return problems

    def _point_sql_view(self, cursor: Cursor, name: str, generation: int) -> None:
        view = VIEWS[name]
        plain = sql_view(self.d, name)
        cursor.execute(f"DROP VIEW IF EXISTS {plain}")
        cursor.execute(f"CREATE VIEW {plain} AS SELECT * FROM {self.d.table(view.table(generation))}")

    def _drop_retired(self) -> None:
        with self.db.write() as cursor:
            cursor.execute(self.d.sql(f"SELECT view, generation FROM {self._projections} WHERE role = ?"), (RETIRED,))
            for name, generation in cursor.fetchall():
                if name not in VIEWS:  # its SQL view went with it
                    cursor.execute(f"DROP VIEW IF EXISTS {sql_view(self.d, name)}")
                cursor.execute(f"DROP TABLE IF EXISTS {self.d.table(generation_table(name, generation))}")
                cursor.execute(
                    self.d.sql(f"DELETE FROM {self._projections} WHERE view = ? AND generation = ?"), (name, generation)
                )

    # -- catching up ----------------------------------------------------------------------------

    def log_end(self, cursor: Cursor) -> int:
        return log.log_end(cursor, self.db)

    def positions(self, role: str = CURRENT) -> dict[str, int]:
        with self.db.read() as cursor:
            return self.positions_in(cursor, role)

    def positions_in(self, cursor: Cursor, role: str = CURRENT) -> dict[str, int]:
        """Each view's position, as seen by a transaction already open on `cursor`."""
        cursor.execute(self.d.sql(f"SELECT view, position FROM {self._projections} WHERE role = ?"), (role,))
        return {row[0]: int(row[1]) for row in cursor.fetchall()}

    def lag(self) -> dict[str, int]:
        """How many positions each current view is behind the end of the log."""
        with self.db.read() as cursor:
            end = self.log_end(cursor)
        return {view: end - position for view, position in self.positions().items()}

    def lag_sql(self, role: str = CURRENT) -> tuple[str, tuple[Any, ...]]:
        """An expression (and its parameters) for how many positions the `role` views' laggard is
        behind the log's end, NULL when there is no view or no event. A read selects it beside its
        rows, so that reading views that are current (the common case) is a single statement."""
        return f"(({log.end_query(self.db)}) - (SELECT MIN(position) FROM {self._projections} WHERE role = ?))", (role,)

    def catch_up(self, role: str = CURRENT, progress: Progress | None = None) -> int:
        """Apply everything recorded after the views' positions; return how many events were applied."""
        applied = 0
        if self.db.read_only:  # a copy kept out of writers' reach: read the views as they stand
            return 0
        with self.db.quick() as cursor:  # the common case, nothing new: one statement, no write lock
            lag, params = self.lag_sql(role)
            cursor.execute(self.d.sql(f"SELECT {lag}"), params)
            if not behind(cursor.fetchone()[0]):
                return 0
        while True:
            count = self._apply_batch(role)
            applied += count
            if progress and count:
                progress(count)
            if count < self.batch_size:
                return applied

    def _apply_batch(self, role: str) -> int:
        try:
            with self.db.write() as cursor:
                targets = self._lock_targets(cursor, role)
                if not targets:
                    return 0
                start = min(t.position for t in targets)
                records = self._read_log(cursor, start)
                if not records:
                    return 0
                changes = self.fold(cursor, records)
                for target in targets:
                    mine = [c for c in changes if c.position > target.position]
                    if mine:
                        VIEWS[target.view].apply(cursor, self.d, target.generation, mine)
                self._move(cursor, targets, records[-1].position)
                return len(records)
        except BaseException:
            self._states.clear()  # states folded for a batch that did not land are not the log's
            raise

    def lock_current(self, cursor: Cursor) -> tuple[int, list[Target]]:
        """Inside a transaction recording events, under the log's lock: the log's end, and the current
        views, whose rows stay locked until it commits."""
        cursor.execute(
            self.d.sql(
                f"SELECT view, generation, position, ({log.end_query(self.db)}) FROM {self._projections} "
                "WHERE role = ? ORDER BY view, generation"
            )
            + self.d.for_update,
            (CURRENT,),
        )
        rows = cursor.fetchall()
        end = int(rows[0][-1] or 0) if rows else log.log_end(cursor, self.db)  # the same log end on every row
        return end, [Target(view, int(generation), int(position)) for view, generation, position, _ in rows]

    def project_written(
        self, cursor: Cursor, end: int, targets: Sequence[Target], ops: Sequence[Operation], positions: Sequence[int]
    ) -> dict[str, Operation] | None:
        """Inside the transaction that appended `ops`' pending events (at `positions`, after log
        position `end`): project them from the states the writer folded them into, without reading
        them back or folding them again.

        Returns each operation's state after them, or None when a view had not reached `end` (the
        next catch-up applies everything in between first, then these).
        """
        # A rebuild's swap that committed while this waited for the rows leaves a view out of
        # `targets`: then, as when a view lags or a history is out of sequence, catch-up decides.
        if {t.view for t in targets} != set(VIEWS) or any(t.position != end for t in targets):
            return None
        if not all(op.in_sequence for op in ops):
            return None
        # The view keeps one row an operation: its last event's, rendered from the state after it.
        # Each pending event was applied by `Operation.append`, which refuses what would not fit.
        # `positions` rise through each operation's pending events in turn, as they were appended,
        # so the changes come out in log order.
        changes: list[Change] = []
        states: dict[str, Operation] = {}
        written = 0
        for op in ops:
            if not op.pending:
                continue
            written += len(op.pending)
            state = op.copy()  # a copy: the caller keeps `op`
            changes.append(change_after(state, op.pending[-1], positions[written - 1], operation_row(state)))
            states[op.name] = state
        if not changes:
            return states
        for target in targets:
            VIEWS[target.view].apply(cursor, self.d, target.generation, changes)
        self._move(cursor, targets, changes[-1].position)
        return states

    def _move(self, cursor: Cursor, targets: Sequence[Target], end: int) -> None:
        """The locked targets' new position: only theirs, never a generation swapped in meanwhile."""
        cursor.executemany(
            self.d.sql(
                f"UPDATE {self._projections} SET position = ? WHERE view = ? AND generation = ? AND position < ?"
            ),
            [(end, t.view, t.generation, end) for t in targets],
        )

    def remember(self, states: dict[str, Operation]) -> None:
        """Keep states that a committed write projected, for the catch-ups that follow them."""
        if len(self._states) + len(states) > self._cache_limit:
            self._states.clear()
        self._states.update(states)

    def _lock_targets(self, cursor: Cursor, role: str) -> list[Target]:
        cursor.execute(
            self.d.sql(
                f"SELECT view, generation, position FROM {self._projections} WHERE role = ? "
                f"ORDER BY view, generation{self.d.for_update}"
            ),
            (role,),
        )
        return [Target(view, int(generation), int(position)) for view, generation, position in cursor.fetchall()]

    def _read_log(self, cursor: Cursor, after: int) -> list[LogRow]:
        return log.read_after(cursor, self.db, after, self.batch_size)

    def fold(self, cursor: Cursor, records: Sequence[LogRow]) -> list[Change]:
        """Each record as a Change, folding from the operation's state before the batch."""
        first_version: dict[str, int] = {}
        for _, name, version, _, _ in records:
            first_version.setdefault(name, version)
        missing = [
            name
            for name, version in first_version.items()
            if version > 1 and (name not in self._states or self._states[name].version != version - 1)
        ]
        if missing:
            self._load_states(cursor, missing, first_version)
        if len(self._states) > self._cache_limit:
            self._states = {name: self._states[name] for name in first_version if name in self._states}
        changes: list[Change] = []
        broken: dict[str, Operation] = {}  # the states before an event that failed half way
        for position, name, version, topic, state in records:
            before = self._states.get(name) if version > 1 else None
            try:
                landed = project(before, self._decode(name, version, topic, state), position, render=False)
            except Exception:
                self._states.pop(name, None)  # it changed the cached state half way: fold it again
                if changes and any(c.name == name for c in changes):
                    broken[name] = self._refold(cursor, name, version)
                continue
            if landed is not None:
                self._states[name], change = landed
                changes.append(change)
        # Rows are rendered once an operation, from its state at the end of the batch.
        return rendered(changes, ChainMap(broken, self._states))

    def _refold(self, cursor: Cursor, name: str, version: int) -> Operation:
        """The operation's state before `version`, folded from the log again."""
        self._load_states(cursor, [name], {name: version})
        return self._states.pop(name)

    def _load_states(self, cursor: Cursor, names: list[str], first_version: dict[str, int]) -> None:
        for _, name, version, topic, state in log.histories(cursor, self.db, names):
            if version >= first_version[name]:
                continue
            event = self._decode(name, version, topic, state)
            op = self._states.get(name) if version > 1 else None
            if fits(op, event):
                assert event is not None
                mutated = event.mutate(op)
                assert mutated is not None
                self._states[name] = mutated

    def _decode(self, name: str, version: int, topic: str, state: bytes) -> OperationEvent | None:
        try:
            return decode_stored(name, version, topic, state, self.transcoder)
        except ValueError:
            return None

    # -- rebuilding -----------------------------------------------------------------------------

    def rebuild(
        self,
        views: Sequence[str],
        progress: Progress | None = None,
        total: Progress | None = None,
        batch_size: int | None = None,
    ) -> None:
        """Rebuild `views` from the whole log into new tables, then swap them in atomically.

        Interrupted at any point, running it again resumes where it stopped.
        """
        with self.db.bulk(), batch_job():
            self._rebuild(views, progress, total, batch_size)

    def _rebuild(
        self, views: Sequence[str], progress: Progress | None, total: Progress | None, batch_size: int | None
    ) -> None:
        self.db.refresh_statistics()  # the fold reads operations' histories by name
        targets = self._start_building(views)
        if total:
            with self.db.read() as cursor:
                total(self.log_end(cursor) - min(t.position for t in targets))
        self._states.clear()
        usual, self.batch_size = self.batch_size, batch_size or self.batch_size
        try:
            self._fill_sharded(targets, progress)
            self.catch_up(BUILDING, progress)  # what the shards left, or everything in one process
        finally:
            self.batch_size = usual
        for target in targets:
            view = VIEWS[target.view]
            for statement in view.index_statements(self.d, target.generation):
                with self.db.write() as cursor:
                    cursor.execute(statement)
            with self.db.write() as cursor:  # fresh statistics, so the planner picks indexes well
                cursor.execute(f"ANALYZE {self.d.table(view.table(target.generation))}")
        self._swap(views)
        self._drop_retired()

    def _fill_sharded(self, targets: Sequence[Target], progress: Progress | None) -> None:
        """Fold a large log into the building views in a process a core (see `sharded`), up to the
        log's end now; the caller's catch-up then takes what came after."""
        cores = sharded.usable_cores()
        if self.url is None or cores < 2:
            return
        with self.db.read() as cursor:
            end = self.log_end(cursor)
        for target in targets:
            if end - target.position >= sharded.SHARDED_FROM:
                sharded.fill(self, self.url, target.view, target.generation, target.position, end, progress, cores)

    def write_building(self, view: str, generation: int, rows: list[tuple[Any, ...]], position: int) -> None:
        """Write rows a shard made for a building generation, and its position, in one transaction:
        only rows past the position it has (a rerun after a kill may fold a batch again)."""
        with self.db.write() as cursor:
            for target in self._lock_targets(cursor, BUILDING):
                if (target.view, target.generation) == (view, generation) and position > target.position:
                    kind = VIEWS[view]
                    kind.write(cursor, self.d, generation, [r for r in rows if kind.position_of(r) > target.position])
                    self._move(cursor, [target], position)

    def _start_building(self, views: Sequence[str]) -> list[Target]:
        with self.db.write() as cursor:
            self.d.serialize_writers(cursor)
            cursor.execute(self.d.sql(f"SELECT view, generation, role, position FROM {self._projections}"))
            rows = cursor.fetchall()
            targets = []
            for name in views:
                building = [r for r in rows if r[0] == name and r[2] == BUILDING]
                if building:  # an earlier rebuild stopped part way: go on from its position
                    targets.append(Target(name, int(building[0][1]), int(building[0][3])))
                    continue
                generation = max((int(r[1]) for r in rows if r[0] == name), default=0) + 1
                for statement in VIEWS[name].create_statements(self.d, generation):
                    cursor.execute(statement)
                self._track(cursor, name, generation, BUILDING)
                targets.append(Target(name, generation, 0))
            return targets

    def _swap(self, views: Sequence[str]) -> None:
        """Point the SQL views at the rebuilt tables. The new tables keep their own position, so
        whatever was recorded after it lands through the next catch-up, as for any view."""
        with self.db.write() as cursor:
            self.d.serialize_writers(cursor)
            self._lock_targets(cursor, CURRENT)
            for target in self._lock_targets(cursor, BUILDING):
                if target.view not in views:
                    continue
                cursor.execute(
                    self.d.sql(f"UPDATE {self._projections} SET role = ? WHERE view = ? AND role = ?"),
                    (RETIRED, target.view, CURRENT),
                )
                cursor.execute(
                    self.d.sql(f"UPDATE {self._projections} SET role = ? WHERE view = ? AND generation = ?"),
                    (CURRENT, target.view, target.generation),
                )
                self._point_sql_view(cursor, target.view, target.generation)
