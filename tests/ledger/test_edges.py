"""Edge cases of ingest, export, audit and follow: each one a way they once went wrong."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from ledger import Code, Ledger, LedgerError
from ledger.cli import cli
from ledger.domain.operation import Progressed

from .test_audit import _positions, _row, _set_state, _sql


def _rows(lg: Ledger, what: str, since: int) -> list[dict[str, Any]]:
    out = io.BytesIO()
    lg.export(what, since=since, out=out)
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_incremental_intervals_report_the_end_of_an_earlier_interval(ledger: Ledger) -> None:
    ledger.create("operations/a", occurred_at="2026-11-21T10:00:00Z")
    ledger.create("operations/b", occurred_at="2026-11-21T10:00:01Z")
    first = _rows(ledger, "intervals", 0)
    assert all(r["validTo"] is None for r in first)
    ledger.succeed("operations/b", occurred_at="2026-11-21T10:00:02Z")
    later = {(r["name"], r["version"]): r for r in _rows(ledger, "intervals", 2)}
    assert later[("operations/b", 1)]["validToPosition"] == 3  # the closed interval comes again, closed
    assert later[("operations/b", 2)]["validToPosition"] is None
    assert ("operations/a", 1) not in later


def test_incremental_operations_start_after_the_position(ledger: Ledger) -> None:
    ledger.create("operations/a")
    ledger.create("operations/b")
    assert [r["name"] for r in _rows(ledger, "operations", 0)] == ["operations/a", "operations/b"]
    assert _rows(ledger, "operations", 2) == []
    ledger.cancel("operations/a")
    assert [r["name"] for r in _rows(ledger, "operations", 2)] == ["operations/a"]


def test_a_line_of_any_shape_is_rejected_alone(ledger: Ledger) -> None:
    reasons: list[str] = []
    lines = [
        b'{"type": ["Created"], "name": "operations/a", "occurredAt": "2026-01-01T00:00:00Z"}',
        b'{"type": {"x": 1}, "name": "operations/a", "occurredAt": "2026-01-01T00:00:00Z"}',
        b'{"type": "Created", "name": "operations/b", "occurredAt": "2026-01-01T00:00:00Z"}',
    ]
    summary = ledger.ingest(lines, on_reject=lambda r: reasons.append(r.reason))
    assert (summary["recorded"], summary["rejected"]) == (1, 2)
    assert all(reason.startswith("INVALID_ARGUMENT: type:") for reason in reasons)


def test_a_rejected_snapshot_line_lands_nothing(ledger: Ledger) -> None:
    reasons: list[str] = []
    bad_end = {"name": "operations/s2", "done": True, "error": {"code": 0}}
    bad_page = {"operations": [{"name": "operations/p1"}, {"name": "bad name"}]}
    kind = "type.googleapis.com/acme.JobMetadata"
    bad_status = {"name": "operations/s3", "metadata": {"@type": kind, "statusMessage": 7}}
    lines = [orjson.dumps(x) for x in (bad_end, bad_page, bad_status)]
    summary = ledger.ingest(lines, snapshots=True, on_reject=lambda r: reasons.append(r.reason))
    assert (summary["recorded"], summary["rejected"]) == (0, 3)
    assert ledger.list()["operations"] == []
    assert reasons[2].startswith("INVALID_ARGUMENT: metadata.statusMessage: must be a string")


def test_a_snapshot_of_what_the_ledger_shows_changes_nothing(ledger: Ledger) -> None:
    metadata = {
        "@type": "type.googleapis.com/acme.JobMeta",
        "createTime": "2026-01-01T00:00:00Z",
        "verb": "render",
        "shard": 3,
    }
    ledger.create("operations/job", metadata=metadata)
    summary = ledger.ingest([orjson.dumps(ledger.get("operations/job"))], snapshots=True)
    assert summary["recorded"] == 0
    assert ledger.get("operations/job")["metadata"] == metadata


def test_reingesting_no_op_lines_rejects_nothing(ledger: Ledger) -> None:
    lines = [
        b'{"type": "Created", "name": "operations/c", "occurredAt": "2026-01-01T00:00:00Z"}',
        b'{"type": "CancelRequested", "name": "operations/c", "occurredAt": "2026-01-01T00:00:01Z"}',
        b'{"type": "CancelRequested", "name": "operations/c", "occurredAt": "2026-01-01T00:00:02Z"}',
        b'{"type": "Failed", "name": "operations/c", "occurredAt": "2026-01-01T00:00:03Z", "error": {"code": 1}}',
        b'{"type": "Created", "name": "operations/d", "occurredAt": "2026-01-01T00:00:00Z"}',
        b'{"type": "Created", "name": "operations/d", "occurredAt": "2026-01-01T00:00:09Z"}',
        b'{"type": "Deleted", "name": "operations/d", "occurredAt": "2026-01-01T00:00:10Z"}',
    ]
    first = ledger.ingest(lines)
    assert (first["recorded"], first["duplicates"], first["rejected"]) == (5, 2, 0)
    again = ledger.ingest(lines)
    assert (again["recorded"], again["duplicates"], again["rejected"]) == (0, 7, 0)


def test_a_payload_stored_as_text_is_a_finding(ledger: Ledger) -> None:
    ledger.create("operations/t", occurred_at="2026-11-21T10:00:00Z")
    ledger.progress("operations/t", status_detail="running", occurred_at="2026-11-21T10:01:00Z")
    digest = ledger.digest()
    position = _positions(ledger, "operations/t")[2]
    _, state = _row(ledger, "operations/t", 2)
    if ledger.parts.db.dialect.name == "sqlite":  # as the sqlite3 shell's replace() leaves it: TEXT
        _sql(
            ledger,
            "UPDATE stored_events SET state = ? WHERE originator_version = 2",
            (state.decode().replace("running", "RUNNING"),),
        )
    else:
        _set_state(ledger, "operations/t", 2, state.replace(b"running", b"RUNNING"))
    report = ledger.audit()
    assert any(f["position"] == position and f["kind"] in ("chain", "decode") for f in report["findings"])
    assert ledger.verify(digest)["ok"] is False
    assert ledger.digest()["position"] == digest["position"]


def test_a_view_cell_that_is_not_json_is_drift(ledger: Ledger) -> None:
    ledger.create("operations/v")
    if ledger.parts.db.dialect.name != "sqlite":
        return  # PostgreSQL's jsonb refuses such a cell outright
    _sql(ledger, "UPDATE ledger_operations_g1 SET metadata = 'not json'")
    report = ledger.audit()
    assert [(f["kind"], f["name"]) for f in report["findings"]] == [("drift", "operations/v")]


def test_a_stored_patch_that_changes_the_metadata_type_breaks_a_rule(ledger: Ledger) -> None:
    kind = "type.googleapis.com/acme.A"
    ledger.create("operations/p", metadata={"@type": kind})
    op = ledger.parts.recorder.find("operations/p")
    assert op is not None
    event = Progressed.next_after(
        op, "operations/p", op.last_occurred_at, {"metadata_patch": {"@type": "type.googleapis.com/evil.B"}}
    )
    stored = ledger.parts.app.mapper.to_stored_event(event)
    _sql(
        ledger,
        f"INSERT INTO {ledger.parts.db.events_table} (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)",
        ("operations/p", 2, stored.topic, stored.state),
    )
    report = ledger.audit()
    assert any(f["kind"] == "rule" and "@type" in f["detail"] for f in report["findings"]), report["findings"]


def test_follow_steps_over_an_undecodable_event(ledger: Ledger) -> None:
    ledger.create("operations/f1")
    ledger.create("operations/f2")
    _set_state(ledger, "operations/f1", 1, b"{}")
    seen: list[dict[str, Any]] = []
    for event in ledger.follow(0, poll_interval=0.01, stop=lambda: len(seen) >= 1):
        seen.append(event)
    assert [e["name"] for e in seen] == ["operations/f2"]


def test_files_that_cannot_be_read_or_written_are_named(ledger_url: str, tmp_path: Path) -> None:
    with Ledger.open(ledger_url) as lg:
        lg.create("operations/x")
        try:
            lg.export("events", out=str(tmp_path / "missing-dir" / "x.jsonl"))
        except LedgerError as e:
            assert e.code == Code.INVALID_ARGUMENT
            assert e.message.startswith("out: cannot write")
        else:
            raise AssertionError("writing into a missing directory succeeded")
    missing = CliRunner().invoke(cli, ["--db", ledger_url, "ingest", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr


def test_list_refuses_a_keyword_it_does_not_take(ledger: Ledger) -> None:
    """`list`, `list_json` and `list_flat` take their query as keywords: a misspelt one is an error,
    never silently an unfiltered page."""
    ledger.create("operations/a")
    for method in (ledger.list, ledger.list_json, ledger.list_flat):
        with pytest.raises(TypeError, match="fliter"):
            method(fliter="state = RUNNING")  # type: ignore[call-arg]
