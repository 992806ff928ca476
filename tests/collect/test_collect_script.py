"""`ledger collect` against a fake Google API (tests/fake_google.py) that serves a scripted evolution of
corpus-shaped operations over several pages, with a 429 (Retry-After), a 503 and a 401 on the way:
every state the API showed ends up in the ledger, with the API's times, verbatim, once; a collector
killed with SIGKILL and restarted loses and duplicates nothing."""

from __future__ import annotations

import io
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from ledger import Ledger
from ledger.collect import collect
from ledger.collect.reporting import Reporter
from ledger.collect.sources import Auth, parse_source
from ledger.domain.timestamps import parse_timestamp

from ..server.serving import LEDGER
from .fake_google import FakeApi, Script, evolutions, serve

TOKEN = "collector-token-1"


def _times(value: Any) -> set[int]:
    """Every RFC 3339 time anywhere in a document, as UTC nanoseconds."""
    found: set[int] = set()
    if isinstance(value, dict):
        for item in value.values():
            found |= _times(item)
    elif isinstance(value, list):
        for item in value:
            found |= _times(item)
    elif isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T":
        found.add(parse_timestamp(value, "time"))
    return found


def check_every_state_recorded_once(url: str, script: Script) -> None:
    """Each operation's versions render the API's states in the order it showed them, each one there,
    none again after a later one; times come from the API's time fields; audit is clean."""
    with Ledger.open(url) as lg:
        for name in script.names:
            states: list[dict[str, Any]] = []
            for state in script.ops[name][1]:
                if state not in states:
                    states.append(state)
            history = lg.history(name)
            versions = [lg.get(name, as_of=event["version"]) for event in history]
            assert lg.get(name) == script.final(name), name
            # One poll may take more than one event to explain (a status and the end, say): a version
            # between them, at the same time as the next, is not a poll's; every other one is.
            polls = []
            for number, (version, event) in enumerate(zip(versions, history, strict=True)):
                following = history[number + 1] if number + 1 < len(history) else None
                if version in states:
                    polls.append(states.index(version))
                else:
                    assert following and following["occurredAt"] == event["occurredAt"], (
                        f"{name}: version {event['version']} is no poll's: {version}"
                    )
            assert polls == sorted(polls), f"{name}: states recorded out of order or twice: {polls}"
            assert len(set(polls)) == len(polls), f"{name}: a state recorded twice: {polls}"
            assert set(polls) == set(range(len(states))), f"{name}: states missing: {polls} of {len(states)}"
            api_times = set().union(*(_times(s) for s in states))
            if api_times:
                for event in history:
                    assert parse_timestamp(event["occurredAt"], "occurredAt") in api_times, (name, event)
        report = lg.audit()
        assert report["ok"], report["findings"]
        assert report["findings"] == []


def _log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_every_state_is_recorded_through_429_503_and_401(ledger_url: str, tmp_path: Path) -> None:
    script = Script(evolutions(14))  # 4 pages of 4 at the end
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    faults = {3: (429, {"Retry-After": "1"}), 6: (503, {}), 9: (401, {})}
    api = FakeApi(script, faults=faults, tokens={TOKEN})
    stream = io.StringIO()
    with serve(api) as running:
        source = parse_source(
            running.collection, interval=0.05, sweep_every=3, rate_limit=200, auth=Auth("token-file", str(token_file))
        )
        stop = threading.Event()
        outcome: list[bool] = []
        thread = threading.Thread(
            target=lambda: outcome.append(
                collect(ledger_url, [source], stop=stop, reporter=Reporter(stream, progress=False))
            )
        )
        thread.start()
        finished = script.finished.wait(180)
        stop.set()
        thread.join(60)
    assert finished, f"the script stalled at frame {script.frame} of {script.frames}"
    assert outcome == [True]

    requests = api.api_requests
    assert [r.status for r in requests[2:9:3]] == [429, 503, 401]
    assert requests[3].at - requests[2].at >= 1.0, "Retry-After: 1 was not honoured"
    assert requests[9].status == 200 and requests[9].authorization == f"Bearer {TOKEN}"
    assert max(len(r.query) for r in requests if r.path.endswith("/operations")) >= 1  # paging tokens sent
    assert any(r.query.get("filter") == "done = false" for r in requests)  # hot polls between sweeps

    check_every_state_recorded_once(ledger_url, script)

    lines = _log_lines(stream)
    retries = [line for line in lines if line["event"] == "retry"]
    assert [r["error"].split(":")[0] for r in retries] == ["RESOURCE_EXHAUSTED", "UNAVAILABLE"]
    sweeps = [line for line in lines if line["event"] == "sweep"]
    assert sweeps and all({"source", "pages", "operations", "recorded", "durationSeconds"} <= set(s) for s in sweeps)
    assert max(s["pages"] for s in sweeps) >= 3
    assert sum(line.get("recorded", 0) for line in lines if line["event"] in ("sweep", "hot")) == sum(
        len(Ledger.open(ledger_url).history(n)) for n in script.names
    )


