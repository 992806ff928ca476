"""Regressions of inputs and states that once sank a batch, crashed a command or misled the audit,
one test each, on both backends."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger import Code, Ledger, LedgerError
from ledger.storage.errors import refused_data, translated_errors
from ledger.storage.urls import open_backend

from ..support import log_length

META = "type.googleapis.com/x.M"
T0 = "2026-11-21T10:00:00Z"


def _code(call: Callable[[], Any]) -> int:
    with pytest.raises(LedgerError) as raised:
        call()
    return raised.value.code


def _lines(*events: dict[str, Any]) -> list[bytes]:
    return [orjson.dumps(e) for e in events]


# -- 1. numbers both databases store alike ------------------------------------------------------------


@pytest.mark.parametrize("number", ["1e30", "18446744073709551616", "1e16", "-1e300"])
def test_a_number_the_databases_store_differently_is_refused_and_the_audit_stays_clean(
    ledger: Ledger, number: str
) -> None:
    metadata = '{"@type": "%s", "n": %s}' % (META, number)  # noqa: UP031 - the number's exact text
    assert _code(lambda: ledger.create("operations/n", metadata=metadata)) == Code.INVALID_ARGUMENT
    assert log_length(ledger) == 0
    ledger.create("operations/ok", metadata='{"@type": "%s", "n": 1.5e15, "m": 18446744073709551615}' % META)  # noqa: UP031
    report = ledger.audit()
    assert report["ok"] and report["findings"] == []


def test_nesting_is_limited_where_every_later_read_still_works(ledger: Ledger) -> None:
    deep: Any = 1
    for _ in range(64):
        deep = {"a": deep}
    assert _code(lambda: ledger.create("operations/deep", metadata={"@type": META, "x": deep})) == 3
    fine: Any = 1
    for _ in range(62):
        fine = {"a": fine}
    ledger.create("operations/deep", metadata={"@type": META, "x": fine})
    assert len(ledger.history("operations/deep")) == 1
    assert ledger.audit()["ok"]


# -- 2. a poisoned line sinks only itself ---------------------------------------------------------


def test_one_poisoned_line_in_a_batch_leaves_every_other_line_landed(ledger: Ledger) -> None:
    lines = _lines(*({"type": "Created", "name": f"operations/p{i}", "occurredAt": T0} for i in range(10)))
    lines[3] = _lines({"type": "Created", "name": "operations/early", "occurredAt": "0001-01-01T00:00:00+01:00"})[0]
    lines[6] = _lines({"type": "Created", "name": "operations/big", "occurredAt": T0, "verb": os.urandom(1400).hex()})[
        0
    ]
    rejected: list[int] = []
    summary = ledger.ingest(lines, on_reject=lambda r: rejected.append(r.line))
    assert rejected == [4, 7]
    assert summary["recorded"] == 8
    assert log_length(ledger) == 8


def test_a_line_the_database_refuses_is_found_by_halving_the_batch(ledger: Ledger) -> None:
    """Should a value pass every check and still be refused by the database, it alone is rejected."""
    from ledger.ingest import Ingester

    real_ingester_init = Ingester.__init__
    refusal = _driver_refusal(ledger)

    def refusing_init(self: Ingester, db: Any, transcoder: Any, save: Callable[[Any], None]) -> None:
        def save_refusing(ops: Any) -> None:
            if any(op.name == "operations/refused" for op in ops):
                raise refusal
            save(ops)

        real_ingester_init(self, db, transcoder, save_refusing)

    Ingester.__init__ = refusing_init  # type: ignore[method-assign]
    try:
        names = [f"operations/r{i}" for i in range(7)]
        names.insert(4, "operations/refused")
        rejected: list[str] = []
        ledger.ingest(
            _lines(*({"type": "Created", "name": n, "occurredAt": T0} for n in names)),
            on_reject=lambda r: rejected.append(r.reason),
        )
    finally:
        Ingester.__init__ = real_ingester_init  # type: ignore[method-assign]
    assert len(rejected) == 1 and rejected[0].startswith("INVALID_ARGUMENT: the database refused it")
    assert log_length(ledger) == 7


def _driver_refusal(ledger: Ledger) -> Exception:
    """The persistence error the real database raises for a value beyond its limits."""
    statement = (
        "SELECT 9223372036854775807::bigint + 1"
        if ledger.parts.db.dialect.name == "postgresql"
        else "SELECT zeroblob(2000000000)"  # past SQLite's largest string or blob
    )
    with pytest.raises(Exception, match=r"out of range|too big") as raised, ledger.parts.db.read() as cursor:
        cursor.execute(statement)
    assert refused_data(raised.value), raised.value
    return raised.value


def test_ingest_saves_operations_in_file_order(ledger: Ledger) -> None:
    names = [f"operations/{word}" for word in ("zeta", "alpha", "mid", "beta", "omega", "kappa")]
    ledger.ingest(_lines(*({"type": "Created", "name": n, "occurredAt": T0} for n in names)))
    positions = [ledger.history(n)[0]["position"] for n in names]
    assert positions == sorted(positions)


# -- 3. inputs that crashed ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda lg: lg.get("operations/a", as_of="0001-01-01T00:00:00+01:00"),
        lambda lg: lg.get("operations/a", as_of="9999-12-31T23:59:59-01:00"),
        lambda lg: lg.list(filter="create_time > 0001-01-01T00:30:00+01:00"),
        lambda lg: lg.succeed("operations/a", occurred_at="9999-12-31T23:59:59-00:01"),
        lambda lg: lg.export("events", since=99999999999999999999, out=None),
        lambda lg: lg.list(filter="(" * 196 + "done = true" + ")" * 196),
        lambda lg: lg.list(filter=" OR ".join(["done = true"] * 1001)),
        lambda lg: lg.list(filter='name = "\ud800"'),
        lambda lg: lg.list(filter="\ud800", page_token="0"),
        lambda lg: lg.list(page_token="WyJhIiwiYiIsImMiLDEwMDAwMDAwMDAwMDAwMDAwMDAwMF0"),
        lambda lg: lg.create("operations/a/../b"),
        lambda lg: lg.create("operations/\u202eevil"),
        lambda lg: lg.create("operations/zero\u200bwidth"),
        lambda lg: lg.create("operations/t", target="t" * 1025),
    ],
)
def test_input_that_crashed_is_invalid_argument_and_changes_nothing(
    ledger: Ledger, call: Callable[[Ledger], Any]
) -> None:
    ledger.create("operations/a", occurred_at=T0)
    before = log_length(ledger)
    assert _code(lambda: call(ledger)) == Code.INVALID_ARGUMENT
    assert log_length(ledger) == before


def test_as_of_far_ahead_pages_through_the_whole_list(ledger: Ledger) -> None:
    ledger.create("operations/a", occurred_at=T0)
    ledger.create("operations/b", occurred_at="2026-11-21T10:00:01Z")
    first = ledger.list(as_of="3000-01-01T00:00:00Z", page_size=1)
    second = ledger.list(as_of="3000-01-01T00:00:00Z", page_size=1, page_token=first["nextPageToken"])
    assert [o["name"] for o in first["operations"] + second["operations"]] == ["operations/b", "operations/a"]


@pytest.mark.parametrize("url", ["postgresql://u:pw@[::1:5432/db", "postgresql://u:pw@h:99999/db"])
def test_an_unparsable_database_url_is_invalid_argument(url: str) -> None:
    assert _code(lambda: Ledger.open(url)) == Code.INVALID_ARGUMENT


def test_a_hand_edited_manifest_or_one_ahead_of_the_log_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    ledger.create("operations/a", occurred_at=T0)
    out = tmp_path / "exports"
    ledger.export("events", out=f"{out}/")
    manifest = out / "manifest.json"
    good = manifest.read_bytes()
    manifest.write_bytes(b'{"exports": [{"what": "events"}]}')
    assert _code(lambda: ledger.export("events", out=f"{out}/")) == Code.INVALID_ARGUMENT
    ahead = orjson.loads(good)
    ahead["exports"][0]["toPosition"] = 10**6
    manifest.write_bytes(orjson.dumps(ahead))
    assert _code(lambda: ledger.export("events", out=f"{out}/")) == Code.FAILED_PRECONDITION


def test_a_hand_edited_view_row_is_data_loss_naming_replay(ledger: Ledger) -> None:
    ledger.create("operations/a", occurred_at=T0)
    d = ledger.parts.db.dialect
    with ledger.parts.db.write() as cursor:
        cursor.execute(
            d.sql(f"UPDATE {d.table('ledger_operations_g1')} SET body = ?, create_time = ? WHERE name = ?"),
            (b"\xff{", "garbage", "operations/a"),
        )
    for call in (lambda: ledger.get("operations/a"), ledger.list, ledger.list_flat):
        with pytest.raises(LedgerError) as raised:
            call()
        assert raised.value.code == Code.DATA_LOSS and "replay" in raised.value.message
    ledger.replay()
    assert ledger.get("operations/a")["name"] == "operations/a"


# -- 5. reads never write -----------------------------------------------------------------------------


def test_reading_a_database_that_is_not_a_ledger_changes_nothing(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as lg:  # only to reach the database: then empty it of the ledger
        db = lg.parts.db
        with db.write() as cursor:
            for table in ("ledger_operations",):
                cursor.execute(f"DROP VIEW IF EXISTS {db.dialect.table(table)}")
            for table in ("ledger_operations_g1", "ledger_projections", db.events_table_name):
                cursor.execute(f"DROP TABLE IF EXISTS {db.dialect.table(table)}")
            cursor.execute(f"CREATE TABLE {db.dialect.table('their_data')} (x INTEGER)")
    # Every read (get, list, audit, digest, verify) opens the ledger so: it stops there, with the reason.
    with pytest.raises(LedgerError) as raised:
        Ledger.open(ledger_url, create=False)
    assert raised.value.code == Code.UNAVAILABLE and "not a ledger" in raised.value.message
    db = open_backend(ledger_url).database()
    with db.read() as cursor:
        assert not db.dialect.table_exists(cursor, db.events_table_name)
        assert not db.dialect.table_exists(cursor, "ledger_projections")
    db.close()


def test_an_empty_sqlite_file_is_not_made_a_ledger_by_reading(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with pytest.raises(LedgerError) as raised:
        Ledger.open(f"sqlite:///{path}", create=False)
    assert raised.value.code == Code.UNAVAILABLE
    assert path.stat().st_size == 0


# -- 6. temporary files never follow a planted link ---------------------------------------------------


def test_export_and_token_files_replace_a_planted_symlink_instead_of_following_it(
    ledger: Ledger, tmp_path: Path
) -> None:
    from ledger.server.access import add_token

    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    ledger.create("operations/a", occurred_at=T0)
    out = tmp_path / "exports"
    out.mkdir()
    (out / ".events-000000000001-000000000001.jsonl.partial").symlink_to(victim)
    (out / ".manifest.json.partial").symlink_to(victim)
    (tmp_path / ".events.jsonl.partial").symlink_to(victim)
    (tmp_path / "tokens.json.new").symlink_to(victim)
    ledger.export("events", out=f"{out}/")
    ledger.export("events", out=str(tmp_path / "events.jsonl"))
    add_token(tmp_path / "tokens.json", "user:a@example.com")
    assert victim.read_bytes() == b"precious"
    assert (out / "manifest.json").exists() and (tmp_path / "events.jsonl").exists()
    assert oct((tmp_path / "tokens.json").stat().st_mode & 0o777) == "0o600"


# -- 7. codes say whether to retry --------------------------------------------------------------------


def test_a_schema_mismatch_is_failed_precondition_not_unavailable(ledger: Ledger) -> None:
    ledger.create("operations/a", occurred_at=T0)
    projections = ledger.parts.db.dialect.table("ledger_projections")
    with (
        pytest.raises(LedgerError) as raised,
        translated_errors(ledger.parts.backend),
        ledger.parts.db.read() as cursor,
    ):
        cursor.execute(f"SELECT no_such_column FROM {projections}")
    assert raised.value.code == Code.FAILED_PRECONDITION


# -- 8. audit's blind spots ---------------------------------------------------------------------------


def test_audit_reports_bookkeeping_past_the_log_or_at_a_missing_generation(ledger: Ledger) -> None:
    ledger.create("operations/a", occurred_at=T0)
    d = ledger.parts.db.dialect
    table = d.table("ledger_projections")
    with ledger.parts.db.write() as cursor:
        cursor.execute(d.sql(f"UPDATE {table} SET position = 1000 WHERE view = ?"), ("operations",))
        cursor.execute(d.sql(f"UPDATE {table} SET generation = 7 WHERE view = ?"), ("operations",))
    report = ledger.audit()
    details = [f["detail"] for f in report["findings"] if f["kind"] == "bookkeeping"]
    assert not report["ok"]
    assert any("past the log's end" in d for d in details), details
    assert any("generation 7 has no table" in d for d in details), details


def test_a_policy_change_forged_and_rehashed_fails_verify(ledger: Ledger) -> None:
    from ledger.domain.chain import GENESIS, link

    policy = {"bindings": [{"role": "roles/ledger.viewer", "members": ["user:a@example.com"]}]}
    ledger.set_policy("projects/p", policy, principal="user:admin@example.com")
    saved = ledger.digest()
    assert set(saved["policies"]) == {"versions", "digest"}
    assert ledger.verify(saved)["ok"]
    d = ledger.parts.db.dialect
    table = d.table("ledger_policy_events")
    with ledger.parts.db.write() as cursor:
        cursor.execute(f"SELECT payload FROM {table}")
        payload = orjson.loads(bytes(cursor.fetchone()[0]))
        payload["policy"]["bindings"][0]["role"] = "roles/ledger.admin"
        body = {
            "resource": "projects/p",
            "version": 1,
            **{k: payload[k] for k in ("occurredAt", "principal", "policy")},
        }
        payload["hash"] = link(GENESIS, body)
        cursor.execute(d.sql(f"UPDATE {table} SET payload = ?"), (orjson.dumps(payload),))
    assert ledger.audit()["ok"]  # re-hashed: the chain alone cannot tell
    result = ledger.verify(saved)
    assert not result["ok"] and not result["policies"]["ok"]
    ledger.set_policy("projects/q", policy, principal="user:admin@example.com")  # later changes: still valid


def test_reads_and_writes_without_the_bookkeeping_table_are_failed_precondition_not_aborted(ledger: Ledger) -> None:
    ledger.create("operations/a", occurred_at=T0)
    with ledger.parts.db.write() as cursor:
        cursor.execute(f"DROP TABLE {ledger.parts.db.dialect.table('ledger_projections')}")
    calls: list[Callable[[], object]] = [lambda: ledger.get("operations/a"), lambda: ledger.create("operations/b")]
    for call in [*calls, ledger.list]:
        with pytest.raises(LedgerError) as raised:
            call()
        assert raised.value.code == Code.FAILED_PRECONDITION and "ledger init" in raised.value.message
    assert log_length(ledger) == 1


def test_a_full_database_is_resource_exhausted_not_unavailable(tmp_path: Path) -> None:
    with Ledger.open(f"sqlite:///{tmp_path}/full.db") as lg:
        lg.create("operations/a", occurred_at=T0)
        with lg.parts.db.quick() as cursor:  # SQLite's own "database or disk is full", without filling a disk
            cursor.execute("PRAGMA page_count")
            cursor.execute(f"PRAGMA max_page_count = {int(cursor.fetchone()[0])}")
        with pytest.raises(LedgerError) as raised:
            lg.ingest(_lines(*({"type": "Created", "name": f"operations/f{i}", "occurredAt": T0} for i in range(500))))
        assert raised.value.code == Code.RESOURCE_EXHAUSTED, raised.value
