"""The policies' table, `ledger_policy_events` (resource, version, payload): every statement over it.
Rows come back as `(resource, version, payload bytes)`, however the driver holds the payload."""

from __future__ import annotations

from typing import NamedTuple

from .base import Cursor, Database
from .codec import payload_bytes

TABLE = "ledger_policy_events"


class PolicyRow(NamedTuple):
    resource: str
    version: int
    payload: bytes


class PolicyTable:
    def __init__(self, db: Database) -> None:
        self.d = db.dialect
        self.table = self.d.table(TABLE)

    def create(self, cursor: Cursor) -> None:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (resource TEXT NOT NULL, version INTEGER NOT NULL, "
            f"payload {self.d.blob} NOT NULL, PRIMARY KEY (resource, version))"
        )

    def exists(self, cursor: Cursor) -> bool:
        """Whether a policy was ever set: the table is made by the first write."""
        return self.d.table_exists(cursor, TABLE)

    def history(self, cursor: Cursor, resource: str) -> list[PolicyRow]:
        cursor.execute(
            self.d.sql(f"SELECT resource, version, payload FROM {self.table} WHERE resource = ? ORDER BY version"),
            (resource,),
        )
        return _rows(cursor)

    def latest_locked(self, cursor: Cursor, resource: str) -> PolicyRow | None:
        """The resource's latest change, its row locked until the transaction ends."""
        cursor.execute(
            self.d.sql(
                f"SELECT resource, version, payload FROM {self.table} WHERE resource = ? "
                f"ORDER BY version DESC LIMIT 1{self.d.for_update}"
            ),
            (resource,),
        )
        rows = _rows(cursor)
        return rows[0] if rows else None

    def insert(self, cursor: Cursor, resource: str, version: int, payload: bytes) -> None:
        """A new change; a version already taken raises the driver's integrity error (as eventsourcing's)."""
        cursor.execute(self.d.sql(f"INSERT INTO {self.table} VALUES (?, ?, ?)"), (resource, version, payload))

    def count(self, cursor: Cursor) -> int:
        cursor.execute(f"SELECT COUNT(*) FROM {self.table}")
        return int(cursor.fetchone()[0])

    def every(self, cursor: Cursor) -> list[PolicyRow]:
        """Every change, in resource and version order."""
        cursor.execute(f"SELECT resource, version, payload FROM {self.table} ORDER BY resource, version")
        return _rows(cursor)


def _rows(cursor: Cursor) -> list[PolicyRow]:
    return [
        PolicyRow(resource, int(version), payload_bytes(payload)) for resource, version, payload in cursor.fetchall()
    ]
