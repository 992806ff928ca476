"""The domain without a database: the aggregate's rules, commands' checks, the hash chain, folds,
the codec of stored events, the IAM model and the views' pure row arithmetic."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.utils import resolve_topic

from ledger import Code, LedgerError
from ledger.domain import commands
from ledger.domain.chain import GENESIS
from ledger.domain.iam import covering, parse_policy
from ledger.domain.operation import (
    EVENTS_BY_TOPIC,
    CancelRequested,
    Deleted,
    Failed,
    Operation,
    OperationEvent,
    Progressed,
    Succeeded,
    broken_rule,
    fold,
    repeats_cancel,
    repeats_create,
)
from ledger.domain.rendering import render_operation
from ledger.domain.timestamps import Timestamp, parse_timestamp
from ledger.projections.feeds import _interval as interval
from ledger.projections.views import project
from ledger.storage.codec import EventMapper, OrjsonTranscoder, decode_stored

NAME = "operations/build-1"
T0 = parse_timestamp("2026-01-01T00:00:00Z", "t")
T1 = parse_timestamp("2026-01-01T00:01:00Z", "t")
T2 = parse_timestamp("2026-01-01T00:02:00Z", "t")


def _created(**given: object) -> Operation:
    values = commands.created_values(
        verb=str(given.get("verb", "build")),
        target=None,
        api_version=None,
        metadata=None,
        lifecycle_fields=None,
        request_id=str(given["request_id"]) if "request_id" in given else None,
    )
    return Operation.create(NAME, T0, values)


def test_a_lifecycle_folds_and_renders_without_a_database() -> None:
    op = _created()
    op.trigger(Progressed, T1, status_detail="compiling")
    op.trigger(Succeeded, T2, **commands.succeeded_values(None))
    rendered = render_operation(op)
    assert rendered["done"] is True
    assert rendered["metadata"]["statusDetail"] == "compiling"
    assert rendered["metadata"]["createTime"] == "2026-01-01T00:00:00Z"
    assert rendered["metadata"]["endTime"] == "2026-01-01T00:02:00Z"
    assert [e.originator_version for e in op.pending] == [1, 2, 3]


def test_each_event_hashes_its_body_chained_to_the_one_before() -> None:
    op = _created()
    op.trigger(CancelRequested, T1)
    first, second = op.pending
    assert first.hash == first.expected_hash(GENESIS)
    assert second.hash == second.expected_hash(first.hash)
    assert second.hash != second.expected_hash(GENESIS)


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        ([(Succeeded, T1, {"response": None}), (Progressed, T2, {"status_detail": "late"})], Code.FAILED_PRECONDITION),
        ([(CancelRequested, T1, {}), (CancelRequested, T2, {})], Code.FAILED_PRECONDITION),
        ([(Deleted, T1, {}), (Deleted, T2, {})], Code.FAILED_PRECONDITION),
        ([(Progressed, T2, {"status_detail": "a"}), (Progressed, T1, {"status_detail": "b"})], Code.INVALID_ARGUMENT),
    ],
    ids=["change-after-done", "cancel-twice", "after-deleted", "time-backwards"],
)
def test_rules_refuse_the_event_that_breaks_them(
    steps: list[tuple[type[OperationEvent], Timestamp, dict[str, Any]]], code: Code
) -> None:
    op = _created()
    *allowed, refused = steps
    for event_class, when, values in allowed:
        op.trigger(event_class, when, **(commands.succeeded_values(None) if event_class is Succeeded else values))
    event_class, when, values = refused
    before = len(op.pending)
    with pytest.raises(LedgerError) as raised:
        op.trigger(event_class, when, **values)
    assert raised.value.code == code
    assert len(op.pending) == before  # nothing was applied


def test_a_failure_code_outside_1_to_16_breaks_a_rule() -> None:
    op = _created()
    event = Failed.next_after(op, NAME, T1, {"error": {"code": 99, "message": "x"}})
    broken = broken_rule(op, event)
    assert broken is not None and broken[0] == Code.INVALID_ARGUMENT


def test_fold_marks_a_history_that_skips_a_version() -> None:
    op = _created()
    op.trigger(Progressed, T1, status_detail="a")
    op.trigger(Progressed, T2, status_detail="b")
    created, first, second = op.pending
    assert fold([created, first, second]) is not None
    whole = fold([created, first, second])
    assert whole is not None and whole.in_sequence and whole.version == 3
    skipped = fold([created, second])
    assert skipped is not None and not skipped.in_sequence
    assert fold([]) is None


def test_repeated_creates_and_cancels() -> None:
    op = _created()
    same = commands.created_values(
        verb="build", target=None, api_version=None, metadata=None, lifecycle_fields=None, request_id=None
    )
    assert repeats_create(op, same)
    other = {**same, "verb": "deploy"}
    with pytest.raises(LedgerError) as raised:
        repeats_create(op, other)
    assert raised.value.code == Code.ALREADY_EXISTS
    requested = _created(request_id="r-1")
    assert repeats_create(requested, {**other, "request_id": "r-1"})  # the same request, whatever it says
    assert not repeats_cancel(op)
    op.trigger(CancelRequested, T1)
    assert repeats_cancel(op)
    op.trigger(Deleted, T2)
    with pytest.raises(LedgerError) as raised:
        repeats_create(op, same)
    assert raised.value.code == Code.FAILED_PRECONDITION


def test_commands_name_the_field_they_refuse() -> None:
    with pytest.raises(LedgerError) as raised:
        commands.failed_values("NOT_A_CODE", "", ())
    assert raised.value.code == Code.INVALID_ARGUMENT
    assert "code" in raised.value.message


def test_the_codec_round_trips_an_event_under_its_pinned_topic() -> None:
    op = _created()
    op.trigger(Progressed, T1, status_detail="compiling")
    mapper = EventMapper(transcoder=OrjsonTranscoder())
    for event in op.pending:
        stored = mapper.to_stored_event(event)
        assert stored.topic == event.TOPIC and EVENTS_BY_TOPIC[stored.topic] is type(event)
        assert stored.topic.startswith("ledger.") and ":" not in stored.topic  # no module path
        back = decode_stored(
            str(stored.originator_id), stored.originator_version, stored.topic, stored.state, mapper.transcoder
        )
        assert back.body() == event.body() and back.hash == event.hash
        as_text = stored.state.decode()  # as SQLite's shell leaves a payload edited by hand
        assert (
            decode_stored(NAME, stored.originator_version, stored.topic, as_text, mapper.transcoder).hash == event.hash
        )


def test_environment_topics_of_earlier_layouts_still_resolve() -> None:
    assert resolve_topic("ledger.store:EventMapper") is EventMapper
    assert resolve_topic("ledger.store:OrjsonTranscoder") is OrjsonTranscoder
    assert resolve_topic("ledger.storage.codec:EventMapper") is EventMapper


def test_undecodable_payloads_are_data_loss_errors() -> None:
    with pytest.raises(ValueError, match="cannot be decoded"):
        decode_stored(NAME, 1, "ledger.Created", b"{not json", OrjsonTranscoder())
    with pytest.raises(ValueError, match="cannot be decoded"):
        decode_stored(NAME, 1, "ledger.Unknown", b"{}", OrjsonTranscoder())


def test_iam_policies_cover_prefixes_and_merge_bindings() -> None:
    assert covering("projects/p/operations/x") == [
        "",
        "projects",
        "projects/p",
        "projects/p/operations",
        "projects/p/operations/x",
    ]
    policy = parse_policy(
        {
            "bindings": [
                {"role": "roles/ledger.viewer", "members": ["user:a@x"]},
                {"role": "roles/ledger.viewer", "members": ["user:b@x", "user:a@x"]},
            ]
        }
    )
    assert policy == {"version": 1, "bindings": [{"role": "roles/ledger.viewer", "members": ["user:a@x", "user:b@x"]}]}
    with pytest.raises(LedgerError):
        parse_policy({"bindings": [{"role": "roles/owner", "members": ["user:a@x"]}]})


def test_intervals_close_at_the_next_event() -> None:
    op = _created()
    op.trigger(Progressed, T1, status_detail="a")
    op.trigger(Succeeded, T2, **commands.succeeded_values(None))
    state, changes = None, []
    for position, event in enumerate(op.pending, start=10):
        landed = project(state, event, position)
        assert landed is not None
        state, change = landed
        changes.append(change)

    def spans(to: int) -> list[tuple[int, int | None]]:
        rows = [row for version in (1, 2, 3) for row in interval(changes, version, to)]
        return [(row["validFromPosition"], row["validToPosition"]) for row in rows]

    assert spans(12) == [(10, 11), (11, 12), (12, None)]
    assert spans(11) == [(10, 11), (11, None), (12, None)]  # an end after the range is left open
