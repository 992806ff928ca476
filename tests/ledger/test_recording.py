"""A write records its events and projects them in one transaction, from the states they followed."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from ledger import Code, Ledger, LedgerError
from ledger.domain.operation import Operation, Progressed
from ledger.domain.timestamps import now
from ledger.projections.engine import ProjectionEngine
from ledger.projections.views import OperationsView
from ledger.storage.base import Database
from ledger.storage.errors import translated_errors
from ledger.storage.postgres import PostgresBackend

from ..support import backend_url, log_length
from .test_views import dump

NAME = "projects/p/locations/l/operations/recorded"


def test_a_write_projects_its_events_without_reading_the_log_back(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_read_back(*_: Any) -> list[Any]:
        raise AssertionError("a write whose views were current read the log back")

    monkeypatch.setattr(ProjectionEngine, "_read_log", no_read_back)
    ledger.create(NAME, verb="build")
    ledger.progress(NAME, progress_percent=40, status_detail="halfway")
    ledger.succeed(NAME)
    ledger.ingest([b'{"type": "Created", "name": "operations/from-a-file", "occurredAt": "2026-12-01T00:00:00Z"}'])
    assert ledger.get(NAME)["done"] is True
    assert ledger.get(NAME, as_of=2)["metadata"]["statusDetail"] == "halfway"
    assert "done" not in ledger.get("operations/from-a-file")  # proto3 JSON leaves false out
    assert ledger.view_lag() == {"operations": 0}


def test_events_and_their_views_commit_together(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.create(NAME, verb="build")
    before, length = ledger.get(NAME), log_length(ledger)

    def failing(*_: Any) -> None:
        raise OperationalError("disk I/O error")

    with monkeypatch.context() as patch:
        patch.setattr(OperationsView, "apply", failing)
        with pytest.raises(LedgerError) as raised:
            ledger.progress(NAME, status_detail="compiling")
    assert raised.value.code == Code.UNAVAILABLE
    assert log_length(ledger) == length  # the event went with its projection
    assert ledger.get(NAME) == before
    assert [e["type"] for e in ledger.history(NAME)] == ["Created"]
    assert ledger.progress(NAME, status_detail="compiling")["metadata"]["statusDetail"] == "compiling"  # a retry lands


def test_events_recorded_past_the_views_land_before_a_write_s_own(ledger: Ledger) -> None:
    values = {"verb": "import", "lifecycle_fields": "common"}
    ledger.parts.app.save(Operation.create("operations/plain-save", now(), values))  # the views lag behind it
    ledger.create(NAME, verb="build")
    ledger.succeed(NAME)
    assert ledger.view_lag() == {"operations": 0}
    assert ledger.get("operations/plain-save")["metadata"]["verb"] == "import"
    written = dump(ledger)
    ledger.replay()
    assert dump(ledger) == written


def test_sqlite_commits_events_with_an_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path}/ledger.db")
    db = ledger.parts.db
    seen: list[int] = []
    insert = type(db).insert_events

    def watched(self: Database, cursor: Any, rows: list[tuple[str, int, str, bytes]]) -> None:
        seen.append(cursor.execute("PRAGMA synchronous").fetchone()[0])
        insert(self, cursor, rows)

    monkeypatch.setattr(type(db), "insert_events", watched)
    ledger.create(NAME)
    with db.quick() as cursor:
        after = cursor.execute("PRAGMA synchronous").fetchone()[0]
    assert seen == [2]  # FULL while events commit
    assert after == 1  # NORMAL again for the views' own catch-up and rebuilds
    ledger.close()


@pytest.fixture
def postgresql_ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A ledger in a schema of its own, for what only PostgreSQL does."""
    with backend_url("postgresql", tmp_path) as url, Ledger.open(url) as ledger:
        yield ledger


def test_postgresql_subscribers_hear_of_new_events(postgresql_ledger: Ledger) -> None:
    """eventsourcing's PostgreSQL subscriptions listen for a notification with every insert."""
    backend = postgresql_ledger.parts.backend
    assert isinstance(backend, PostgresBackend)
    with backend.connect() as listener:
        listener.autocommit = True
        listener.execute('LISTEN "ledger_events"')
        postgresql_ledger.create(NAME)
        heard = [n.channel for n in listener.notifies(timeout=5, stop_after=1)]
    assert heard == ["ledger_events"]


