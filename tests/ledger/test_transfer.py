"""Issue 5 acceptance: ingest with rejects and duplicates, moving a ledger between backends, Operation
snapshots, incremental and Parquet exports, and follow across a PostgreSQL restart."""

from __future__ import annotations

import io
import itertools
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from ledger import Ledger
from ledger.cli import cli
from ledger.export import COLUMNS, parquet_schema
from ledger.ingest import Rejection
from ledger.simulate import simulate_lines

from ..support import PG_DSN, drop_schema, log_length, needs_postgres, with_schema

LEDGER = Path(sys.executable).with_name("ledger")
GOOD = "projects/p/operations/good"


def _ingest(url: str, path: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(cli, ["--db", url, "ingest", str(path), *extra], catch_exceptions=False)
    return result.exit_code, orjson.loads(result.stdout), result.stderr


def test_bad_lines_are_rejected_and_good_lines_land(ledger_url: str, tmp_path: Path) -> None:
    good = [line.decode().rstrip("\n") for line in simulate_lines(30, seed=5)]
    lines = [
        *good[:40],
        "{not json",
        '{"type": "Exploded", "name": "operations/x", "occurredAt": "2026-11-21T10:00:00Z"}',
        '{"type": "Created", "occurredAt": "2026-11-21T10:00:00Z"}',
        f'{{"type": "Created", "name": "{GOOD}", "occurredAt": "2026-11-21T10:00:00Z"}}',
        f'{{"type": "Succeeded", "name": "{GOOD}", "occurredAt": "2026-11-21T10:01:00Z"}}',
        f'{{"type": "Progressed", "name": "{GOOD}", "occurredAt": "2026-11-21T10:02:00Z", "statusDetail": "late"}}',
        '{"type": "Created", "name": "operations/coded", "occurredAt": "2026-11-21T10:00:00Z"}',
        '{"type": "Failed", "name": "operations/coded", "occurredAt": "2026-11-21T10:01:00Z", "error": {"code": 17}}',
        '{"type": "Created", "name": "operations/when", "occurredAt": "yesterday"}',
        '{"type": "Created", "name": "operations/extra", "occurredAt": "2026-11-21T10:00:00Z", "colour": "red"}',
        '{"type": "Cancelled", "name": "operations/none", "occurredAt": "2026-11-21T10:00:00Z"}',
        '{"type": "Progressed", "name": "operations/none", "occurredAt": "2026-11-21T10:00:00Z", "statusDetail": "?"}',
        "[1, 2]",
        *good[40:],
    ]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.jsonl"
    code, summary, stderr = _ingest(ledger_url, source, "--reject-file", str(rejects))
    assert code == 1
    rejected = [orjson.loads(line) for line in rejects.read_text().splitlines()]
    expected = {
        41: "INVALID_ARGUMENT: line: not valid JSON",
        42: "INVALID_ARGUMENT: type: 'Exploded' is not one of",
        43: "INVALID_ARGUMENT: name: an operation name is required",
        46: "FAILED_PRECONDITION: operation 'projects/p/operations/good' is done",
        48: "INVALID_ARGUMENT: error.code: 17 is not a google.rpc.Code",
        49: "INVALID_ARGUMENT: occurredAt: 'yesterday' is not an RFC 3339 timestamp",
        50: "INVALID_ARGUMENT: colour: is not a field of Created",
        51: "INVALID_ARGUMENT: type: 'Cancelled' is not one of",
        52: "NOT_FOUND: operation 'operations/none' not found",
        53: "INVALID_ARGUMENT: line: must be a JSON object",
    }
    assert [r["line"] for r in rejected] == sorted(expected)
    for rejection in rejected:
        assert rejection["reason"].startswith(expected[rejection["line"]]), rejection
        assert rejection["input"] == lines[rejection["line"] - 1]
    assert summary == {
        "lines": len(lines),
        "recorded": len(good) + 3,
        "duplicates": 0,
        "rejected": 10,
        "operations": 32,
    }
    assert "line 41: INVALID_ARGUMENT" in stderr and "10 lines rejected" in stderr

    with Ledger.open(ledger_url) as lg:
        assert [e["type"] for e in lg.history(GOOD)] == ["Created", "Succeeded"]
        before = log_length(lg)
        assert len(lg.list(page_size=1000)["operations"]) == 32
    code, again, _ = _ingest(ledger_url, source)
    assert code == 1
    assert again == {"lines": len(lines), "recorded": 0, "duplicates": len(good) + 3, "rejected": 10, "operations": 0}
    with Ledger.open(ledger_url) as lg:
        assert log_length(lg) == before


def test_a_nul_in_one_name_rejects_that_line_only(ledger: Ledger) -> None:
    """Found by schemathesis through POST /v1/events: PostgreSQL refused the whole batch's lookup."""
    good = {"type": "Created", "name": "operations/fine", "occurredAt": "2026-01-01T00:00:00Z"}
    bad = {**good, "name": "operations/n\u0000ul"}
    rejected: list[Rejection] = []
    summary = ledger.ingest([orjson.dumps(bad), orjson.dumps(good)], on_reject=rejected.append)
    assert (summary["recorded"], summary["rejected"]) == (1, 1)
    assert rejected[0].line == 1 and rejected[0].reason.startswith("INVALID_ARGUMENT: name")


def test_versions_in_lines_are_checked(ledger: Ledger) -> None:
    lines = [
        b'{"type": "Created", "name": "operations/v", "occurredAt": "2026-11-21T10:00:00Z", "version": 1}',
        b'{"type": "Progressed", "name": "operations/v", "occurredAt": "2026-11-21T10:01:00Z", "statusDetail": "a", "version": 2}',
        b'{"type": "Progressed", "name": "operations/v", "occurredAt": "2026-11-21T10:02:00Z", "statusDetail": "b", "version": 2}',
        b'{"type": "Progressed", "name": "operations/v", "occurredAt": "2026-11-21T10:03:00Z", "statusDetail": "c", "version": 5}',
        b'{"type": "Progressed", "name": "operations/v", "occurredAt": "2026-11-21T10:01:00Z", "statusDetail": "a", "version": 2}',
    ]
    reasons: list[str] = []
    summary = ledger.ingest(lines, on_reject=lambda r: reasons.append(r.reason))
    assert summary["recorded"] == 2 and summary["duplicates"] == 1
    assert reasons[0].startswith("FAILED_PRECONDITION: version 2 of 'operations/v' holds another event")
    assert reasons[1].startswith("FAILED_PRECONDITION: version 5 would leave a gap after version 2")


def _comparable(lg: Ledger) -> dict[str, Any]:
    """Everything a user reads, less what differs between stores (position, recordedAt, hash)."""
    listing = []
    token = ""
    while True:
        page = lg.list(page_size=97, page_token=token)
        listing += page["operations"]
        token = page.get("nextPageToken", "")
        if not token:
            break
    names = sorted({e["name"] for e in _events(lg)})
    histories = {
        name: [{k: v for k, v in e.items() if k not in ("position", "recordedAt", "hash")} for e in lg.history(name)]
        for name in names
    }
    return {"list": listing, "histories": histories}


def _events(lg: Ledger) -> list[dict[str, Any]]:
    buffer = io.BytesIO()
    lg.export("events", out=buffer)
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


@needs_postgres  # moving between backends
def test_export_from_sqlite_ingest_into_postgresql_and_back(tmp_path: Path) -> None:
    schema = f"test_move_{uuid.uuid4().hex[:8]}"
    sqlite_url, back_url, pg_url = (
        f"sqlite:///{tmp_path}/a.db",
        f"sqlite:///{tmp_path}/b.db",
        with_schema(PG_DSN, schema),
    )
    try:
        with Ledger.open(sqlite_url) as lg:
            lg.ingest(simulate_lines(150, seed=11))
            lg.delete(lg.list(page_size=1)["operations"][0]["name"])
            original = _comparable(lg)
            lg.export("events", out=str(tmp_path / "events.jsonl"))
        for url, source in ((pg_url, tmp_path / "events.jsonl"), (back_url, tmp_path / "again.jsonl")):
            code, summary, _ = _ingest(url, source)
            assert code == 0 and summary["rejected"] == 0
            with Ledger.open(url) as lg:
                assert _comparable(lg) == original
                assert lg.audit()["ok"] is True
                lg.export("events", out=str(tmp_path / "again.jsonl"))
    finally:
        drop_schema(PG_DSN, schema)


COMMON = "type.googleapis.com/google.cloud.common.OperationMetadata"
SNAP = "projects/p/regions/r/operations/snap-1"


def _snapshot(**metadata: Any) -> dict[str, Any]:
    return {
        "name": SNAP,
        "metadata": {"@type": COMMON, "createTime": "2026-11-21T10:00:00Z", "verb": "create", **metadata},
    }


def test_snapshots_become_the_events_that_explain_them(ledger: Ledger) -> None:
    done = {**_snapshot(endTime="2026-11-21T10:05:00Z", statusDetail="stopped", cancelRequested=True), "done": True}
    done["error"] = {"code": 1, "message": "Operation was cancelled."}
    sequence = [
        _snapshot(),
        _snapshot(),  # unchanged: nothing
        _snapshot(statusDetail="provisioning"),
        _snapshot(statusDetail="provisioning", cancelRequested=True),
        done,
    ]
    lines = [orjson.dumps(s) for s in sequence]
    summary = ledger.ingest(lines, snapshots=True)
    assert summary["rejected"] == 0
    history = ledger.history(SNAP)
    # Verbatim: every change of the metadata is a Progressed patch; the flag also records CancelRequested.
    kinds = ["Created", "Progressed", "Progressed", "CancelRequested", "Progressed", "Failed"]
    assert [e["type"] for e in history] == kinds
    assert history[0]["occurredAt"] == "2026-11-21T10:00:00Z" and history[0]["verb"] == "create"
    assert history[1]["statusDetail"] == "provisioning"
    assert history[2]["metadataPatch"] == {"cancelRequested": True}
    assert history[5]["occurredAt"] == "2026-11-21T10:05:00Z" and history[5]["error"]["code"] == 1
    assert ledger.get(SNAP) == done
    again = ledger.ingest(lines, snapshots=True)
    assert again["recorded"] == 0
    assert ledger.history(SNAP) == history


def test_snapshots_of_an_api_with_its_own_metadata(ledger: Ledger) -> None:
    kind = "type.googleapis.com/google.cloud.dataproc.v1.ClusterOperationMetadata"
    first: dict[str, Any] = {
        "name": "projects/p/regions/r/operations/c1",
        "metadata": {"@type": kind, "clusterName": "etl", "status": {"state": "PENDING"}},
    }
    second = {**first, "metadata": {**first["metadata"], "status": {"state": "RUNNING"}, "warnings": ["slow"]}}
    page = orjson.dumps({"operations": [second, {**second, "name": "projects/p/regions/r/operations/c2"}]})
    assert ledger.ingest([orjson.dumps(first), page], snapshots=True)["rejected"] == 0
    history = ledger.history("projects/p/regions/r/operations/c1")
    assert [e["type"] for e in history] == ["Created", "Progressed"]
    assert history[1]["metadataPatch"] == {"status": {"state": "RUNNING"}, "warnings": ["slow"]}
    assert ledger.get("projects/p/regions/r/operations/c1")["metadata"] == second["metadata"]
    assert ledger.get("projects/p/regions/r/operations/c2")["metadata"] == second["metadata"]


def test_incremental_exports_hold_every_event_exactly_once(ledger_url: str, tmp_path: Path) -> None:
    out = tmp_path / "exports"
    with Ledger.open(ledger_url) as lg:
        for seed in range(4):
            lg.ingest(simulate_lines(40, seed=seed))
            lg.export("events", out=f"{out}/")
            lg.export("events", out=f"{out}/")  # nothing new: no file
        every = {(e["name"], e["version"]) for e in _events(lg)}
        manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert len(manifest["exports"]) == 4
    ranges = [(e["fromPosition"], e["toPosition"]) for e in manifest["exports"]]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges)) and ranges[0][0] == 0
    seen: list[tuple[str, int]] = []
    for entry in manifest["exports"]:
        rows = [orjson.loads(line) for line in (out / entry["file"]).read_text().splitlines()]
        assert len(rows) == entry["rows"]
        assert all(entry["fromPosition"] < r["position"] <= entry["toPosition"] for r in rows)
        seen += [(r["name"], r["version"]) for r in rows]
    assert len(seen) == len(set(seen)) == len(every)
    assert set(seen) == every


