"""Issue 3 acceptance: paging under concurrent writers, replay identity and crash resumption,
readers during replay, and list as of a past time."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger import Code, Ledger, LedgerError
from ledger.domain.operation import Operation, Progressed, Succeeded
from ledger.domain.timestamps import parse_timestamp
from ledger.projections import sharded
from ledger.storage.postgres import PostgresDialect

from ..support import PG_DSN, drop_schema, needs_postgres, with_schema

LEDGER = Path(sys.executable).with_name("ledger")
META, RESPONSE = "type.googleapis.com/acme.M", "type.googleapis.com/acme.R"


def bulk_record(lg: Ledger, count: int, prefix: str = "projects/bulk") -> None:
    """Many operations quickly, saved 200 to a transaction (the command path saves one at a time)."""
    pending: list[Operation] = []
    for i in range(count):
        when = parse_timestamp(f"2026-11-21T{8 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z", "t")
        op = Operation.create(
            f"{prefix}{i % 7}/operations/op-{i:05d}",
            when,
            {"verb": "create", "target": f"t{i % 13}", "lifecycle_fields": "common"},
        )
        op.trigger(Progressed, when, status_detail=f"step {i % 5}", progress_percent=i % 100)
        if i % 3:
            op.trigger(Succeeded, when, response={"@type": "type.googleapis.com/google.protobuf.Empty"})
        pending.append(op)
        if len(pending) == 200:
            lg.parts.app.save(*pending)
            pending = []
    if pending:
        lg.parts.app.save(*pending)
    lg.parts.engine.catch_up()


def dump(lg: Ledger) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the views, every column, in a fixed order."""
    d = lg.parts.db.dialect
    out = {}
    with lg.parts.db.read() as cursor:
        for view, order in (("ledger_operations", "name"),):
            cursor.execute(f"SELECT * FROM {d.table(view)} ORDER BY {order}")
            out[view] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in cursor.fetchall()]
    return out


def all_names(lg: Ledger, **query: Any) -> list[str]:
    names: list[str] = []
    token = ""
    while True:
        page = lg.list(page_token=token, **query)
        names += [op["name"] for op in page["operations"]]
        token = page.get("nextPageToken", "")
        if not token:
            return names


@pytest.mark.parametrize(
    "expression", ["", "done = false", 'verb = "create" AND target = "t1*"', "error:* OR cancelRequested = true"]
)
def test_paging_equals_unpaged_while_others_write(ledger_url: str, expression: str) -> None:
    with Ledger.open(ledger_url) as lg, Ledger.open(ledger_url) as writer:
        for i in range(23):
            name = f"projects/p{i % 3}/operations/op-{i:02d}"
            lg.create(
                name,
                verb="create" if i % 2 else "delete",
                target=f"t{i}",
                occurred_at=f"2026-11-21T10:00:{i // 2:02d}Z",
            )
            if i % 4 == 0:
                lg.fail(name, code=i % 16 + 1)
            if i % 5 == 0:
                lg.cancel(name) if i % 4 else None
        fresh = 0
        for size in range(1, 8):
            unpaged = lg.list(filter=expression, page_size=1000)["operations"]
            seen: list[dict[str, Any]] = []
            token = ""
            while True:
                page = lg.list(filter=expression, page_size=size, page_token=token)
                assert len(page["operations"]) <= size
                seen += page["operations"]
                token = page.get("nextPageToken", "")
                if not token:
                    break
                fresh += 1  # another writer records a new operation between every two pages
                writer.create(f"projects/p0/operations/new-{fresh:03d}", verb="create", target="t1")
            assert seen == unpaged, size


