"""The storage interfaces' contract, run on both backends: what every `Database` (with its dialect,
the log's statements and the error mapping) must do, whichever driver is behind it. A third backend
passes these before anything above storage/ may use it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError, RecordConflictError, StoredEvent

from ledger import Code, LedgerError
from ledger.storage import log
from ledger.storage.base import Database, LogRow
from ledger.storage.errors import translated_errors
from ledger.storage.policies import PolicyRow, PolicyTable
from ledger.storage.store import Store
from ledger.storage.urls import open_backend

from ..support import BACKENDS, backend_url


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with backend_url(request.param, tmp_path) as made:
        yield made


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    """A store whose event table eventsourcing has made, and nothing else."""
    made = Store(open_backend(url))
    made.set_up(lambda: None)
    yield made
    made.close()


def event(name: str, version: int, payload: bytes = b'{"n": 1}') -> StoredEvent:
    return StoredEvent(name, version, "ledger.Progressed" if version > 1 else "ledger.Created", payload)


def append(db: Database, events: Sequence[StoredEvent]) -> list[int]:
    """As every write appends: in a recording transaction, under the log's lock, after its end."""
    with db.recording(len(events)) as cursor:
        db.lock_log(cursor)
        return log.append(cursor, db, events, after=log.log_end(cursor, db))


def everything(db: Database) -> list[LogRow]:
    with db.read() as cursor:
        return log.read_after(cursor, db, 0, 100_000)


@pytest.mark.parametrize("count", [3, 100], ids=["insert", "bulk"])  # PostgreSQL copies 64 and more
def test_append_hands_out_rising_positions_in_the_order_given(store: Store, count: int) -> None:
    db = store.db
    append(db, [event("operations/first", 1)])
    names = [f"operations/{n:03d}" for n in reversed(range(count))]  # not in name order
    positions = append(db, [event(name, 1) for name in names])
    assert len(positions) == count
    assert positions == sorted(positions) and len(set(positions)) == count
    rows = everything(db)
    assert [row.name for row in rows] == ["operations/first", *names]
    assert [row.position for row in rows[1:]] == positions
    assert all(isinstance(row, LogRow) and isinstance(row.position, int) for row in rows)
    with db.read() as cursor:
        assert log.log_end(cursor, db) == positions[-1]


def test_read_after_keeps_to_its_bounds(store: Store) -> None:
    db = store.db
    positions = append(db, [event(f"operations/{n}", 1) for n in range(6)])
    with db.read() as cursor:
        assert [r.position for r in log.read_after(cursor, db, positions[1], 2)] == positions[2:4]
        assert [r.position for r in log.read_after(cursor, db, positions[1], 10, upto=positions[3])] == positions[2:4]
        assert log.read_after(cursor, db, positions[-1], 10) == []


def test_an_empty_log_ends_at_0(store: Store) -> None:
    with store.db.read() as cursor:
        assert log.log_end(cursor, store.db) == 0
        assert log.latest_version(cursor, store.db, "operations/none") == 0


def test_histories_come_by_name_then_version_for_many_names(store: Store) -> None:
    db = store.db
    names = [f"operations/{n:04d}" for n in range(520)]  # more than one statement's list
    append(db, [event(name, 1) for name in reversed(names)])
    append(db, [event(names[7], 2), event(names[3], 2), event(names[7], 3)])
    with db.quick() as cursor:
        rows = log.histories(cursor, db, names)
        assert [(r.name, r.version) for r in rows] == sorted((r.name, r.version) for r in rows)
        assert len(rows) == 523
        assert [r.version for r in log.histories(cursor, db, [names[7]])] == [1, 2, 3]
        assert log.latest_version(cursor, db, names[7]) == 3


