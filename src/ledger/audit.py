"""Audit: re-derive every operation from its stored events and report what does not hold, changing
nothing. Checks, per operation: versions 1..n without a gap, positions rising with versions, every
event decodable, the hash chain, the lifecycle rules of SPEC §2; then that both views equal a fresh
fold of the log up to their positions (drift), that no view row lacks events, and how far views lag.

The log is read in (operation, version) order in chunks, so memory stays flat however long it is,
inside one snapshot of the database so that the views and the log are compared as of one moment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from eventsourcing.persistence import Transcoder

from .domain.chain import GENESIS, LogDigest
from .domain.operation import Operation, broken_rule
from .projections.rows import COLUMNS, JSON_COLUMNS
from .projections.views import Change, VersionsView, operation_rows, project, version_rows
from .storage import log
from .storage.backend import decode_stored, payload_bytes
from .storage.database import ViewDatabase

CHUNK = 5000
Record = tuple[int, int, str, bytes]  # position, version, topic, stored payload


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    kind: str  # rule | chain | version | order | decode | drift | lag
    name: str | None
    position: int | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "kind": self.kind,
            "name": self.name,
            "position": self.position,
            "detail": self.detail,
        }


@dataclass
class Report:
    operations: int = 0
    events: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": {"operations": self.operations, "events": self.events},
            "findings": [f.to_json() for f in self.findings],
        }


class Auditor:
    def __init__(
        self,
        db: ViewDatabase,
        transcoder: Transcoder,
        positions: dict[str, int],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.db, self.d = db, db.dialect
        self.transcoder = transcoder
        self.positions = positions  # each view's tracked position, read in the same snapshot
        self.progress = progress

    def run(self, cursor: Any, names: Sequence[str] | None = None) -> Report:
        report = Report()
        end = log.log_end(cursor, self.db)
        for view, position in sorted(self.positions.items()):
            if position < end:
                detail = f"the {view} view is {end - position} positions behind the log (at {position} of {end})"
                report.findings.append(Finding("warning", "lag", None, position, detail))
        for chunk in self._chunks(cursor, names):
            views = self._view_rows(cursor, [name for name, _ in chunk])
            for name, records in chunk:
                report.operations += 1
                report.events += len(records)
                report.findings += self.check(name, records, *views(name))
            if self.progress:
                self.progress(sum(len(records) for _, records in chunk))
        report.findings += self._orphans(cursor, names)
        return report

    # -- one operation ----------------------------------------------------------------------------

    def check(
        self,
        name: str,
        records: list[Record],
        stored_op: tuple[Any, ...] | None,
        stored_versions: list[tuple[Any, ...]],
    ) -> list[Finding]:
        findings: list[Finding] = []

        def error(kind: str, position: int, detail: str) -> None:
            findings.append(Finding("error", kind, name, position, detail))

        op: Operation | None = None
        previous_hash: str | None = GENESIS
        expected_version, last_position = 1, 0
        changes: list[Change] = []
        for position, version, topic, state in records:
            if version != expected_version:
                error("version", position, f"version {version} follows version {expected_version - 1}")
            if position <= last_position:
                error("order", position, f"version {version} is at position {position}, before version {version - 1}")
            expected_version, last_position = version + 1, position
            try:
                event = decode_stored(name, version, topic, state, self.transcoder)
            except Exception as e:
                error("decode", position, str(e))
                previous_hash = None  # the next link cannot be checked against an unreadable one
                continue
            try:
                if previous_hash is not None and event.hash != event.expected_hash(previous_hash):
                    error("chain", position, f"version {version}: the stored hash does not match the event's content")
                previous_hash = event.hash
                broken = broken_rule(op, event)
                if broken:
                    error("rule", position, f"version {version} ({event.TYPE}): {broken[1]}")
                landed = project(op, event, position)
            except Exception as e:
                error("decode", position, f"version {version} ({event.TYPE}) cannot be folded: {e!r}")
                op, landed = None, None
            if landed is not None:
                op, change = landed
                changes.append(change)
        findings += self._drift(name, changes, stored_op, stored_versions)
        return findings

    def _drift(
        self,
        name: str,
        changes: list[Change],
        stored_op: tuple[Any, ...] | None,
        stored_versions: list[tuple[Any, ...]],
    ) -> list[Finding]:
        findings = []
        seen = [c for c in changes if c.position <= self.positions.get("operations", 0)]
        upserts, _ = operation_rows(seen)
        expected_op = _normal(upserts[0]) if upserts else None
        if expected_op != (_normal(stored_op) if stored_op else None):
            position = seen[-1].position if seen else None
            findings.append(
                Finding("error", "drift", name, position, _difference("operations", expected_op, stored_op))
            )
        seen = [c for c in changes if c.position <= self.positions.get("versions", 0)]
        inserts, _ = version_rows(seen)
        expected_versions = [_normal(tuple(row)) for row in inserts]
        actual_versions = [_normal(row) for row in stored_versions]
        if expected_versions != actual_versions:
            position = seen[-1].position if seen else None
            detail = (
                f"the versions view holds {len(actual_versions)} intervals where a fresh fold gives "
                f"{len(expected_versions)}, or they differ in content"
            )
            findings.append(Finding("error", "drift", name, position, detail))
        return findings

    # -- reading ----------------------------------------------------------------------------------

    def _chunks(self, cursor: Any, names: Sequence[str] | None) -> Iterator[list[tuple[str, list[Record]]]]:
        """Whole histories, a chunk of operations at a time, in (name, version) order."""
        columns = f"{self.db.position_column}, originator_id, originator_version, topic, state"
        if names is not None:
            yield _group(log.histories(cursor, self.db, names))
            return
        after: tuple[str, int] | None = None
        carried: list[tuple[Any, ...]] = []
        while True:
            where, params = "", []
            if after is not None:
                where = "WHERE (originator_id, originator_version) > (?, ?)"  # a row value: an index seek
                params = [after[0], after[1]]
            cursor.execute(
                self.d.sql(
                    f"SELECT {columns} FROM {self.db.events_table} {where} "
                    "ORDER BY originator_id, originator_version LIMIT ?"
                ),
                [*params, CHUNK],
            )
            fetched = list(cursor.fetchall())
            rows = carried + fetched
            if len(fetched) < CHUNK:  # the end of the log: every history in hand is whole
                if rows:
                    yield _group(rows)
                return
            after = (fetched[-1][1], fetched[-1][2])
            # The last operation of a chunk may go on in the next one: carry its rows over.
            cut = len(rows)
            while cut > 0 and rows[cut - 1][1] == after[0]:
                cut -= 1
            carried = rows[cut:]
            if cut:
                yield _group(rows[:cut])

    def _view_rows(
        self, cursor: Any, names: list[str]
    ) -> Callable[[str], tuple[tuple[Any, ...] | None, list[tuple[Any, ...]]]]:
        operations: dict[str, tuple[Any, ...]] = {}
        versions: dict[str, list[tuple[Any, ...]]] = {}
        for start in range(0, len(names), 500):
            part = names[start : start + 500]
            in_list, as_array = self.d.in_list("name", len(part))
            params = (part,) if as_array else part
            op_columns = ", ".join((*COLUMNS, "version", "position"))
            cursor.execute(
                self.d.sql(f"SELECT {op_columns} FROM {self.d.table('ledger_operations')} WHERE {in_list}"), params
            )
            for row in cursor.fetchall():
                operations[row[0]] = tuple(row)
            version_columns = ", ".join((*COLUMNS, *VersionsView.KEYS))
            cursor.execute(
                self.d.sql(
                    f"SELECT {version_columns} FROM {self.d.table('ledger_versions')} WHERE {in_list} "
                    "ORDER BY name, version"
                ),
                params,
            )
            for row in cursor.fetchall():
                versions.setdefault(row[0], []).append(tuple(row))
        return lambda name: (operations.get(name), versions.get(name, []))

    def _orphans(self, cursor: Any, names: Sequence[str] | None) -> list[Finding]:
        """View rows of operations that have no events at all."""
        findings = []
        for view in ("operations", "versions"):
            table = self.d.table(f"ledger_{view}")
            cursor.execute(
                f"SELECT DISTINCT name FROM {table} v WHERE NOT EXISTS "
                f"(SELECT 1 FROM {self.db.events_table} e WHERE e.originator_id = v.name)"
            )
            for (name,) in cursor.fetchall():
                if names is None or name in names:
                    detail = f"the {view} view has rows for an operation with no events"
                    findings.append(Finding("error", "drift", name, None, detail))
        return findings


def _group(rows: Sequence[tuple[Any, ...]]) -> list[tuple[str, list[Record]]]:
    grouped: list[tuple[str, list[Record]]] = []
    for position, name, version, topic, state in rows:
        if not grouped or grouped[-1][0] != name:
            grouped.append((name, []))
        grouped[-1][1].append((int(position), int(version), topic, state))
    return grouped


def _normal(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A view row in one comparable form: JSON as data, bytes as bytes, whatever the driver gave."""
    out = []
    for column, value in zip((*COLUMNS, *VersionsView.KEYS), row, strict=False):
        if column in JSON_COLUMNS and isinstance(value, str):
            try:
                out.append(orjson.loads(value))
            except orjson.JSONDecodeError:  # edited by hand into something else: it differs, as drift
                out.append(value)
        elif isinstance(value, memoryview):
            out.append(bytes(value))
        else:
            out.append(value)
    return tuple(out)


def _difference(view: str, expected: tuple[Any, ...] | None, stored: tuple[Any, ...] | None) -> str:
    if stored is None:
        return f"missing from the {view} view"
    if expected is None:
        return f"in the {view} view, but the log has no live operation"
    names = (*COLUMNS, "version", "position")
    differing = [c for c, a, b in zip(names, expected, _normal(stored), strict=False) if a != b]
    return f"the {view} view differs from a fresh fold of the log in: {', '.join(differing)}"


def digest_log(cursor: Any, db: ViewDatabase, upto: int | None = None) -> LogDigest:
    """The log digest up to position `upto` (default: the end of the log), streamed in chunks."""
    digest = LogDigest()
    after = 0
    stop = log.log_end(cursor, db) if upto is None else upto
    while after < stop:
        rows = log.read_after(cursor, db, after, CHUNK, upto=stop)
        if not rows:
            break
        for position, name, version, topic, state in rows:
            digest.update(int(position), name, int(version), topic, payload_bytes(state))
        after = int(rows[-1][0])
    digest.position = stop
    return digest
