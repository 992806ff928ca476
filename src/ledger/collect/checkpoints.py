"""Each source's checkpoint, in the ledger's own database (table `ledger_collect_sources`), so that a
restarted collector resumes where it stopped: the sweep in progress (its next page token), when the
last full sweep ended, the operations it watches between sweeps, and what `ledger collect --status`
shows (last success, errors, lag). All of the collector's SQL is in this module.

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

from ..errors import Code, LedgerError
from ..projections.database import ViewDatabase

TABLE = "ledger_collect_sources"


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

    def __init__(self, db: ViewDatabase) -> None:
        self.db, self.d = db, db.dialect
        self.table = self.d.table(TABLE)
        self._ready = False

    def ensure(self) -> None:
        if self._ready:
            return
        with _unavailable(), self.db.write() as cursor:
            self.d.serialize_writers(cursor)  # collectors of several sources start at once
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (source TEXT PRIMARY KEY, state {self.d.blob} NOT NULL)"
            )
        self._ready = True

    def load(self, source: str) -> Checkpoint:
        with _unavailable(), self.db.read() as cursor:
            if not self.d.table_exists(cursor, TABLE):
                return Checkpoint(source)
            cursor.execute(self.d.sql(f"SELECT state FROM {self.table} WHERE source = ?"), (source,))
            row = cursor.fetchone()
        return Checkpoint.from_json(orjson.loads(bytes(row[0]))) if row else Checkpoint(source)

    def save(self, checkpoint: Checkpoint) -> None:
        self.ensure()
        with _unavailable(), self.db.write() as cursor:
            cursor.execute(
                self.d.sql(
                    f"INSERT INTO {self.table} (source, state) VALUES (?, ?) "
                    "ON CONFLICT (source) DO UPDATE SET state = excluded.state"
                ),
                (checkpoint.source, orjson.dumps(checkpoint.to_json())),
            )

    def all(self) -> list[Checkpoint]:
        with _unavailable(), self.db.read() as cursor:
            if not self.d.table_exists(cursor, TABLE):
                return []
            cursor.execute(f"SELECT state FROM {self.table} ORDER BY source")
            rows = cursor.fetchall()
        return [Checkpoint.from_json(orjson.loads(bytes(row[0]))) for row in rows]


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except PersistenceError as e:
        raise LedgerError(Code.UNAVAILABLE, f"collector checkpoints: {e}") from None
