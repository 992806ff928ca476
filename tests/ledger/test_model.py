"""Acceptance 5: random command sequences, valid and invalid, against the ledger and a small
reference model written independently of it; rendered JSON and histories always agree."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger import Ledger, LedgerError

OPERATION_METADATA = "type.googleapis.com/google.cloud.common.OperationMetadata"
EMPTY = {"@type": "type.googleapis.com/google.protobuf.Empty"}
CODE_NAMES = {1: "CANCELLED", 2: "UNKNOWN", 4: "DEADLINE_EXCEEDED", 8: "RESOURCE_EXHAUSTED", 13: "INTERNAL"}


def stamp(second: int) -> str:
    minutes, seconds = divmod(second, 60)
    return f"2026-11-21T10:{minutes:02d}:{seconds:02d}Z"


@dataclass
class ModelOperation:
    """What a user expects of one operation, kept with dicts and lists only."""

    created_at: int
    verb: str | None
    events: list[str] = field(default_factory=lambda: ["Created"])
    last_at: int = 0
    detail: str | None = None
    cancel_requested: bool = False
    ended_at: int | None = None
    result: tuple[str, dict[str, Any]] | None = None
    deleted: bool = False
    snapshots: list[dict[str, Any] | None] = field(default_factory=list)

    def render(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {"@type": OPERATION_METADATA, "createTime": stamp(self.created_at)}
        if self.ended_at is not None:
            metadata["endTime"] = stamp(self.ended_at)
        if self.verb:
            metadata["verb"] = self.verb
        if self.detail:
            metadata["statusDetail"] = self.detail
        if self.cancel_requested:
            metadata["cancelRequested"] = True
        out: dict[str, Any] = {"name": "", "metadata": metadata}
        if self.result:
            out["done"] = True
            out[self.result[0]] = self.result[1]
        return out


names = st.sampled_from(["operations/a", "projects/p/operations/b", "projects/p/locations/l/operations/c"])
bad_names = st.sampled_from(["", "operations/", "ops/a?b", "ops/#a", "operations/a b", "projects//operations/x"])
steps = st.integers(min_value=-2, max_value=3)  # seconds after the previous event; negative goes back in time


class LedgerMachine(RuleBasedStateMachine):
    url: str

    def __init__(self) -> None:
        super().__init__()
        self.lg = Ledger.open(self.url)
        self.prefix = f"run{uuid.uuid4().hex[:8]}/"  # one shared database, a fresh namespace per run
        self.model: dict[str, ModelOperation] = {}
        self.clock = 0

    def teardown(self) -> None:
        self.lg.close()

    def full(self, name: str) -> str:
        return self.prefix + name if name.startswith("projects") else f"projects/{self.prefix}{name}"

    @initialize()
    def start(self) -> None:
        self.clock = 0

    def _expect(self, call: Any, error: str | None) -> dict[str, Any] | None:
        try:
            result = call()
        except LedgerError as e:
            assert e.code_name == error, f"expected {error}, got {e}"
            return None
        assert error is None, f"expected {error}, got success"
        return result  # type: ignore[no-any-return]

    def _when(self, name: str, step: int) -> tuple[int, str | None]:
        """The event time and the error a time step that goes backwards must give."""
        op = self.model.get(name)
        at = max(self.clock + step, 0)
        if op is not None and at < op.last_at:
            return at, "INVALID_ARGUMENT"
        return at, None

    def _rule_error(self, name: str, *, deleting: bool = False) -> str | None:
        op = self.model.get(name)
        if op is None:
            return "NOT_FOUND"
        if op.deleted or (op.result is not None and not deleting):
            return "FAILED_PRECONDITION"
        return None

    def _recorded(self, name: str, kind: str, at: int) -> ModelOperation:
        op = self.model[name]
        op.events.append(kind)
        op.last_at = at
        self.clock = max(self.clock, at)
        op.snapshots.append(None if op.deleted else op.render())
        return op

    @rule(name=names, verb=st.sampled_from([None, "create", "delete"]), step=steps)
    def create(self, name: str, verb: str | None, step: int) -> None:
        at = max(self.clock + step, 0)
        existing = self.model.get(name)
        if existing is None:
            error = None
        elif existing.deleted:
            error = "FAILED_PRECONDITION"
        else:
            error = None if existing.verb == verb else "ALREADY_EXISTS"
        result = self._expect(lambda: self.lg.create(self.full(name), verb=verb, occurred_at=stamp(at)), error)
        if result is not None and existing is None:
            op = ModelOperation(created_at=at, verb=verb, last_at=at)
            self.model[name] = op
            self.clock = max(self.clock, at)
            op.snapshots.append(op.render())

    @rule(name=names, detail=st.sampled_from(["", "copying", "50% done"]), step=steps)
    def progress(self, name: str, detail: str, step: int) -> None:
        at, time_error = self._when(name, step)
        error = self._rule_error(name) or time_error
        call = lambda: self.lg.progress(self.full(name), status_detail=detail, occurred_at=stamp(at))  # noqa: E731
        if self._expect(call, error) is not None:
            self.model[name].detail = detail or None
            self._recorded(name, "Progressed", at)

    @rule(name=names, step=steps)
    def cancel(self, name: str, step: int) -> None:
        at, time_error = self._when(name, step)
        error = self._rule_error(name)
        op = self.model.get(name)
        repeat = error is None and op is not None and op.cancel_requested
        error = error or (None if repeat else time_error)
        if (
            self._expect(lambda: self.lg.cancel(self.full(name), occurred_at=stamp(at)), error) is not None
            and not repeat
        ):
            self.model[name].cancel_requested = True
            self._recorded(name, "CancelRequested", at)

    @rule(name=names, step=steps, with_response=st.booleans())
    def succeed(self, name: str, step: int, with_response: bool) -> None:
        at, time_error = self._when(name, step)
        error = self._rule_error(name) or time_error
        response = {"@type": "type.googleapis.com/acme.Result", "id": name} if with_response else None
        if self._expect(lambda: self.lg.succeed(self.full(name), response=response, occurred_at=stamp(at)), error):
            op = self.model[name]
            op.result, op.ended_at = ("response", response or EMPTY), at
            self._recorded(name, "Succeeded", at)

    @rule(name=names, code=st.sampled_from([0, 1, 2, 4, 8, 13, 17]), by_name=st.booleans(), step=steps)
    def fail(self, name: str, code: int, by_name: bool, step: int) -> None:
        at, time_error = self._when(name, step)
        bad_code = code in (0, 17)
        error = "INVALID_ARGUMENT" if bad_code else self._rule_error(name) or time_error
        given: int | str = CODE_NAMES[code] if by_name and code in CODE_NAMES else code
        call = lambda: self.lg.fail(self.full(name), code=given, message="m", occurred_at=stamp(at))  # noqa: E731
        if self._expect(call, error):
            op = self.model[name]
            op.result, op.ended_at = ("error", {"code": code, "message": "m"}), at
            self._recorded(name, "Failed", at)

    @rule(name=names, step=steps)
    def delete(self, name: str, step: int) -> None:
        at, time_error = self._when(name, step)
        error = self._rule_error(name, deleting=True) or time_error
        try:
            self.lg.delete(self.full(name), occurred_at=stamp(at))
        except LedgerError as e:
            assert e.code_name == error, e
            return
        assert error is None
        self.model[name].deleted = True
        self._recorded(name, "Deleted", at)

    @rule(name=bad_names)
    def bad_name(self, name: str) -> None:
        with pytest.raises(LedgerError) as e:
            self.lg.create(name)
        assert e.value.code_name == "INVALID_ARGUMENT"

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def get_past_version(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        op = self.model[name]
        version = data.draw(st.integers(min_value=1, max_value=len(op.events)))
        expected = op.snapshots[version - 1]
        if expected is None:
            with pytest.raises(LedgerError):
                self.lg.get(self.full(name), as_of=version)
        else:
            assert self.lg.get(self.full(name), as_of=version) == {**expected, "name": self.full(name)}

    @invariant()
    def agrees_with_model(self) -> None:
        for name, op in self.model.items():
            full = self.full(name)
            if op.deleted:
                with pytest.raises(LedgerError):
                    self.lg.get(full)
            else:
                assert self.lg.get(full) == {**op.render(), "name": full}
            history = self.lg.history(full)
            assert [e["type"] for e in history] == op.events
            assert [e["version"] for e in history] == list(range(1, len(op.events) + 1))


def test_ledger_agrees_with_reference_model(ledger_url: str) -> None:
    machine = type("LedgerMachineHere", (LedgerMachine,), {"url": ledger_url})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=30, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
        ),
    )
