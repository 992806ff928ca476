"""Issue 4 acceptance: audit catches every tampering done with plain SQL against the real tables,
names the operation and position; drift is repaired by replay; verify accepts a digest after appends
and rejects it after tampering at or before its position."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from ledger import Ledger
from ledger.cli import cli
from ledger.domain.operation import Created, Operation, OperationEvent, Progressed, Succeeded
from ledger.domain.timestamps import now
from ledger.projections.rows import OPERATION_COLUMNS
from ledger.projections.views import ROW_KEYS

A = "projects/p/operations/a"
B = "projects/p/operations/b"


def _scenario(lg: Ledger) -> None:
    lg.create(A, verb="create", occurred_at="2026-11-21T10:00:00Z")
    lg.progress(A, status_detail="half", progress_percent=50, occurred_at="2026-11-21T10:01:00Z")
    lg.progress(A, status_detail="most", progress_percent=90, occurred_at="2026-11-21T10:02:00Z")
    lg.succeed(A, occurred_at="2026-11-21T10:03:00Z")
    lg.create(B, verb="delete", occurred_at="2026-11-21T10:00:30Z")
    lg.cancel(B, occurred_at="2026-11-21T10:00:40Z")


def _positions(lg: Ledger, name: str) -> dict[int, int]:
    return {e["version"]: e["position"] for e in lg.history(name)}


def _sql(lg: Ledger, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with lg.parts.db.write() as cursor:
        cursor.execute(lg.parts.db.dialect.sql(statement), params)
        return list(cursor.fetchall()) if cursor.description else []


def _row(lg: Ledger, name: str, version: int) -> tuple[str, bytes]:
    events = lg.parts.db.events_table
    topic, state = _sql(
        lg, f"SELECT topic, state FROM {events} WHERE originator_id = ? AND originator_version = ?", (name, version)
    )[0]
    return topic, bytes(state)


def _set_state(lg: Ledger, name: str, version: int, state: bytes) -> None:
    _sql(
        lg,
        f"UPDATE {lg.parts.db.events_table} SET state = ? WHERE originator_id = ? AND originator_version = ?",
        (state, name, version),
    )


def _insert(lg: Ledger, name: str, version: int, topic: str, state: bytes) -> None:
    _sql(
        lg,
        f"INSERT INTO {lg.parts.db.events_table} (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)",
        (name, version, topic, state),
    )


def _delete(lg: Ledger, name: str, version: int) -> None:
    _sql(
        lg,
        f"DELETE FROM {lg.parts.db.events_table} WHERE originator_id = ? AND originator_version = ?",
        (name, version),
    )


def _payload_byte(lg: Ledger) -> int:
    position = _positions(lg, A)[2]
    _, state = _row(lg, A, 2)
    _set_state(lg, A, 2, b"[" + state[1:])  # one byte: no longer a JSON object
    return position


def _field(lg: Ledger) -> int:
    position = _positions(lg, A)[3]
    _, state = _row(lg, A, 3)
    _set_state(lg, A, 3, state.replace(b'"most"', b'"done"'))  # still valid JSON, still the same shape
    return position


def _middle(lg: Ledger) -> int:
    positions = _positions(lg, A)
    _delete(lg, A, 2)
    return positions[3]


def _last(lg: Ledger) -> int:
    positions = _positions(lg, A)
    _delete(lg, A, 4)
    return positions[3]


def _swap(lg: Ledger) -> int:
    positions = _positions(lg, A)
    events = lg.parts.db.events_table
    _sql(lg, f"UPDATE {events} SET originator_version = 99 WHERE originator_id = ? AND originator_version = 2", (A,))
    _sql(lg, f"UPDATE {events} SET originator_version = 2 WHERE originator_id = ? AND originator_version = 3", (A,))
    _sql(lg, f"UPDATE {events} SET originator_version = 3 WHERE originator_id = ? AND originator_version = 99", (A,))
    return positions[3]


def _copy_terminal(lg: Ledger) -> int:
    topic, state = _row(lg, A, 4)
    _insert(lg, A, 5, topic, state)
    return _positions(lg, A)[5]


def _move(lg: Ledger) -> int:
    position = _positions(lg, A)[2]
    _sql(
        lg,
        f"UPDATE {lg.parts.db.events_table} SET originator_id = ?, originator_version = 3 WHERE originator_id = ? AND originator_version = 2",
        (B, A),
    )
    return position


def _rule_breaking_history(lg: Ledger) -> int:
    """A history with a valid hash chain, written past the command layer: Progressed after Succeeded."""
    name = "projects/p/operations/forged"
    op = Operation(name)
    events: list[OperationEvent] = []
    for event_class, values in (
        (Created, {"verb": "create"}),
        (Succeeded, {}),
        (Progressed, {"status_detail": "after done"}),
    ):
        event = event_class.next_after(op if events else None, name, op.last_occurred_at, values)
        op = event.mutate(op if events else None) or op
        events.append(event)
    for event in events:
        stored = lg.parts.app.mapper.to_stored_event(event)
        _insert(lg, name, stored.originator_version, stored.topic, stored.state)
    return _positions(lg, name)[3]


TAMPERINGS: dict[str, tuple[Callable[[Ledger], int], str, str]] = {
    "changed payload byte": (_payload_byte, A, "decode"),
    "changed field, JSON still valid": (_field, A, "chain"),
    "deleted middle event": (_middle, A, "version"),
    "deleted last event": (_last, A, "drift"),
    "two events swapped": (_swap, A, "chain"),
    "terminal event copied as a new version": (_copy_terminal, A, "chain"),
    "event moved to another operation": (_move, B, "chain"),
    "rule-breaking history inserted directly": (_rule_breaking_history, "projects/p/operations/forged", "rule"),
}


def _audit_cli(url: str, *names: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["--db", url, "audit", *names], catch_exceptions=False)
    return result.exit_code, orjson.loads(result.stdout)


def test_a_clean_ledger_audits_ok_with_exact_counts(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as lg:
        _scenario(lg)
        lg.delete(B)
    code, report = _audit_cli(ledger_url)
    assert code == 0
    assert report == {"ok": True, "checked": {"operations": 2, "events": 7}, "findings": []}
    code, report = _audit_cli(ledger_url, A)
    assert (code, report["checked"]) == (0, {"operations": 1, "events": 4})


@pytest.mark.parametrize("label", sorted(TAMPERINGS))
def test_each_tampering_is_caught(ledger_url: str, label: str) -> None:
    tamper, name, kind = TAMPERINGS[label]
    with Ledger.open(ledger_url) as lg:
        _scenario(lg)
        digest = lg.digest()
        lg.create("projects/p/operations/later", occurred_at="2026-11-21T11:00:00Z")  # appended after the digest
        assert lg.verify(digest)["ok"] is True
        position = tamper(lg)
        assert (
            position <= digest["position"]
            or label == "terminal event copied as a new version"
            or label.startswith("rule")
        )
        code, report = _audit_cli(ledger_url)
        assert code == 3, report
        assert report["ok"] is False
        matching = [
            f for f in report["findings"] if f["name"] == name and f["kind"] == kind and f["severity"] == "error"
        ]
        assert matching, report["findings"]
        assert any(f["position"] == position for f in report["findings"] if f["name"] == name), report["findings"]
        verdict = lg.verify(digest)
        touched_before_digest = label not in (
            "terminal event copied as a new version",
            "rule-breaking history inserted directly",
        )
        assert verdict["ok"] is not touched_before_digest, verdict


def test_drift_is_reported_and_repaired_by_replay(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as lg:
        _scenario(lg)
        d = lg.parts.db.dialect
        rows = _sql(lg, f"SELECT view, generation FROM {d.table('ledger_projections')} WHERE role = 'current'")
        tables = {view: d.table(f"ledger_{view}_g{generation}") for view, generation in rows}
        operations = tables["operations"]
        _sql(lg, f"UPDATE {operations} SET state = 'FAILED' WHERE name = ?", (A,))
        _sql(lg, f"DELETE FROM {operations} WHERE name = ?", (B,))
        columns = (*OPERATION_COLUMNS, *ROW_KEYS)  # a copy of A's row under a name with no events
        copied = ", ".join(["?", *columns[1:]])
        _sql(
            lg,
            f"INSERT INTO {operations} ({', '.join(columns)}) SELECT {copied} FROM {operations} WHERE name = ?",
            ("projects/p/operations/ghost", A),
        )
    code, report = _audit_cli(ledger_url)
    assert code == 3
    drift = {(f["name"], f["kind"]) for f in report["findings"]}
    assert {(A, "drift"), (B, "drift"), ("projects/p/operations/ghost", "drift")} <= drift
    state_finding = next(f for f in report["findings"] if f["name"] == A)
    assert "state" in state_finding["detail"]
    assert CliRunner().invoke(cli, ["--db", ledger_url, "replay"]).exit_code == 0
    code, report = _audit_cli(ledger_url)
    assert (code, report["findings"]) == (0, [])


def test_lag_is_a_warning(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as lg:
        _scenario(lg)
        values = {
            "verb": None,
            "target": None,
            "api_version": None,
            "metadata": None,
            "lifecycle_fields": "common",
            "request_id": None,
        }
        lg.parts.app.save(
            Operation.create("operations/unprojected", now(), values)
        )  # recorded, views not yet caught up
        report = lg.audit()
    assert report["ok"] is True
    lags = [f for f in report["findings"] if f["kind"] == "lag"]
    assert len(lags) == 1 and lags[0]["detail"].startswith("the operations view is 1 positions behind")
    assert all(f["severity"] == "warning" for f in lags)


def test_verify_rejects_malformed_digests(ledger: Ledger) -> None:
    from ledger import Code, LedgerError

    _scenario(ledger)
    for bad in (
        '{"position": -1, "digest": "sha256:00"}',
        '{"position": 1}',
        "[]",
        "{",
        '{"position": true, "digest": "sha256:0"}',
    ):
        with pytest.raises(LedgerError) as e:
            ledger.verify(bad)
        assert e.value.code == Code.INVALID_ARGUMENT
    wrong = ledger.verify({"position": 3, "digest": "sha256:" + "0" * 64})
    assert wrong["ok"] is False
    beyond = ledger.verify({"position": 10_000, "digest": ledger.digest()["digest"]})
    assert beyond["ok"] is False and "ends at position" in beyond["detail"]


def _rewrite(lg: Ledger, name: str, version: int, change: Callable[[dict[str, Any]], Any]) -> int:
    position = _positions(lg, name)[version]
    _, state = _row(lg, name, version)
    _set_state(lg, name, version, orjson.dumps(change(orjson.loads(state))))
    return position


MALFORMED: dict[str, Callable[[Ledger], int]] = {
    "Failed without a code": lambda lg: _rewrite(lg, B, 2, lambda p: p),  # replaced below
    "unknown lifecycle fields": lambda lg: _rewrite(lg, A, 1, lambda p: {**p, "lifecycleFields": "bogus"}),
    "payload not an object": lambda lg: _rewrite(lg, A, 2, lambda p: [p]),
    "percent out of range": lambda lg: _rewrite(lg, A, 3, lambda p: {**p, "progressPercent": 500}),
    "response without @type": lambda lg: _rewrite(lg, A, 4, lambda p: {**p, "response": {"x": 1}}),
}


def _failed_without_code(lg: Ledger) -> int:
    lg.fail(B, code="INTERNAL", message="boom", occurred_at="2026-11-21T10:05:00Z")
    return _rewrite(lg, B, 3, lambda p: {**p, "error": {"message": "boom"}})


MALFORMED["Failed without a code"] = _failed_without_code


@pytest.mark.parametrize("label", sorted(MALFORMED))
def test_malformed_stored_events_are_findings_not_crashes(ledger_url: str, label: str) -> None:
    """An event written past the ledger that decodes as JSON but not as an event: audit reports it,
    and nothing else stops working (other operations, new writes, replay)."""
    with Ledger.open(ledger_url) as lg:
        _scenario(lg)
        position = MALFORMED[label](lg)
        lg.create("projects/p/operations/unrelated", verb="create")
        assert lg.get("projects/p/operations/unrelated")["metadata"]["verb"] == "create"
        assert len(lg.list()["operations"]) >= 2
        lg.replay()
        report = lg.audit()
    assert report["ok"] is False
    assert any(f["kind"] == "decode" and f["position"] == position for f in report["findings"]), report["findings"]