def test_tokens_are_bound_to_their_request(ledger: Ledger) -> None:
    for i in range(5):
        ledger.create(f"projects/p/operations/op-{i}", verb="create", occurred_at=f"2026-11-21T10:00:0{i}Z")
    token = ledger.list("projects/p", filter='verb = "create"', page_size=2)["nextPageToken"]
    assert ledger.list("projects/p", filter='verb = "create"', page_size=2, page_token=token)["operations"]
    for other in (
        {"parent": "projects/q", "filter": 'verb = "create"'},
        {"parent": None, "filter": 'verb = "create"'},
        {"parent": "projects/p", "filter": ""},
        {"parent": "projects/p", "filter": 'verb = "create"', "as_of": "2026-11-21T10:00:09Z"},
    ):
        with pytest.raises(LedgerError) as e:
            ledger.list(other.pop("parent"), page_token=token, **other)
        assert e.value.code == Code.INVALID_ARGUMENT
        assert e.value.message.startswith("page_token:")
    for garbage in ("nonsense", "e30", "W10", "WyJhIiwiYiIsMV0"):
        with pytest.raises(LedgerError) as e:
            ledger.list("projects/p", page_token=garbage)
        assert e.value.code == Code.INVALID_ARGUMENT


def test_page_sizes(ledger: Ledger) -> None:
    for i in range(3):
        ledger.create(f"operations/op-{i}")
    assert len(ledger.list(page_size=0)["operations"]) == 3
    assert len(ledger.list(page_size=5000)["operations"]) == 3
    with pytest.raises(LedgerError) as e:
        ledger.list(page_size=-1)
    assert e.value.code == Code.INVALID_ARGUMENT
    assert ledger.list("projects/none") == {"operations": []}


def test_replay_is_byte_identical(ledger: Ledger) -> None:
    bulk_record(ledger, 700)
    ledger.delete("projects/bulk3/operations/op-00003")
    before = dump(ledger)
    assert len(before["ledger_operations"]) == 700  # the deleted one's row says DELETED
    ledger.replay()
    assert dump(ledger) == before
    ledger.replay(["operations"], batch_size=7)
    assert dump(ledger) == before
    assert ledger.view_lag() == {"operations": 0}


