"""Acceptance 2: every SPEC §2 rule is refused with FAILED_PRECONDITION and changes nothing; every
kind of bad input is INVALID_ARGUMENT naming the field, and writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from ledger import Code, Ledger, LedgerError

from ..support import log_length

OP = "projects/p/operations/op-1"
T0 = "2026-11-21T10:00:00Z"
META = "type.googleapis.com/acme.v1.BuildMetadata"


def _refused(lg: Ledger, code: Code, command: Callable[[], object], *, names: str = "") -> LedgerError:
    """Run a command that must fail with `code`, and check that the log did not change."""
    before = log_length(lg)
    with pytest.raises(LedgerError) as caught:
        command()
    assert caught.value.code == code, caught.value
    assert caught.value.code_name == code.name
    assert names in caught.value.message
    assert log_length(lg) == before
    return caught.value


def _done_operation(lg: Ledger, outcome: str) -> None:
    lg.create(OP, occurred_at=T0)
    if outcome == "succeeded":
        lg.succeed(OP)
    elif outcome == "failed":
        lg.fail(OP, code="INTERNAL")
    elif outcome == "cancelled":
        lg.cancel(OP)
        lg.fail(OP, code="CANCELLED")
    else:
        lg.delete(OP)


AFTER_END: dict[str, Callable[[Ledger], object]] = {
    "progress": lambda lg: lg.progress(OP, status_detail="late"),
    "cancel": lambda lg: lg.cancel(OP),
    "succeed": lambda lg: lg.succeed(OP),
    "fail": lambda lg: lg.fail(OP, code=2),
}


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "cancelled", "deleted"])
@pytest.mark.parametrize("command", sorted(AFTER_END))
def test_nothing_but_delete_follows_done(ledger: Ledger, outcome: str, command: str) -> None:
    _done_operation(ledger, outcome)
    history = ledger.history(OP)
    _refused(ledger, Code.FAILED_PRECONDITION, lambda: AFTER_END[command](ledger), names=OP)
    assert ledger.history(OP) == history


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "cancelled"])
def test_delete_follows_done_once(ledger: Ledger, outcome: str) -> None:
    _done_operation(ledger, outcome)
    ledger.delete(OP)
    _refused(ledger, Code.FAILED_PRECONDITION, lambda: ledger.delete(OP), names="deleted")
    _refused(ledger, Code.NOT_FOUND, lambda: ledger.get(OP))
    assert [e["type"] for e in ledger.history(OP)][-1] == "Deleted"


def test_a_name_is_created_once_even_after_delete(ledger: Ledger) -> None:
    ledger.create(OP, verb="create", occurred_at=T0)
    ledger.delete(OP)
    _refused(ledger, Code.FAILED_PRECONDITION, lambda: ledger.create(OP, verb="create"), names="created once")


def test_second_cancel_records_nothing(ledger: Ledger) -> None:
    ledger.create(OP, occurred_at=T0)
    first = ledger.cancel(OP)
    before = log_length(ledger)
    assert ledger.cancel(OP) == first
    assert log_length(ledger) == before
    assert [e["type"] for e in ledger.history(OP)] == ["Created", "CancelRequested"]


def test_time_never_goes_backwards(ledger: Ledger) -> None:
    ledger.create(OP, occurred_at="2026-11-21T10:00:00.000000001Z")
    error = _refused(
        ledger,
        Code.INVALID_ARGUMENT,
        lambda: ledger.progress(OP, status_detail="x", occurred_at=T0),
        names="occurredAt",
    )
    assert "2026-11-21T10:00:00.000000001Z" in error.message
    ledger.progress(OP, status_detail="same instant is fine", occurred_at="2026-11-21T10:00:00.000000001Z")


@pytest.mark.parametrize("command", [*sorted(AFTER_END), "delete"])
def test_unknown_operation_is_not_found(ledger: Ledger, command: str) -> None:
    commands: dict[str, Callable[[Ledger], object]] = {**AFTER_END, "delete": lambda lg: lg.delete(OP)}
    _refused(ledger, Code.NOT_FOUND, lambda: commands[command](ledger), names=OP)
    _refused(ledger, Code.NOT_FOUND, lambda: ledger.get(OP))
    _refused(ledger, Code.NOT_FOUND, lambda: ledger.history(OP))


def test_repeated_create_is_idempotent_or_already_exists(ledger: Ledger) -> None:
    first = ledger.create(OP, verb="create", target="t", occurred_at=T0)
    before = log_length(ledger)
    assert ledger.create(OP, verb="create", target="t") == first
    ledger.progress(OP, status_detail="moving")
    assert ledger.create(OP, verb="create", target="t")["metadata"]["statusDetail"] == "moving"
    _refused(ledger, Code.ALREADY_EXISTS, lambda: ledger.create(OP, verb="delete"), names=OP)
    assert log_length(ledger) == before + 1

    ledger.create("operations/req", verb="a", request_id="r-1", occurred_at=T0)
    assert ledger.create("operations/req", verb="b", request_id="r-1")["metadata"]["verb"] == "a"
    _refused(ledger, Code.ALREADY_EXISTS, lambda: ledger.create("operations/req", verb="b", request_id="r-2"))


BAD_NAMES = [
    "",
    "operations/",
    "projects//operations/x",
    "/operations/x",
    "operations/x/",
    "operations/a b",
    "operations/a\tb",
    "operations/a?b",
    "operations/a#b",
    "operations/a\x01b",
    "operations/" + "x" * 1014,
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names(ledger: Ledger, name: str) -> None:
    _refused(ledger, Code.INVALID_ARGUMENT, lambda: ledger.create(name), names="name")


# Servers choose their names: Speech v1 a bare number, Access Context Manager several segments after
# `operations/`; the parent is what comes before the last `operations` segment.
SERVER_NAMES = [
    ("5263634183516942311", ""),
    ("operations/accessPolicies/123/create/456", ""),
    ("ops/x", ""),
    ("operations", ""),
    ("projects/p/operations", ""),
    ("projects/p/operations/a/operations/b", "projects/p/operations/a"),
    (
        "projects/_/buckets/b/anywhereCaches/us-central1-a/operations/C894",
        "projects/_/buckets/b/anywhereCaches/us-central1-a",
    ),
]


@pytest.mark.parametrize(("name", "parent"), SERVER_NAMES)
def test_every_server_assigned_name_is_accepted(ledger: Ledger, name: str, parent: str) -> None:
    assert ledger.create(name)["name"] == name
    assert [op["name"] for op in ledger.list(parent)["operations"]] == [name]


def test_longest_name_is_accepted(ledger: Ledger) -> None:
    name = "operations/" + "é" * 506  # 11 + 1012 bytes = 1,023
    assert ledger.create(name)["name"] == name


BAD_INPUTS: list[tuple[str, Callable[[Ledger], object], str]] = [
    ("code 0", lambda lg: lg.fail(OP, code=0), "error.code"),
    ("code OK", lambda lg: lg.fail(OP, code="OK"), "error.code"),
    ("code 17", lambda lg: lg.fail(OP, code=17), "error.code"),
    ("code -1", lambda lg: lg.fail(OP, code=-1), "error.code"),
    ("code name", lambda lg: lg.fail(OP, code="NO_SUCH_CODE"), "error.code"),
    ("code bool", lambda lg: lg.fail(OP, code=True), "error.code"),
    ("message type", lambda lg: lg.fail(OP, code=2, message=5), "error.message"),  # type: ignore[arg-type]
    ("detail no @type", lambda lg: lg.fail(OP, code=2, details=[{"reason": "x"}]), "error.details[0]"),
    ("details not a list", lambda lg: lg.fail(OP, code=2, details='{"@type": "a/b"}'), "error.details"),
    ("details bad JSON", lambda lg: lg.fail(OP, code=2, details="[{"), "error.details"),
    ("percent 101", lambda lg: lg.progress(OP, progress_percent=101), "progressPercent"),
    ("percent -1", lambda lg: lg.progress(OP, progress_percent=-1), "progressPercent"),
    ("percent float", lambda lg: lg.progress(OP, progress_percent=5.5), "progressPercent"),  # type: ignore[arg-type]
    ("percent bool", lambda lg: lg.progress(OP, progress_percent=True), "progressPercent"),
    ("empty progress", lambda lg: lg.progress(OP), "progress"),
    ("response no @type", lambda lg: lg.succeed(OP, response={"id": 1}), "response"),
    ("response not object", lambda lg: lg.succeed(OP, response="[1]"), "response"),
    ("response bad JSON", lambda lg: lg.succeed(OP, response="{"), "response"),
    (
        "Empty with a value",
        lambda lg: lg.succeed(OP, response={"@type": "type.googleapis.com/google.protobuf.Empty", "value": {}}),
        "response",
    ),
    ("metadata no @type", lambda lg: lg.create("operations/new", metadata={"a": 1}), "metadata"),
    ("metadata bad @type", lambda lg: lg.create("operations/new", metadata={"@type": "Build"}), "metadata"),
    ("metadata bad JSON", lambda lg: lg.create("operations/new", metadata="{"), "metadata"),
    (
        "metadata owned key",
        lambda lg: lg.create(
            "operations/new", metadata={"@type": META, "statusMessage": "x"}, lifecycle_fields="per-api"
        ),
        "metadata.statusMessage",
    ),
    ("lifecycle unknown", lambda lg: lg.create("operations/new", lifecycle_fields="all"), "lifecycleFields"),
    ("per-api without metadata", lambda lg: lg.create("operations/new", lifecycle_fields="per-api"), "lifecycleFields"),
    ("verb not text", lambda lg: lg.create("operations/new", verb=3), "verb"),  # type: ignore[arg-type]
    (
        "patch changes @type",
        lambda lg: lg.progress("operations/custom", metadata_patch={"@type": "type.googleapis.com/acme.v1.Other"}),
        "metadataPatch.@type",
    ),
    (
        "patch removes @type",
        lambda lg: lg.progress("operations/custom", metadata_patch={"@type": None}),
        "metadataPatch.@type",
    ),
    ("patch not object", lambda lg: lg.progress("operations/custom", metadata_patch="[1]"), "metadataPatch"),
    ("patch bad JSON", lambda lg: lg.progress("operations/custom", metadata_patch="{"), "metadataPatch"),
    (
        "patch owned key",
        lambda lg: lg.progress("operations/per-api", metadata_patch={"endTime": T0}),
        "metadataPatch.endTime",
    ),
    ("patch on ledger metadata", lambda lg: lg.progress(OP, metadata_patch={"step": "x"}), "metadataPatch"),
    ("time month 13", lambda lg: lg.progress(OP, status_detail="x", occurred_at="2026-13-01T00:00:00Z"), "occurredAt"),
    ("time words", lambda lg: lg.succeed(OP, occurred_at="yesterday"), "occurredAt"),
    ("time no offset", lambda lg: lg.cancel(OP, occurred_at="2026-11-21T10:00:00"), "occurredAt"),
    ("time space", lambda lg: lg.cancel(OP, occurred_at="2026-11-21 10:00:00Z"), "occurredAt"),
    ("time bad offset", lambda lg: lg.cancel(OP, occurred_at="2026-11-21T10:00:00+25:00"), "occurredAt"),
    ("time ten digits", lambda lg: lg.cancel(OP, occurred_at="2026-11-21T10:00:00.1234567891Z"), "occurredAt"),
    ("naive datetime", lambda lg: lg.delete(OP, occurred_at=datetime(2026, 11, 21)), "occurredAt"),
    ("as_of words", lambda lg: lg.get(OP, as_of="then"), "as_of"),
    ("version 0", lambda lg: lg.get(OP, as_of=0), "version"),
    ("NUL in verb", lambda lg: lg.create("operations/new", verb="a\x00b"), "verb"),
    ("NUL in detail", lambda lg: lg.progress(OP, status_detail="\x00"), "statusDetail"),
    ("NUL in message", lambda lg: lg.fail(OP, code=2, message="\x00"), "error.message"),
    (
        "NUL in metadata",
        lambda lg: lg.create("operations/new", metadata={"@type": META, "k": ["\x00"]}),
        "metadata.k[0]",
    ),
    ("NUL in a key", lambda lg: lg.succeed(OP, response={"@type": META, "a\x00": 1}), "response"),
    (
        "integer beyond 64 bits",
        lambda lg: lg.create("operations/new", metadata={"@type": META, "n": 2**70}),
        "metadata",
    ),
    ("lone surrogate", lambda lg: lg.create("operations/new", verb="\udc80"), "verb"),
    ("non-text key", lambda lg: lg.succeed(OP, response={"@type": META, 1: "a"}), "response"),  # type: ignore[dict-item]
    ("surrogate in a name", lambda lg: lg.create("operations/\udc80"), "name"),
    (
        "per-api on OperationMetadata",
        lambda lg: lg.create(
            "operations/new",
            metadata={"@type": "type.googleapis.com/google.cloud.common.OperationMetadata"},
            lifecycle_fields="per-api",
        ),
        "lifecycleFields",
    ),
    ("none without metadata", lambda lg: lg.create("operations/new", lifecycle_fields="none"), "lifecycleFields"),
]


@pytest.mark.parametrize(("label", "command", "field"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_invalid_argument_naming_the_field(
    ledger: Ledger, label: str, command: Callable[[Ledger], Any], field: str
) -> None:
    ledger.create(OP, occurred_at=T0)
    ledger.create("operations/custom", metadata={"@type": META, "step": "a"}, occurred_at=T0)
    ledger.create("operations/per-api", metadata={"@type": META}, lifecycle_fields="per-api", occurred_at=T0)
    error = _refused(ledger, Code.INVALID_ARGUMENT, lambda: command(ledger))
    assert error.message.startswith(field + ":"), error.message