def test_by_name_reads_the_whole_log_in_chunks_in_name_and_version_order(store: Store) -> None:
    db = store.db
    append(db, [event("operations/b", 1), event("operations/a", 1), event("operations/c", 1)])
    append(db, [event("operations/a", 2), event("operations/b", 2), event("operations/a", 3)])
    with db.snapshot() as cursor:
        chunks = list(log.by_name(cursor, db, 4))
    assert [len(chunk) for chunk in chunks] == [4, 2]
    keys = [(r.name, r.version) for chunk in chunks for r in chunk]
    a, b, c = "operations/a", "operations/b", "operations/c"
    assert keys == [(a, 1), (a, 2), (a, 3), (b, 1), (b, 2), (c, 1)]


def test_shards_walk_windows_of_events_and_each_reads_whole_operations_of_its_own(store: Store) -> None:
    """Windows hold `size` events whatever gaps the positions have; within each, the shards' reads
    together are the window, and every event of an operation falls to the same shard."""
    db = store.db
    names = [f"operations/{n:02d}" for n in range(20)]
    append(db, [event(name, 1) for name in names])
    append(db, [event(name, 2) for name in names])
    taken = [row.position for row in everything(db)][3:9]
    with db.write() as cursor:  # a gap in the positions, as rolled-back writes leave on PostgreSQL
        cursor.execute(
            db.dialect.sql(
                f"DELETE FROM {db.events_table} WHERE {db.position_column} >= ? AND {db.position_column} <= ?"
            ),
            (taken[0], taken[-1]),
        )
    rows = everything(db)
    positions = [row.position for row in rows]
    ends, windows, after = [], [], 0
    with db.read() as cursor:
        while after < positions[-1]:
            end = log.window_end(cursor, db, after, 7, positions[-1])
            windows.append([log.read_shard(cursor, db, after, end, shard, 2) for shard in range(2)])
            ends.append(end)
            after = end
    assert ends == [*positions[6::7], positions[-1]]  # 34 events: four windows of 7, then 6
    for (first, second), end in zip(windows, ends, strict=True):
        start = max((e for e in ends if e < end), default=0)
        assert sorted(first + second) == [row for row in rows if start < row.position <= end]
    shard_of = {row.name: shard for pair in windows for shard, read in enumerate(pair) for row in read}
    assert len(shard_of) == 20 and set(shard_of.values()) == {0, 1}
    for pair in windows:
        for shard, read in enumerate(pair):
            assert all(shard_of[row.name] == shard for row in read)


def test_a_taken_name_and_version_is_a_conflict_that_lands_nothing(store: Store) -> None:
    db = store.db
    append(db, [event("operations/a", 1)])
    with pytest.raises(RecordConflictError):
        append(db, [event("operations/b", 1), event("operations/a", 1)])
    with pytest.raises(LedgerError) as raised, translated_errors(store.backend):
        append(db, [event("operations/a", 1)])
    assert raised.value.code == Code.ABORTED
    assert [(r.name, r.version) for r in everything(db)] == [("operations/a", 1)]


def test_a_transaction_that_raises_leaves_nothing_behind(store: Store) -> None:
    db = store.db

    def interrupted() -> None:
        with db.recording(1) as cursor:
            db.lock_log(cursor)
            log.append(cursor, db, [event("operations/a", 1)], after=log.log_end(cursor, db))
            raise RuntimeError("after the insert, before the commit")

    with pytest.raises(RuntimeError):
        interrupted()
    assert everything(db) == []
    append(db, [event("operations/a", 1)])  # the connection is usable again
    assert len(everything(db)) == 1


def test_a_snapshot_sees_one_moment_while_another_connection_writes(store: Store, url: str) -> None:
    db = store.db
    append(db, [event("operations/a", 1)])
    other = Store(open_backend(url))
    try:
        with db.snapshot() as cursor:
            before = log.log_end(cursor, db)
            append(other.db, [event("operations/b", 1)])
            assert log.log_end(cursor, db) == before
        with db.quick() as cursor:  # a new statement sees the other's commit
            assert log.log_end(cursor, db) > before
    finally:
        other.close()


