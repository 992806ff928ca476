"""Each source's checkpoint, in the ledger's own database (table `ledger_collect_sources`), so that a
restarted collector resumes where it stopped: the sweep in progress (its next page token), when the
last full sweep ended, the operations it watches between sweeps, and what `ledger collect --status`
shows (last success, errors, lag). Its statements are in `storage/checkpoints.py`.

A checkpoint is written after the events of the page it follows were recorded. Killed between the two,
the collector reads that page again on restart, and the snapshot path records nothing for what it
already holds: nothing is lost and nothing is recorded twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from eventsourcing.persistence import PersistenceError

from ..domain.errors import Code, LedgerError
from ..storage.base import Database
from ..storage.checkpoints import CheckpointTable


@dataclass
class Checkpoint:
    source: str
    sweep_page_token: str = ""  # the next page of a sweep in progress ("" : none in progress)
    sweep_started_at: float = 0.0  # unix seconds; 0: never
    last_sweep_at: float = 0.0  # when the last complete sweep ended
    last_success_at: float = 0.0  # when a poll last succeeded
    last_error: str = ""
    last_error_at: float = 0.0
    errors: int = 0  # failed polls since the last success
    total_errors: int = 0
    sweeps: int = 0
    events_recorded: int = 0
    watched: list[str] = field(default_factory=list)  # running operations, polled between sweeps
    hot: str = ""  # how hot polls go, once learned: "filter" or "get"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Checkpoint:
        known = {k: v for k, v in value.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class Checkpoints:
    """The collector's storage seam: one row per source, its state as JSON."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = CheckpointTable(db)
        self._ready = False

    def ensure(self) -> None:
        if self._ready:
            return
        with _unavailable(), self.db.write() as cursor:
            self.table.create(cursor)
        self._ready = True

    def load(self, source: str) -> Checkpoint:
        with _unavailable(), self.db.read() as cursor:
            state = self.table.state(cursor, source) if self.table.exists(cursor) else None
        return Checkpoint.from_json(orjson.loads(state)) if state else Checkpoint(source)

    def save(self, checkpoint: Checkpoint) -> None:
        self.ensure()
        with _unavailable(), self.db.write() as cursor:
            self.table.save(cursor, checkpoint.source, orjson.dumps(checkpoint.to_json()))

    def all(self) -> list[Checkpoint]:
        with _unavailable(), self.db.read() as cursor:
            states = self.table.every(cursor) if self.table.exists(cursor) else []
        return [Checkpoint.from_json(orjson.loads(state)) for state in states]


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except PersistenceError as e:
        raise LedgerError(Code.UNAVAILABLE, f"collector checkpoints: {e}") from None