def test_parquet_reads_back_with_the_documented_schema(ledger_url: str, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    with Ledger.open(ledger_url) as lg:
        lg.ingest(simulate_lines(60, seed=3))
        counts = {"events": len(_events(lg)), "operations": len(lg.list(page_size=1000)["operations"])}
        for what in ("events", "operations", "intervals"):
            summary = lg.export(what, format="parquet", out=str(tmp_path / f"{what}.parquet"))
            table = pq.read_table(tmp_path / f"{what}.parquet")
            assert table.schema.equals(parquet_schema(what)), what
            assert table.column_names == list(COLUMNS[what])
            assert table.num_rows == summary["rows"]
            if what in counts:
                assert table.num_rows == counts[what]
        operations = pq.read_table(tmp_path / "operations.parquet").to_pylist()
        done = [o for o in operations if o["endTime"] is not None]
        assert done and all(o["durationSeconds"] >= 0 for o in done)


def test_csv_and_stdout_exports(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as lg:
        lg.ingest(simulate_lines(5, seed=1))
    result = CliRunner().invoke(cli, ["--db", ledger_url, "export", "--what", "intervals", "--format", "csv"])
    assert result.exit_code == 0
    header, *rows = result.stdout.splitlines()
    assert header.split(",") == list(COLUMNS["intervals"])
    assert rows
    missing = CliRunner().invoke(cli, ["--db", ledger_url, "export", "--format", "parquet"])
    assert missing.exit_code == 2


WRITER = """
import sys, time
from ledger import Ledger, LedgerError
url, count = sys.argv[1], int(sys.argv[2])
lg = Ledger.open(url)
i = 0
while i < count:
    try:
        lg.create(f"operations/followed-{i:04d}", verb="create")
        i += 1
    except LedgerError as e:
        if e.code_name not in ("UNAVAILABLE", "ABORTED", "INTERNAL"):
            raise
        time.sleep(0.2)
    time.sleep(0.02)
"""


def _follow(url: str) -> tuple[subprocess.Popen[bytes], list[dict[str, Any]], threading.Thread]:
    follower = subprocess.Popen(
        [LEDGER, "--db", url, "follow", "--since", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    seen: list[dict[str, Any]] = []

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            seen.append(orjson.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return follower, seen, reader


def _wait_for(seen: list[dict[str, Any]], count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while len(seen) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def _restart_postgresql() -> Iterator[None]:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True)
    for _ in range(60):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode == 0:
            break
        time.sleep(0.5)
    yield


def test_follow_delivers_every_event_in_order_as_it_is_recorded(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as lg:
        lg.create("operations/before-follow")
    follower, seen, _ = _follow(ledger_url)
    try:
        started = time.monotonic()
        writer = subprocess.run([sys.executable, "-c", WRITER, ledger_url, "40"], check=True, timeout=120)
        assert writer.returncode == 0
        _wait_for(seen, 41, 10)
        assert time.monotonic() - started < 60
    finally:
        follower.terminate()
        follower.wait(10)
    assert [e["name"] for e in seen] == [
        "operations/before-follow",
        *(f"operations/followed-{i:04d}" for i in range(40)),
    ]
    positions = [e["position"] for e in seen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


@needs_postgres  # the restart
def test_follow_rides_out_a_postgresql_restart(tmp_path: Path) -> None:
    if not (shutil.which("pg_ctlcluster") and os.geteuid() == 0 and os.path.isdir("/etc/postgresql")):
        pytest.skip("restarting PostgreSQL needs pg_ctlcluster and root, as on the CI machine")
    schema = f"test_follow_{uuid.uuid4().hex[:8]}"
    url = with_schema(PG_DSN, schema)
    try:
        with Ledger.open(url):
            pass
        follower, seen, _ = _follow(url)
        writer = subprocess.Popen([sys.executable, "-c", WRITER, url, "60"])
        try:
            _wait_for(seen, 15, 30)
            assert len(seen) >= 15
            for _ in _restart_postgresql():
                pass
            assert writer.wait(180) == 0
            _wait_for(seen, 60, 30)
        finally:
            writer.kill()
            follower.terminate()
            follower.wait(10)
        assert [e["name"] for e in seen] == [f"operations/followed-{i:04d}" for i in range(60)]
        assert [e["position"] for e in seen] == sorted(e["position"] for e in seen)
    finally:
        drop_schema(PG_DSN, schema)


def test_parquet_without_pyarrow_names_the_extra(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger import Code, LedgerError

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    target = tmp_path / "exports"
    target.mkdir()
    with pytest.raises(LedgerError) as e:
        ledger.export("operations", format="parquet", out=str(target / "o.parquet"))
    assert e.value.code == Code.FAILED_PRECONDITION
    assert "pip install 'ledger[parquet]'" in e.value.message
    assert list(target.iterdir()) == []  # neither the file nor a partial one


@needs_postgres
def test_a_large_ingest_leaves_postgresql_statistics_of_the_log() -> None:
    """Where autovacuum does not run (it does not on the test database), a log PostgreSQL never
    measured had every lookup of a batch's names planned as a scan of the whole log; ingest measures
    it when it has grown past twice what PostgreSQL knows."""
    schema = f"test_stats_{uuid.uuid4().hex[:8]}"
    try:
        with Ledger.open(with_schema(PG_DSN, schema)) as lg:
            summary = lg.ingest(simulate_lines(3000, seed=5))
            assert summary["recorded"] > 10_000
            with lg.parts.db.read() as cursor:
                cursor.execute(
                    "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = %s",
                    (schema, lg.parts.db.events_table_name),
                )
                assert cursor.fetchone()[0] >= summary["recorded"] * 0.9
    finally:
        drop_schema(PG_DSN, schema)
