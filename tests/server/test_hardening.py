"""`ledger serve` against hostile and careless clients: idle and trickling connections, a poisoned
line in a batch of events, a busy port, a missing tokens file."""

from __future__ import annotations

import contextlib
import resource
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from ledger import Ledger
from ledger.server.access import add_token

from ..support import backend_url
from .serving import LEDGER, Server, free_port, start

ADMIN = "user:admin@example.com"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with small limits: 150 connections, 2 s to send a request."""
    workdir = tmp_path_factory.mktemp("hardened")
    with backend_url(request.param, workdir) as url:
        tokens_file = workdir / "tokens.json"
        token = add_token(tokens_file, ADMIN)
        with Ledger.open(url) as lg:
            lg.set_policy("", {"bindings": [{"role": "roles/ledger.admin", "members": [ADMIN]}]}, principal="local:t")
        extra = ("--tokens", str(tokens_file), "--max-connections", "150", "--request-timeout", "2")
        served = start(url, workdir, *extra)
        served.tokens = {ADMIN: token}
        yield served
        served.stop()


def _connect(server: Server) -> socket.socket:
    host, port = server.base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def test_idle_and_trickling_connections_leave_a_legitimate_client_answered_within_a_second(server: Server) -> None:
    assert server.log is not None
    log_before = server.log.stat().st_size
    idle = [_connect(server) for _ in range(250)]  # more than the cap: the oldest are closed
    trickling = [_connect(server) for _ in range(50)]
    for sock in trickling:
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    slowest = 0.0
    with server.client(ADMIN) as http:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            for sock in trickling:
                with contextlib.suppress(OSError):
                    sock.send(b"[")  # a byte at a time, never the whole body
            started = time.monotonic()
            answer = http.get("/v1/operations/missing", timeout=5)
            slowest = max(slowest, time.monotonic() - started)
            assert answer.status_code == 404
            time.sleep(0.2)
    closed = sum(1 for sock in idle + trickling if _closed_by_server(sock))
    for sock in idle + trickling:
        sock.close()
    assert slowest < 1.0
    assert closed == len(idle) + len(trickling)  # shed over the cap, or past the 2 s deadline
    assert server.log.stat().st_size - log_before < 20_000  # no traceback per connection


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(3)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_a_poisoned_line_in_posted_events_leaves_every_other_line_landed(server: Server) -> None:
    events: list[dict[str, object]] = [
        {"type": "Created", "name": f"poisoned/operations/p{i}", "occurredAt": "2026-01-01T00:00:00Z"} for i in range(9)
    ]
    events[2]["occurredAt"] = "0001-01-01T00:00:00+01:00"
    events[5]["verb"] = "v" * 3000
    events[7]["metadata"] = orjson.Fragment(b'{"@type": "type.googleapis.com/x.M", "n": 1e30}')
    with server.client(ADMIN) as http:
        answer = http.post("/v1/events", content=orjson.dumps(events), headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["RECORDED"] * 2 + ["REJECTED"] + ["RECORDED"] * 2 + ["REJECTED"] + [
        "RECORDED",
        "REJECTED",
        "RECORDED",
    ]
    assert all(r["error"]["code"] == 3 for r in results if r["status"] == "REJECTED")


def test_a_busy_port_is_exit_1_with_its_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [LEDGER, "--db", f"sqlite:///{tmp_path}/l.db", "serve", "--port", str(port), "--allow-anonymous"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert b"UNAVAILABLE: cannot listen on 127.0.0.1" in done.stderr and b"Traceback" not in done.stderr


def test_a_missing_tokens_file_is_a_usage_error_not_a_server_that_refuses_everyone(tmp_path: Path) -> None:
    done = subprocess.run(
        [LEDGER, "--db", f"sqlite:///{tmp_path}/l.db", "serve", "--port", str(free_port()), "--tokens", "nope.json"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and b"does not exist" in done.stderr


def test_a_request_head_past_16_kib_is_refused_without_a_traceback(server: Server) -> None:
    assert server.log is not None
    with _connect(server) as sock:
        sock.sendall(b"GET /v1/operations/missing HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 20_000)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Traceback" not in server.log.read_bytes()
    assert httpx.get(f"{server.base}/openapi.json").status_code == 200


def test_connections_past_the_file_limit_are_shed_without_a_flood_of_tracebacks(tmp_path: Path) -> None:
    """600 idle connections against a server allowed 256 files: it keeps under the limit (asyncio
    logs a traceback for every accept() refused for want of descriptors, megabytes a second), and a
    client that asks is answered at once."""
    port, log = free_port(), tmp_path / "serve.log"

    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    with log.open("wb") as out:
        process = subprocess.Popen(
            [LEDGER, "--db", f"sqlite:///{tmp_path}/l.db", "serve", "--port", str(port), "--allow-anonymous"],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=few_files,  # noqa: PLW1509 - only setrlimit, before exec
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.1)
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(600)]
        slowest = 0.0
        for _ in range(4):
            started = time.monotonic()
            assert httpx.get(f"{base}/openapi.json", timeout=5).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.5)
        for sock in idle:
            sock.close()
    finally:
        process.terminate()
        process.wait(10)
    assert slowest < 1.0
    assert b"Traceback" not in log.read_bytes() and log.stat().st_size < 20_000
