"""One ledger collects from another: over REST and over gRPC from a real `ledger serve`, and over
gRPC from a small google.longrunning.Operations server of the tests' own. `list --all` of both are equal after the first sweep, and
changes at the source arrive within two polls (two intervals), found by hot polls alone."""

from __future__ import annotations

import io
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest

from ledger import Ledger
from ledger.collect import collect
from ledger.collect.reporting import Reporter
from ledger.collect.sources import Auth, parse_source
from ledger.server.access import add_token

from ..server.grpcserving import start_grpc
from ..server.serving import LEDGER, start
from . import fake_grpc

PARENT = "projects/acme/locations/us-east1"
COLLECTOR = "serviceAccount:collector@acme.iam.gserviceaccount.com"


def _fill(url: str) -> None:
    """60 operations (two pages of the server's 50): done, failed, cancelled and running ones."""
    with Ledger.open(url) as lg:
        for i in range(60):
            name = f"{PARENT}/operations/op-{i:03d}"
            at = f"2026-11-20T10:{i:02d}:00Z"
            lg.create(name, verb="create", target=f"{PARENT}/clusters/c{i}", occurred_at=at)
            if i % 4 == 0:
                lg.succeed(name, occurred_at=f"2026-11-20T11:{i:02d}:00.250Z")
            elif i % 4 == 1:
                lg.fail(name, code="RESOURCE_EXHAUSTED", message="quota", occurred_at=f"2026-11-20T11:{i:02d}:00Z")
            elif i % 4 == 2:
                lg.progress(name, status_detail="provisioning", occurred_at=f"2026-11-20T10:{i:02d}:30Z")
        lg.create("projects/other/operations/not-collected", verb="create")  # another collection


def _list_all(url: str) -> Any:
    out = subprocess.run([LEDGER, "--db", url, "list", PARENT, "--all"], capture_output=True, check=True).stdout
    return orjson.loads(out)


def _change(url: str) -> None:
    with Ledger.open(url) as lg:
        lg.progress(f"{PARENT}/operations/op-002", status_detail="configuring workers")
        lg.succeed(f"{PARENT}/operations/op-006", response={"@type": "type.googleapis.com/google.protobuf.Empty"})
        lg.fail(f"{PARENT}/operations/op-010", code="CANCELLED", message="cancelled by user")
        lg.cancel(f"{PARENT}/operations/op-003")
        lg.create(f"{PARENT}/operations/op-new", verb="delete", target=f"{PARENT}/clusters/c1")


@contextmanager
def _source(kind: str, url: str, workdir: Path) -> Iterator[tuple[str, Path]]:
    """The source's collection address and the collector's token file."""
    token_file = workdir / "collector.token"
    if kind in ("rest", "ledger-grpc"):
        tokens = workdir / "tokens.json"
        token_file.write_text(add_token(tokens, COLLECTOR))
        with Ledger.open(url) as lg:
            policy = {"bindings": [{"role": "roles/ledger.viewer", "members": [COLLECTOR]}]}
            lg.set_policy("projects/acme", policy, principal="local:test")
        if kind == "rest":
            server = start(url, workdir, "--tokens", str(tokens))
            address = f"{server.base}/v1/{PARENT}/operations"
        else:
            grpc_server = start_grpc(url, workdir, "--tokens", str(tokens))
            server, address = grpc_server.http, f"grpc://{grpc_server.target}/{PARENT}/operations"
        try:
            yield address, token_file
        finally:
            server.stop()
    else:
        token_file.write_text("grpc-token")
        with fake_grpc.serve(url, "grpc-token") as (port, _):
            yield f"grpc://127.0.0.1:{port}/{PARENT}/operations", token_file


@pytest.mark.parametrize("kind", ["rest", "ledger-grpc", "grpc"])
def test_one_ledger_collects_another(kind: str, ledger_url: str, tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path}/source.db"
    _fill(source_url)
    with _source(kind, source_url, tmp_path) as (collection, token_file):
        source = parse_source(
            collection, interval=0.3, sweep_every=1000, rate_limit=50, auth=Auth("token-file", str(token_file))
        )
        stream = io.StringIO()
        reporter = Reporter(stream, progress=False)
        stop = threading.Event()
        thread = threading.Thread(
            target=collect, args=(ledger_url, [source]), kwargs={"stop": stop, "reporter": reporter}
        )
        thread.start()
        try:
            with reporter.ended:
                assert reporter.ended.wait_for(lambda: reporter.polls >= 1, timeout=60)
            assert _list_all(ledger_url) == _list_all(source_url)

            _change(source_url)
            with reporter.ended:
                changed_after = reporter.polls
                assert reporter.ended.wait_for(lambda: reporter.polls >= changed_after + 2, timeout=60)
            collected = _list_all(ledger_url)
        finally:
            stop.set()
            thread.join(30)
    assert collected == _list_all(source_url)
    assert len(collected["operations"]) == 61
    log = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in log].count("sweep") == 1  # the changes came by hot polls
    assert not [line for line in log if line["event"] == "error"]
    with Ledger.open(ledger_url) as lg:
        assert lg.audit()["ok"]
        assert "projects/other/operations/not-collected" not in {
            op["name"] for op in lg.list(page_size=1000)["operations"]
        }


def test_grpc_unavailable_with_retry_after_and_unauthenticated_are_retried(tmp_path: Path) -> None:
    source_url, url = f"sqlite:///{tmp_path}/source.db", f"sqlite:///{tmp_path}/ledger.db"
    _fill(source_url)
    token_file = tmp_path / "token"
    token_file.write_text("grpc-token")
    stream = io.StringIO()
    with fake_grpc.serve(source_url, "grpc-token") as (port, servicer):
        servicer.faults = [(grpc.StatusCode.UNAVAILABLE, "1"), (grpc.StatusCode.UNAUTHENTICATED, "")]
        source = parse_source(f"grpc://127.0.0.1:{port}/{PARENT}", auth=Auth("token-file", str(token_file)))
        started = time.monotonic()
        assert collect(url, [source], once=True, reporter=Reporter(stream, progress=False))
        waited = time.monotonic() - started
    assert waited >= 1.0  # retry-after: 1 was honoured
    assert _list_all(url) == _list_all(source_url)
    retries = [orjson.loads(line) for line in stream.getvalue().splitlines() if '"retry"' in line]
    assert [r["error"].split(":")[0] for r in retries] == ["UNAVAILABLE"]
    assert servicer.calls == ["list ", "list "]  # two pages; the refused token was renewed in between