def test_a_version_taken_meanwhile_is_a_conflict(ledger: Ledger) -> None:
    ledger.create(NAME)
    stale = ledger.parts.recorder.load(NAME)
    ledger.progress(NAME, status_detail="first")
    stale.trigger(Progressed, now(), status_detail="second")
    with pytest.raises(LedgerError) as raised, translated_errors(ledger.parts.backend):
        ledger.parts.recorder.save([stale])
    assert raised.value.code == Code.ABORTED
    assert [e.get("statusDetail") for e in ledger.history(NAME)] == [None, "first"]
    assert ledger.get(NAME)["metadata"]["statusDetail"] == "first"


def test_sqlite_bulk_writes_leave_the_usual_checkpoints_behind(tmp_path: Path) -> None:
    """Ingest and replay checkpoint rarely while they run; reads after them must not pay a long WAL."""
    with Ledger.open(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        db = ledger.parts.db
        seen: list[int] = []

        def during(_: int) -> None:
            with db.quick() as cursor:
                seen.append(cursor.execute("PRAGMA wal_autocheckpoint").fetchone()[0])

        ledger.ingest(
            [b'{"type": "Created", "name": "operations/a", "occurredAt": "2026-12-01T00:00:00Z"}'], progress=during
        )
        with db.quick() as cursor:
            after = cursor.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    assert seen == [16000]
    assert after == 1000


def test_a_write_during_a_rebuild_swap_lands_in_the_swapped_in_views(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write waits for the views' rows while the swap holds them; it must not move the new
    generation past events it never wrote there."""
    with Ledger.open(ledger_url) as rebuilder, Ledger.open(ledger_url) as writer:
        rebuilder.create(NAME, verb="build")
        writer.progress(NAME, status_detail="one")
        point = ProjectionEngine._point_sql_view
        swapping = threading.Event()

        def slow_swap(self: ProjectionEngine, cursor: Any, name: str, generation: int) -> None:
            point(self, cursor, name, generation)
            if generation > 1:
                swapping.set()
                time.sleep(0.5)  # the swap keeps the views' rows locked meanwhile

        monkeypatch.setattr(ProjectionEngine, "_point_sql_view", slow_swap)
        rebuild = threading.Thread(target=rebuilder.replay, args=(["operations"],))
        rebuild.start()
        assert swapping.wait(10)
        time.sleep(0.1)
        writer.progress(NAME, status_detail="two")
        rebuild.join()
        monkeypatch.setattr(ProjectionEngine, "_point_sql_view", point)
        assert writer.view_lag() == {"operations": 0}
        assert writer.get(NAME, as_of=3)["metadata"]["statusDetail"] == "two"
        written = dump(writer)
        writer.replay()
        assert dump(writer) == written


def test_a_write_after_an_event_out_of_sequence_shows_what_a_replay_shows(ledger: Ledger) -> None:
    """A history written past the ledger with a version gap: the views skip from the gap on, and a
    write after it must not land where a replay would not put it."""
    ledger.create(NAME, verb="build")
    gap = Progressed.next_after(ledger.parts.recorder.load(NAME), NAME, now(), {"status_detail": "foreign"})
    stored = ledger.parts.app.mapper.to_stored_event(dataclasses.replace(gap, originator_version=3))
    db = ledger.parts.db
    with db.write() as cursor:
        db.insert_events(cursor, [(NAME, 3, stored.topic, stored.state)])
    ledger.get(NAME)  # the views catch up to the log's end, skipping the event after the gap
    ledger.progress(NAME, status_detail="mine")
    written = dump(ledger)
    ledger.replay()
    assert dump(ledger) == written


def test_a_write_survives_a_postgresql_connection_killed_while_idle(postgresql_ledger: Ledger) -> None:
    ledger = postgresql_ledger
    ledger.create(NAME)
    with ledger.parts.db.quick() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    backend = ledger.parts.backend
    assert isinstance(backend, PostgresBackend)
    with backend.connect() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert ledger.progress(NAME, status_detail="after")["metadata"]["statusDetail"] == "after"
    assert [e["type"] for e in ledger.history(NAME)] == ["Created", "Progressed"]  # recorded once


def test_reading_a_file_that_is_not_a_ledger_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"not a database, just text that is long enough to look like a header" * 20)
    with pytest.raises(LedgerError) as raised:
        Ledger.open(f"sqlite:///{path}", create=False).get(NAME)
    assert raised.value.code == Code.UNAVAILABLE
