"""The collector's table, `ledger_collect_sources` (source, state): every statement over it. A
source's state is JSON bytes that `ledger collect` alone reads."""

from __future__ import annotations

from .base import Cursor, Database
from .codec import payload_bytes

TABLE = "ledger_collect_sources"


class CheckpointTable:
    def __init__(self, db: Database) -> None:
        self.d = db.dialect
        self.table = self.d.table(TABLE)

    def create(self, cursor: Cursor) -> None:
        self.d.serialize_writers(cursor)  # collectors of several sources start at once
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (source TEXT PRIMARY KEY, state {self.d.blob} NOT NULL)"
        )

    def exists(self, cursor: Cursor) -> bool:
        """Whether a checkpoint was ever saved: the table is made by the first save."""
        return self.d.table_exists(cursor, TABLE)

    def state(self, cursor: Cursor, source: str) -> bytes | None:
        cursor.execute(self.d.sql(f"SELECT state FROM {self.table} WHERE source = ?"), (source,))
        row = cursor.fetchone()
        return payload_bytes(row[0]) if row else None

    def save(self, cursor: Cursor, source: str, state: bytes) -> None:
        cursor.execute(
            self.d.sql(
                f"INSERT INTO {self.table} (source, state) VALUES (?, ?) "
                "ON CONFLICT (source) DO UPDATE SET state = excluded.state"
            ),
            (source, state),
        )

    def every(self, cursor: Cursor) -> list[bytes]:
        """Each source's state, in source order."""
        cursor.execute(f"SELECT state FROM {self.table} ORDER BY source")
        return [payload_bytes(row[0]) for row in cursor.fetchall()]
