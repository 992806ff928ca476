"""Acceptance 4: past versions and times; history with version, position, recordedAt and hash;
stored topics that do not move when code moves; the per-operation hash chain."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ledger import Code, Ledger, LedgerError
from ledger.domain.chain import GENESIS, link
from ledger.domain.operation import EVENT_TYPES
from ledger.storage import log

OP = "projects/p/locations/l/operations/op-9"


def test_get_by_version_and_time(ledger: Ledger) -> None:
    created = ledger.create(OP, verb="create", target="t", occurred_at="2026-11-21T10:00:00Z")
    one = ledger.progress(OP, status_detail="one", progress_percent=10, occurred_at="2026-11-21T11:01:00+01:00")
    two = ledger.progress(OP, status_detail="two", occurred_at="2026-11-21T10:02:00.25Z")
    done = ledger.succeed(OP, occurred_at="2026-11-21T10:03:00Z")
    ledger.delete(OP, occurred_at="2026-11-21T10:04:00Z")

    assert [ledger.get(OP, as_of=v) for v in (1, 2, 3, 4)] == [created, one, two, done]
    assert ledger.get(OP, as_of="2026-11-21T10:00:00Z") == created
    assert ledger.get(OP, as_of="2026-11-21T10:01:59.999999999Z") == one
    assert ledger.get(OP, as_of=datetime(2026, 11, 21, 10, 2, 0, 250000, tzinfo=UTC)) == two
    assert ledger.get(OP, as_of="2026-11-21T11:03:30+01:00") == done
    assert one["metadata"]["statusDetail"] == "one"
    assert "endTime" not in two["metadata"]
    assert done["metadata"]["endTime"] == "2026-11-21T10:03:00Z"

    for gone in ("2026-11-21T09:59:59Z", "2026-11-21T10:04:00Z", "2027-01-01T00:00:00Z"):
        with pytest.raises(LedgerError) as e:
            ledger.get(OP, as_of=gone)
        assert e.value.code == Code.NOT_FOUND
    for version, says in ((5, "not found"), (6, "no version 6")):  # 5 is Deleted: gone as of it
        with pytest.raises(LedgerError) as e:
            ledger.get(OP, as_of=version)
        assert e.value.code == Code.NOT_FOUND
        assert says in e.value.message
    with pytest.raises(LedgerError) as e:
        ledger.get(OP)
    assert e.value.code == Code.NOT_FOUND


def test_history_fields_and_positions(ledger: Ledger) -> None:
    ledger.create("operations/other", occurred_at="2026-11-21T09:00:00Z")
    ledger.create(OP, verb="create", api_version="v1", request_id="r1", occurred_at="2026-11-21T10:00:00Z")
    ledger.progress(OP, status_detail="one", progress_percent=40, occurred_at="2026-11-21T10:01:00Z")
    ledger.cancel(OP, occurred_at="2026-11-21T10:02:00Z")
    ledger.fail(OP, code="CANCELLED", message="stop", occurred_at="2026-11-21T10:03:00Z")
    history = ledger.history(OP)

    assert [e["type"] for e in history] == ["Created", "Progressed", "CancelRequested", "Failed"]
    assert [e["version"] for e in history] == [1, 2, 3, 4]
    positions = [e["position"] for e in history]
    assert positions == sorted(positions)
    assert positions[0] > ledger.history("operations/other")[0]["position"]
    assert history[0] == {
        "type": "Created",
        "name": OP,
        "occurredAt": "2026-11-21T10:00:00Z",
        "verb": "create",
        "apiVersion": "v1",
        "lifecycleFields": "common",
        "requestId": "r1",
        "version": 1,
        "position": positions[0],
        "recordedAt": history[0]["recordedAt"],
        "hash": history[0]["hash"],
    }
    assert list(history[1]) == [
        "type",
        "name",
        "occurredAt",
        "statusDetail",
        "progressPercent",
        "version",
        "position",
        "recordedAt",
        "hash",
    ]
    assert history[3]["error"] == {"code": 1, "message": "stop"}
    for event in history:
        recorded = datetime.fromisoformat(str(event["recordedAt"]).replace("Z", "+00:00"))
        assert abs((datetime.now(UTC) - recorded).total_seconds()) < 60  # recorded now, not at occurredAt
        assert str(event["hash"]).startswith("sha256:")
        assert len(str(event["hash"])) == 71


def test_hash_chain_links_every_event(ledger: Ledger) -> None:
    ledger.create(OP, occurred_at="2026-11-21T10:00:00Z")
    ledger.progress(OP, progress_percent=5)
    ledger.succeed(OP)
    previous = GENESIS
    for event in ledger.history(OP):
        body = {k: v for k, v in event.items() if k not in ("position", "hash")}
        assert event["hash"] == link(previous, body)
        previous = str(event["hash"])


PINNED_TOPICS = {
    "Created": "ledger.Created",
    "Progressed": "ledger.Progressed",
    "CancelRequested": "ledger.CancelRequested",
    "Succeeded": "ledger.Succeeded",
    "Failed": "ledger.Failed",
    "Deleted": "ledger.Deleted",
}


def _stored_topics(lg: Ledger, name: str) -> list[str]:
    with lg.parts.db.read() as cursor:
        return [topic for _, _, _, topic, _ in log.histories(cursor, lg.parts.db, [name])]


def test_stored_topics_are_pinned_not_module_paths(ledger: Ledger) -> None:
    assert {t: cls.TOPIC for t, cls in EVENT_TYPES.items()} == PINNED_TOPICS
    ledger.create(OP)
    ledger.progress(OP, status_detail="x")
    ledger.cancel(OP)
    ledger.fail(OP, code=1)
    ledger.delete(OP)
    ledger.create("operations/s")
    ledger.succeed("operations/s")
    assert _stored_topics(ledger, OP) == [
        PINNED_TOPICS[t] for t in ("Created", "Progressed", "CancelRequested", "Failed", "Deleted")
    ]
    assert _stored_topics(ledger, "operations/s") == [PINNED_TOPICS["Created"], PINNED_TOPICS["Succeeded"]]


def test_moving_the_event_classes_orphans_nothing(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.create(OP, occurred_at="2026-11-21T10:00:00Z")
    ledger.progress(OP, status_detail="before the move")
    before = ledger.history(OP)
    originals = {cls: (cls.__module__, cls.__qualname__) for cls in EVENT_TYPES.values()}
    try:
        for cls in EVENT_TYPES.values():  # as if the classes now lived in another module under other names
            cls.__module__, cls.__qualname__ = "ledger.moved.elsewhere", f"Renamed{cls.__qualname__}"
        assert ledger.history(OP) == before
        ledger.succeed(OP)
        assert ledger.get(OP)["done"] is True
        assert _stored_topics(ledger, OP)[-1] == "ledger.Succeeded"
    finally:
        for cls, (module, qualname) in originals.items():
            cls.__module__, cls.__qualname__ = module, qualname


def test_a_ledger_opened_to_read_reads_through_the_views_and_still_writes(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as lg:
        created = lg.create(OP, verb="create")
    with Ledger.open(ledger_url, create=False) as reader:
        assert reader.get(OP) == created
        assert reader.list()["operations"] == [created]
        assert [e["type"] for e in reader.history(OP)] == ["Created"]
        assert not reader.parts.store.application_made  # no eventsourcing Application made for reads
        with pytest.raises(LedgerError, match=r"has no version 2 \(latest: 1\)"):
            reader.get(OP, as_of=2)
        assert reader.succeed(OP)["done"] is True
        assert reader.get(OP)["done"] is True
    with Ledger.open(ledger_url, create=False) as reader:
        assert [e["type"] for e in reader.history(OP)] == ["Created", "Succeeded"]