def _collector(url: str, source: str, token_file: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [LEDGER, "--db", url, "collect", source, "--interval", "0.05", "--sweep-every", "3"]
    command += ["--rate-limit", "200", "--token-file", str(token_file)]
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=out)


def test_sigkill_mid_way_then_restart_loses_and_duplicates_nothing(ledger_url: str, tmp_path: Path) -> None:
    script = Script(evolutions(21))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    log = tmp_path / "collect.log"
    with serve(FakeApi(script, tokens={TOKEN})) as running:
        first = _collector(ledger_url, running.collection, token_file, log)
        deadline = time.monotonic() + 120
        while script.frame < script.frames // 2 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = script.frame
        assert 0 < killed_at < script.frames - 1, log.read_text()

        second = _collector(ledger_url, running.collection, token_file, log)
        finished = script.finished.wait(180)
        second.send_signal(signal.SIGTERM)  # stops cleanly after the request in flight
        assert second.wait(30) == 0, log.read_text()
    assert finished, f"stalled at frame {script.frame} of {script.frames}: {log.read_text()[-2000:]}"
    check_every_state_recorded_once(ledger_url, script)

    status = subprocess.run([LEDGER, "--db", ledger_url, "collect", "--status"], capture_output=True, check=True).stdout
    (row,) = orjson.loads(status)
    assert row["source"] == running.collection
    assert row["errors"] == 0 and row["lastSuccess"] and row["lastSweep"] and row["sweeps"] >= 2
    running_at_the_end = [n for n in script.names if script.final(n).get("done") is not True]
    assert row["watched"] == len(running_at_the_end) == 3  # the Cloud Storage caches never finish
    assert row["lagSeconds"] is not None and row["lagSeconds"] >= 0
    assert row["eventsRecorded"] == sum(len(Ledger.open(ledger_url).history(n)) for n in script.names)
    stopped = [orjson.loads(line) for line in log.read_text().splitlines() if '"stopped"' in line]
    assert stopped and stopped[-1]["failed"] == 0


def test_hot_polls_fall_back_to_gets_where_the_list_takes_no_filter(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    script = Script(evolutions(7))
    api = FakeApi(script)
    with serve(api) as running:
        original = api._list

        def no_filters(query: dict[str, str]) -> Any:
            if query.get("filter"):
                return 400, {}, b'{"error": {"code": 400, "message": "filter is not supported"}}'
            return original(query)

        api._list = no_filters  # type: ignore[method-assign]
        source = parse_source(running.collection, interval=0.05, sweep_every=5, auth=Auth("anonymous"), rate_limit=200)
        stop = threading.Event()
        thread = threading.Thread(
            target=collect,
            args=(url, [source]),
            kwargs={"stop": stop, "reporter": Reporter(io.StringIO(), progress=False)},
        )
        thread.start()
        finished = script.finished.wait(120)
        stop.set()
        thread.join(30)
    assert finished
    filtered = [r for r in api.api_requests if r.query.get("filter")]
    assert len(filtered) == 1  # learned once, remembered in the checkpoint
    assert any("/operations/" in r.path for r in api.api_requests)  # GETs of running operations
    check_every_state_recorded_once(url, script)