def test_replay_killed_at_random_points_then_rerun(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as lg:
        bulk_record(lg, 1500)
        before = dump(lg)
        events = lg.parts.engine.positions()["operations"]
        expected_names = sorted(row[0] for row in before["ledger_operations"])
    rng = random.Random(7)
    # Kill once the rebuild has passed a random position of the log; the last stop is the end of
    # the log, so that kill lands while indexes are built or the views swapped, if it lands at all.
    stops = [*sorted(rng.sample(range(1, events), 3)), events]
    for stop in stops:
        replay = subprocess.Popen(
            [LEDGER, "--db", ledger_url, "replay", "--batch-size", "10"],
            stderr=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        with Ledger.open(ledger_url) as watcher:
            deadline = time.monotonic() + 60
            while replay.poll() is None and time.monotonic() < deadline:
                building = watcher.parts.engine.positions("building")
                if building and min(building.values()) >= stop:
                    break
                time.sleep(0.002)
        interrupted = replay.poll() is None
        assert interrupted or stop == events, "replay finished before it could be interrupted"
        replay.send_signal(signal.SIGKILL)
        replay.wait()
        with Ledger.open(ledger_url) as lg:  # meanwhile readers see the old, whole views
            assert sorted(all_names(lg, page_size=1000)) == expected_names
    finished = subprocess.run([LEDGER, "--db", ledger_url, "replay"], capture_output=True, check=False)
    assert finished.returncode == 0, finished.stderr
    with Ledger.open(ledger_url) as lg:
        assert dump(lg) == before
        assert lg.parts.engine.positions("building") == {}


def test_readers_during_replay_never_see_errors_or_partial_lists(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as lg:
        bulk_record(lg, 1200)
        expected = lg.list(page_size=1000)
        one = expected["operations"][17]
    failures: list[str] = []
    reads = 0
    stop = threading.Event()

    def read() -> None:
        nonlocal reads
        with Ledger.open(ledger_url) as reader:
            while not stop.is_set():
                try:
                    if reader.list(page_size=1000) != expected or reader.get(one["name"]) != one:
                        failures.append("a read differed from the views before replay")
                except Exception as e:  # any error at all is a failure here
                    failures.append(repr(e))
                reads += 1

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(2):
            done = subprocess.run(
                [LEDGER, "--db", ledger_url, "replay", "--batch-size", "100"], capture_output=True, check=False
            )
            assert done.returncode == 0, done.stderr
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures, failures[:3]
    assert reads > 4


def test_list_as_of_equals_what_list_returned_then(ledger: Ledger) -> None:
    script: list[tuple[str, str, dict[str, Any]]] = []
    for i in range(12):
        script.append(("create", f"projects/p{i % 2}/operations/op-{i:02d}", {"verb": "create" if i % 3 else "update"}))
        if i % 2:
            script.append(
                ("progress", f"projects/p{(i - 1) % 2}/operations/op-{i - 1:02d}", {"status_detail": f"at {i}"})
            )
        if i % 3 == 2:
            script.append(("succeed", f"projects/p{(i - 2) % 2}/operations/op-{i - 2:02d}", {}))
        if i % 4 == 3:
            script.append(("fail", f"projects/p{(i - 1) % 2}/operations/op-{i - 1:02d}", {"code": "CANCELLED"}))
        if i % 5 == 4:
            script.append(("delete", f"projects/p{(i - 4) % 2}/operations/op-{i - 4:02d}", {}))
    queries = [{}, {"filter": "done = false"}, {"filter": 'verb = "create" OR error:*'}, {"parent": "projects/p1"}]
    recorded: list[tuple[str, list[dict[str, Any]]]] = []
    for step, (command, name, args) in enumerate(script):
        at = f"2026-11-21T10:{step // 60:02d}:{step % 60:02d}.5Z"
        try:
            getattr(ledger, command)(name, occurred_at=at, **args)
        except LedgerError as e:
            assert e.code == Code.FAILED_PRECONDITION  # the script may try to end an ended operation
        recorded.append((at, [ledger.list(q.get("parent"), filter=q.get("filter", ""), page_size=3) for q in queries]))
    for at, then in recorded:
        now = [ledger.list(q.get("parent"), filter=q.get("filter", ""), page_size=3, as_of=at) for q in queries]
        assert [page["operations"] for page in now] == [page["operations"] for page in then], at
    assert ledger.list(as_of="2026-11-21T09:00:00Z") == {"operations": []}


def test_every_page_as_of_a_time_walks_what_one_whole_page_returned_then(ledger: Ledger) -> None:
    """Pages as of a time read the rows unchanged since as they stand and fold the others back: with
    pages of two, a listing interleaves both kinds on every page and reads many changed rows a page."""
    names = [f"projects/p/operations/op-{i:02d}" for i in range(30)]
    steps: list[str] = []
    for i, name in enumerate(names):  # created in order, each ended or changed by a later step
        steps.append(f"2026-11-21T10:00:{i:02d}Z")
        ledger.create(name, occurred_at=steps[-1])
    for i, name in enumerate(names[::2]):
        steps.append(f"2026-11-21T10:01:{i:02d}Z")
        if i % 3 == 0:
            ledger.fail(name, code=5, message="gone", occurred_at=steps[-1])
        elif i % 3 == 1:
            ledger.succeed(name, occurred_at=steps[-1])
        else:
            ledger.progress(name, progress_percent=50, occurred_at=steps[-1])
    filters: dict[str, Callable[[dict[str, Any]], bool]] = {
        "": lambda op: True,
        "done = false": lambda op: not op.get("done"),
        "error.code = 5 OR done = false": lambda op: op.get("error", {}).get("code") == 5 or not op.get("done"),
        "done = true": lambda op: bool(op.get("done")),
    }
    points = [steps[5], steps[29], steps[33], steps[-1]]
    later = "2026-11-21T10:02:00Z"
    whole_then = {
        (at, f): ledger.list(filter=f, page_size=1000, as_of=at)["operations"] for at in points for f in filters
    }
    for name in sorted({*names[1::4], *names[::6]}):  # changed after every point: their rows are folded back
        ledger.delete(name, occurred_at=later)
    for (at, f), whole in whole_then.items():  # each operation, folded alone to that time
        then = [ledger.get(n, as_of=at) for i, n in reversed(list(enumerate(names))) if steps[i] <= at]
        assert whole == [op for op in then if filters[f](op)], (at, f)
        walked, token = [], ""
        while True:
            page = ledger.list(filter=f, page_size=2, page_token=token, as_of=at)
            assert len(page["operations"]) <= 2
            walked += page["operations"]
            token = page.get("nextPageToken", "")
            if not token:
                break
        assert walked == whole, (at, f)
    assert [o["name"] for o in whole_then[(steps[29], "")]] == names[::-1]


def test_a_page_as_of_a_time_finds_a_changed_match_behind_changed_rows_that_do_not_match(ledger: Ledger) -> None:
    """In page order: three operations running then and done since, one done then and deleted since,
    three done then and unchanged. The first page of two as of then holds the deleted one first."""

    def at(second: int) -> str:
        return f"2026-11-21T10:00:{second:02d}Z"

    for i, name in enumerate(["s1", "s2", "s3", "m", "x1", "x2", "x3"]):
        ledger.create(f"operations/{name}", occurred_at=at(i))
    for i, name in enumerate(["s1", "s2", "s3", "m"]):
        ledger.succeed(f"operations/{name}", occurred_at=at(10 + i))
    then = at(20)
    for i, name in enumerate(["x1", "x2", "x3"]):
        ledger.succeed(f"operations/{name}", occurred_at=at(30 + i))
    ledger.delete("operations/m", occurred_at=at(40))
    page = ledger.list(filter="done = true", page_size=2, as_of=then)
    assert [op["name"] for op in page["operations"]] == ["operations/m", "operations/s3"]


@pytest.mark.parametrize(
    "where",
    [
        "",
        "WHERE state = 'RUNNING'",
        "WHERE verb = 'create'",
        "WHERE error_code = 8",
        "WHERE parent = 'projects/bulk1'",
        "WHERE metadata_type = 'type.googleapis.com/google.cloud.common.OperationMetadata'",
    ],
)
def test_a_page_is_read_in_its_order_from_an_index_not_sorted(ledger: Ledger, where: str) -> None:
    """The view's indexes run oldest first (so that new entries fill their pages); a page, newest
    first, must still come from reading one of them backwards, never from sorting the matches."""
    bulk_record(ledger, 40)
    d = ledger.parts.db.dialect
    page = f"SELECT name FROM {d.table('ledger_operations')} {where} ORDER BY create_time DESC, name LIMIT 50"
    with ledger.parts.db.read() as cursor:
        if isinstance(d, PostgresDialect):
            # A sort stays in the plan, however costly, only when no index gives the order.
            cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {page}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Index" in plan and "Sort" not in plan, plan
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {page}")
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
            assert "INDEX" in plan and "TEMP B-TREE" not in plan, plan


def test_pg_env_is_set_in_ci() -> None:
    """CI sets LEDGER_TEST_PG_DSN, so the PostgreSQL half of this suite runs there."""
    import os

    if os.environ.get("CI"):
        assert PG_DSN, "CI must run the PostgreSQL tests"


def test_commands_leave_the_views_current(ledger: Ledger) -> None:
    """Read-your-writes comes from the command itself, not from a later read catching up."""
    ledger.create("operations/ryw")
    assert ledger.view_lag() == {"operations": 0}
    ledger.progress("operations/ryw", progress_percent=5)
    ledger.cancel("operations/ryw")
    ledger.fail("operations/ryw", code=1)
    assert ledger.view_lag() == {"operations": 0}
    ledger.delete("operations/ryw")
    assert ledger.view_lag() == {"operations": 0}
    assert [row[:3] for row in dump(ledger)["ledger_operations"]] == [("operations/ryw", "", "DELETED")]


@needs_postgres
def test_gaps_in_positions_are_skipped_not_waited_for() -> None:
    """PostgreSQL takes a notification id even for an insert that is rolled back: the views must
    carry on past such a gap at once. (SQLite positions are rowids, which such inserts do not use.)"""
    schema = f"test_gaps_{uuid.uuid4().hex[:8]}"
    try:
        with Ledger.open(with_schema(PG_DSN, schema)) as lg:
            lg.create("operations/before")
            d = lg.parts.db.dialect
            assert isinstance(d, PostgresDialect)
            with lg.parts.db.write() as cursor:
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{d.schema}.ledger_events', 'notification_id'), "
                    f"(SELECT MAX(notification_id) FROM {lg.parts.db.events_table}) + 5)"
                )
            started = time.monotonic()
            lg.create("operations/after")
            assert time.monotonic() - started < 2
            positions = [lg.history(n)[0]["position"] for n in ("operations/before", "operations/after")]
            assert positions[1] - positions[0] == 6
            assert lg.view_lag() == {"operations": 0}
            assert [op["name"] for op in lg.list()["operations"]] == ["operations/after", "operations/before"]
    finally:
        drop_schema(PG_DSN, schema)


def test_a_listing_is_one_snapshot_however_long_it_is_read(ledger: Ledger) -> None:
    """An operation that stops matching, or changes, after the first page is still where it was."""
    for i in range(3):
        ledger.create(f"operations/op{i}", occurred_at=f"2026-11-21T10:00:0{3 - i}Z")
    first = ledger.list(filter="done = false", page_size=1)
    ledger.succeed("operations/op1")
    ledger.progress("operations/op2", status_detail="moved on")
    ledger.create("operations/newer", occurred_at="2026-11-21T11:00:00Z")
    seen = [op["name"] for op in first["operations"]]
    token = first["nextPageToken"]
    while token:
        page = ledger.list(filter="done = false", page_size=1, page_token=token)
        seen += [op["name"] for op in page["operations"]]
        token = page.get("nextPageToken", "")
    assert seen == ["operations/op0", "operations/op1", "operations/op2"]
    assert [op["name"] for op in ledger.list(filter="done = false")["operations"]] == [
        "operations/newer",
        "operations/op0",
        "operations/op2",
    ]


def test_later_pages_read_changed_operations_as_they_were_at_the_first(ledger: Ledger) -> None:
    """Operations changed, deleted or created after the first page: later pages fold the changed
    ones back to the first page's position and filter them as stored rows are filtered, metadata and
    response paths included, so the listing equals the one read in a single page before the changes."""
    query = "metadata.step = 1 AND (response.ok = true OR done = false)"
    for i in range(8):
        name = f"projects/p/operations/op-{i}"
        ledger.create(name, metadata={"@type": META, "step": 1}, occurred_at=f"2026-11-21T10:00:0{i}Z")
        if i % 2:
            ledger.succeed(name, response={"@type": RESPONSE, "ok": True})
    whole = ledger.list(filter=query, page_size=100)["operations"]
    first = ledger.list(filter=query, page_size=2)
    ledger.progress("projects/p/operations/op-4", metadata_patch={"step": 2})  # no longer matches
    ledger.delete("projects/p/operations/op-3")
    ledger.succeed("projects/p/operations/op-2", response={"@type": RESPONSE, "ok": False})  # no longer matches
    ledger.create("projects/p/operations/late", metadata={"@type": META, "step": 1}, occurred_at="2026-11-21T09:00:00Z")
    listed, token = first["operations"], first["nextPageToken"]
    while token:
        page = ledger.list(filter=query, page_size=2, page_token=token)
        listed, token = listed + page["operations"], page.get("nextPageToken", "")
    assert listed == whole and len(whole) == 8
    now = [op["name"] for op in ledger.list(filter=query, page_size=100)["operations"]]
    assert now == [f"projects/p/operations/op-{i}" for i in (7, 6, 5, 1, 0)] + ["projects/p/operations/late"]


def test_a_large_replay_is_folded_by_shards_in_processes_of_their_own(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sharded by operation name across two processes, a rebuild writes what one process writes,
    in batches of the given size, and tells of every event."""
    fills: list[int] = []
    fill = sharded.fill
    monkeypatch.setattr(sharded, "SHARDED_FROM", 1)
    monkeypatch.setattr(sharded, "usable_cores", lambda: 2)

    def counted(*args: Any) -> None:
        fills.append(args[-1])
        fill(*args)

    monkeypatch.setattr(sharded, "fill", counted)
    with Ledger.open(ledger_url) as lg:
        bulk_record(lg, 300)
        lg.delete("projects/bulk0/operations/op-00007")  # done, then deleted
        lg.fail("projects/bulk1/operations/op-00015", code=9)  # running, then failed
        before, events = dump(lg), lg.parts.engine.positions()["operations"]
        told: list[int] = []
        lg.replay(progress=told.append, batch_size=64)
        assert fills == [2]
        assert dump(lg) == before
        assert sum(told) == events and max(told) <= 64
        assert lg.audit()["findings"] == []