def test_names_without_events(store: Store) -> None:
    db, d = store.db, store.db.dialect
    append(db, [event("operations/a", 1)])
    with db.write() as cursor:
        cursor.execute(f"CREATE TABLE {d.table('contract_names')} (name {d.text} NOT NULL)")
        cursor.executemany(d.sql(f"INSERT INTO {d.table('contract_names')} VALUES (?)"), [("operations/a",), ("x",)])
    with db.read() as cursor:
        assert log.names_without_events(cursor, db, d.table("contract_names")) == ["x"]


def test_the_dialect_speaks_its_database(store: Store) -> None:
    db, d = store.db, store.db.dialect
    table = "contract_dialect"
    with db.write() as cursor:
        assert not d.table_exists(cursor, table)
        cursor.execute(f"CREATE TABLE {d.table(table)} (name {d.text} NOT NULL, doc {d.json}, body {d.blob})")
        placeholders = f"?, {d.json_placeholder}, ?"
        cursor.executemany(
            d.sql(f"INSERT INTO {d.table(table)} VALUES ({placeholders})"),
            [("b", '{"k": 2}', b"\x00\xff"), ("a", '{"k": 1}', b""), ("B", None, None)],
        )
        assert d.table_exists(cursor, table)
        in_list, as_array = d.in_list("name", 2)
        cursor.execute(
            d.sql(f"SELECT name FROM {d.table(table)} WHERE {in_list} ORDER BY name"),
            (["a", "b"],) if as_array else ["a", "b"],
        )
        assert [row[0] for row in cursor.fetchall()] == ["a", "b"]
        cursor.execute(d.sql(f"SELECT name FROM {d.table(table)} ORDER BY name"))
        assert [row[0] for row in cursor.fetchall()] == ["B", "a", "b"]  # code point order, as Python's
        cursor.execute(
            d.sql(f"SELECT name FROM {d.table(table)} WHERE {d.json_number_compare('doc', '>')}"),
            (d.json_path(("k",)), d.json_path(("k",)), 1),
        )
        assert [row[0] for row in cursor.fetchall()] == ["b"]


def test_driver_errors_leave_a_transaction_as_eventsourcing_errors(store: Store) -> None:
    db = store.db
    policies = PolicyTable(db)
    with db.write() as cursor:
        policies.create(cursor)
        policies.insert(cursor, "projects/p", 1, b"{}")
    with pytest.raises(IntegrityError), db.write() as cursor:
        policies.insert(cursor, "projects/p", 1, b"{}")
    with db.read() as cursor:
        assert policies.every(cursor) == [PolicyRow("projects/p", 1, b"{}")]
        assert policies.count(cursor) == 1


def test_the_policies_table(store: Store) -> None:
    db = store.db
    policies = PolicyTable(db)
    with db.read() as cursor:
        assert not policies.exists(cursor)
    with db.write() as cursor:
        policies.create(cursor)
        for resource, version in (("b", 1), ("a", 1), ("b", 2)):
            policies.insert(cursor, resource, version, f'{{"v": {version}}}'.encode())
    with db.write() as cursor:
        assert policies.latest_locked(cursor, "b") == PolicyRow("b", 2, b'{"v": 2}')
        assert policies.latest_locked(cursor, "c") is None
    with db.read() as cursor:
        assert policies.exists(cursor)
        assert [(r.resource, r.version) for r in policies.every(cursor)] == [("a", 1), ("b", 1), ("b", 2)]
        assert [r.version for r in policies.history(cursor, "b")] == [1, 2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_that_cannot_be_reached_is_unavailable(backend: str, tmp_path: Path) -> None:
    unreachable = {
        "sqlite": f"sqlite:///{tmp_path}/no/such/folder/ledger.db",
        "postgresql": "postgresql://nobody@127.0.0.1:1/none",
    }[backend]
    store = Store(open_backend(unreachable))
    with pytest.raises(LedgerError) as raised, translated_errors(store.backend), store.db.read() as cursor:
        log.log_end(cursor, store.db)
    assert raised.value.code == Code.UNAVAILABLE
    assert store.backend.redacted_url in raised.value.message
