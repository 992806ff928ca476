"""Acceptance 3: two processes race to end the same operation, 50 rounds; each round stores exactly
one terminal event and the loser gets ABORTED (retryable) or FAILED_PRECONDITION."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from typing import Any

from ledger import Ledger, LedgerError

ROUNDS = 50
TIMEOUT = 60.0


def _racer(url: str, outcome: str, barrier: Any, results: Any) -> None:
    with Ledger.open(url) as lg:
        for i in range(ROUNDS):
            name = f"operations/race-{i}"
            barrier.wait(TIMEOUT)  # the operation exists; go
            try:
                if outcome == "succeed":
                    lg.succeed(name)
                else:
                    lg.fail(name, code="INTERNAL", message="worker crashed")
                results.put((i, outcome, "OK", ""))
            except LedgerError as e:
                results.put((i, outcome, e.code_name, e.message))
            barrier.wait(TIMEOUT)  # both have answered


def test_two_processes_racing_to_end_an_operation(ledger_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3), context.Queue()
    with Ledger.open(ledger_url) as lg:
        racers = [context.Process(target=_racer, args=(ledger_url, o, barrier, results)) for o in ("succeed", "fail")]
        for racer in racers:
            racer.start()
        try:
            for i in range(ROUNDS):
                lg.create(f"operations/race-{i}")
                barrier.wait(TIMEOUT)
                barrier.wait(TIMEOUT)
        finally:
            for racer in racers:
                racer.join(TIMEOUT)
        assert all(r.exitcode == 0 for r in racers)

        answers: dict[int, list[tuple[str, str, str]]] = {}
        for _ in range(2 * ROUNDS):
            i, outcome, code, message = results.get(timeout=TIMEOUT)
            answers.setdefault(i, []).append((outcome, code, message))
        losses: Counter[str] = Counter()
        for i in range(ROUNDS):
            name = f"operations/race-{i}"
            winners = [a for a in answers[i] if a[1] == "OK"]
            losers = [a for a in answers[i] if a[1] != "OK"]
            assert len(winners) == 1 and len(losers) == 1, answers[i]
            loser_code, loser_message = losers[0][1], losers[0][2]
            assert loser_code in ("ABORTED", "FAILED_PRECONDITION"), losers[0]
            assert loser_message, "the loser is told why"
            losses[loser_code] += 1

            terminal = [e["type"] for e in lg.history(name) if e["type"] in ("Succeeded", "Failed")]
            expected = "Succeeded" if winners[0][0] == "succeed" else "Failed"
            assert terminal == [expected], (name, terminal)
            assert lg.get(name)["done"] is True
        assert sum(losses.values()) == ROUNDS


def _opener(url: str, index: int, barrier: Any, results: Any) -> None:
    barrier.wait(TIMEOUT)
    try:
        with Ledger.open(url) as lg:
            lg.create(f"operations/opened-by-{index}")
        results.put("OK")
    except Exception as e:
        results.put(repr(e))


def test_processes_opening_a_new_store_at_once(ledger_url: str) -> None:
    """Whoever opens a fresh store first makes its tables; the others must not trip over that."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    openers = [context.Process(target=_opener, args=(ledger_url, i, barrier, results)) for i in range(4)]
    for opener in openers:
        opener.start()
    outcomes = [results.get(timeout=TIMEOUT) for _ in openers]
    for opener in openers:
        opener.join(TIMEOUT)
    assert outcomes == ["OK"] * 4
    with Ledger.open(ledger_url) as lg:
        assert len(lg.list()["operations"]) == 4
