"""Audit: re-derive every operation from its stored events and report what does not hold, changing
nothing. Checks, per operation: versions 1..n without a gap, positions rising with versions, every
event decodable, the hash chain, the lifecycle rules of SPEC §2; then that the operations view equals a fresh
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
from .domain.errors import invalid, not_found
from .domain.operation import Operation, broken_rule
from .domain.values import JSONObject, parse_json
from .projections import queries
from .projections.engine import ProjectionEngine
from .projections.rows import OPERATION_COLUMNS
from .projections.views import ROW_KEYS, VIEWS, Change, operation_rows, project, sql_view
from .storage import log
from .storage.base import Cursor, Database, LogRow
from .storage.codec import decode_stored, payload_bytes

CHUNK = 5000
Record = tuple[int, int, str, bytes]  # position, version, topic, stored payload


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    kind: str  # rule | chain | version | order | decode | drift | lag | bookkeeping | integrity
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
        db: Database,
        transcoder: Transcoder,
        positions: dict[str, int],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.db, self.d = db, db.dialect
        self.transcoder = transcoder
        self.positions = positions  # each view's tracked position, read in the same snapshot
        self.progress = progress

    def run(self, cursor: Cursor, names: Sequence[str] | None = None) -> Report:
        report = Report()
        end = log.log_end(cursor, self.db)
        for view, position in sorted(self.positions.items()):
            if position < end:
                detail = f"the {view} view is {end - position} positions behind the log (at {position} of {end})"
                report.findings.append(Finding("warning", "lag", None, position, detail))
        for chunk in self._chunks(cursor, names):
            operations = queries.view_rows(cursor, self.d, [name for name, _ in chunk])
            for name, records in chunk:
                report.operations += 1
                report.events += len(records)
                report.findings += self.check(name, records, operations.get(name))
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
        findings += self._drift(name, changes, stored_op)
        return findings

    def _drift(self, name: str, changes: list[Change], stored_op: tuple[Any, ...] | None) -> list[Finding]:
        seen = [c for c in changes if c.position <= self.positions.get("operations", 0)]
        rows = operation_rows(seen)
        expected_op = _normal(rows[0]) if rows else None
        if expected_op == (_normal(stored_op) if stored_op else None):
            return []
        position = seen[-1].position if seen else None
        return [Finding("error", "drift", name, position, _difference("operations", expected_op, stored_op))]

    # -- reading ----------------------------------------------------------------------------------

    def _chunks(self, cursor: Cursor, names: Sequence[str] | None) -> Iterator[list[tuple[str, list[Record]]]]:
        """Whole histories, a chunk of operations at a time, in (name, version) order."""
        if names is not None:
            yield _group(log.histories(cursor, self.db, names))
            return
        carried: list[LogRow] = []
        for fetched in log.by_name(cursor, self.db, CHUNK):
            rows = carried + fetched
            if len(fetched) < CHUNK:  # the end of the log: every history in hand is whole
                if rows:
                    yield _group(rows)
                return
            # The last operation of a chunk may go on in the next one: carry its rows over.
            last = fetched[-1].name
            cut = len(rows)
            while cut > 0 and rows[cut - 1].name == last:
                cut -= 1
            carried = rows[cut:]
            if cut:
                yield _group(rows[:cut])

    def _orphans(self, cursor: Cursor, names: Sequence[str] | None) -> list[Finding]:
        """View rows of operations that have no events at all."""
        findings = []
        for view in VIEWS:
            for name in log.names_without_events(cursor, self.db, sql_view(self.d, view)):
                if names is None or name in names:
                    detail = f"the {view} view has rows for an operation with no events"
                    findings.append(Finding("error", "drift", name, None, detail))
        return findings


def _group(rows: Sequence[LogRow]) -> list[tuple[str, list[Record]]]:
    grouped: list[tuple[str, list[Record]]] = []
    for position, name, version, topic, state in rows:
        if not grouped or grouped[-1][0] != name:
            grouped.append((name, []))
        grouped[-1][1].append((int(position), int(version), topic, state))
    return grouped


def _normal(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A view row in one comparable form: JSON as data, bytes as bytes, whatever the driver gave."""
    out = []
    for column, value in zip((*OPERATION_COLUMNS, *ROW_KEYS), row, strict=False):
        if column == "metadata" and isinstance(value, str):
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
    names = (*OPERATION_COLUMNS, *ROW_KEYS)
    differing = [c for c, a, b in zip(names, expected, _normal(stored), strict=False) if a != b]
    return f"the {view} view differs from a fresh fold of the log in: {', '.join(differing)}"


def digest_log(cursor: Cursor, db: Database, upto: int | None = None) -> LogDigest:
    """The log digest up to position `upto` (default: the end of the log), streamed in chunks."""
    digest = LogDigest()
    after = 0
    stop = log.log_end(cursor, db) if upto is None else upto
    while after < stop:
        rows = log.read_after(cursor, db, after, CHUNK, upto=stop)
        if not rows:
            break
        for row in rows:
            digest.update(int(row.position), row.name, int(row.version), row.topic, payload_bytes(row.state))
        after = int(rows[-1].position)
    digest.position = stop
    return digest


def audit(
    engine: ProjectionEngine,
    names: Sequence[str] | None,
    progress: Callable[[int], None] | None,
    policies_audit: Callable[[], tuple[int, list[Finding]]],
) -> JSONObject:
    """SPEC §6's report on the histories of `names` (None: every one, and the policies' changes, as
    `policies_audit()` checks them) and on the views, read inside one snapshot."""
    db = engine.db
    with db.snapshot() as cursor:
        positions = engine.positions_in(cursor)
        report = Auditor(db, engine.transcoder, positions, progress).run(cursor, names)
        if names is None:
            report.findings += [
                Finding("error", "bookkeeping", None, None, problem) for problem in engine.bookkeeping_problems(cursor)
            ]
            report.findings += [
                Finding("error", "integrity", None, None, f"the database's own check: {problem}")
                for problem in db.dialect.integrity_problems(cursor)
            ]
    if names and report.operations < len(names):
        present = {f.name for f in report.findings}
        with db.quick() as cursor:
            missing = [n for n in names if n not in present and not log.latest_version(cursor, db, n)]
        if missing:
            raise not_found(missing[0])
    result = report.to_json()
    if names is None:
        changes, findings = policies_audit()
        if changes:  # a ledger without policies reports exactly SPEC §6's shape
            result["checked"]["policyChanges"] = changes
            result["findings"] += [finding.to_json() for finding in findings]
            result["ok"] = result["ok"] and not findings
    return result


def digest(db: Database, policies: Callable[[], JSONObject | None]) -> JSONObject:
    """`{"position": N, "digest": "sha256:..."}` for the whole log up to its end, N; with
    `"policies": policies()` when access policies were ever set, so that a policy change forged
    later (even re-hashed) fails `verify` too."""
    with db.snapshot() as cursor:
        taken = digest_log(cursor, db)
    result: JSONObject = {"position": taken.position, "digest": taken.digest}
    policy_digest = policies()
    if policy_digest is not None:
        result["policies"] = policy_digest
    return result


def parse_digest(digest: JSONObject | str) -> tuple[int, str]:
    """A saved digest's position and `sha256:` text, checked."""
    saved = parse_json(digest, "digest") if isinstance(digest, (str, bytes)) else digest
    if not isinstance(saved, dict):
        raise invalid("digest", 'expected {"position": N, "digest": "sha256:..."}')
    position, expected = saved.get("position"), saved.get("digest")
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise invalid("digest.position", f"{position!r} is not a log position")
    if not isinstance(expected, str) or not expected.startswith("sha256:"):
        raise invalid("digest.digest", f"{expected!r} is not a sha256: digest")
    return position, expected


def verify(db: Database, digest: JSONObject | str, policies: Callable[[object], str | None]) -> JSONObject:
    """Whether the log up to the saved digest's position is exactly as it was when the digest was
    taken, and the policies' changes too when it covers them (`policies(saved)` says what differs)."""
    position, expected = parse_digest(digest)
    with db.snapshot() as cursor:
        end = log.log_end(cursor, db)
        actual = digest_log(cursor, db, position)
    result: JSONObject = {"ok": actual.digest == expected and end >= position, "position": position}
    result["digest"], result["actual"] = expected, actual.digest
    if end < position:
        result["detail"] = f"the log ends at position {end}, before the digest's position {position}"
    elif not result["ok"]:
        result["detail"] = f"the log up to position {position} is not what it was when the digest was taken"
    saved = parse_json(digest, "digest") if isinstance(digest, (str, bytes)) else digest
    if "policies" in saved:
        problem = policies(saved["policies"])
        result["policies"] = {"ok": problem is None, **({"detail": problem} if problem else {})}
        result["ok"] = result["ok"] and problem is None
    return result
