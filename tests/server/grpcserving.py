"""A real `ledger serve --grpc-port` process for the gRPC tests, and channels to it as clients make them."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ledger import Ledger
from ledger.server.access import add_token

from ..support import PG_DSN, drop_schema, with_schema
from .serving import LEDGER, Server

ADMIN, VIEWER, PRODUCER, STRANGER = (
    "user:admin@example.com",
    "user:viewer@example.com",
    "serviceAccount:producer@example.com",
    "user:stranger@example.com",
)


@dataclass
class GrpcServer:
    http: Server
    target: str  # 127.0.0.1:PORT
    root_certificate: bytes | None = None  # set when the server runs TLS

    @property
    def url(self) -> str:
        return self.http.url

    @property
    def tokens(self) -> dict[str, str]:
        return self.http.tokens

    def channel(self, principal: str | None = None) -> grpc.Channel:
        """A channel sending `principal`'s token as Google's clients do (call credentials, which gRPC
        sends only over a secure or loopback-local connection); None: no token."""
        if self.root_certificate is not None:
            transport = grpc.ssl_channel_credentials(root_certificates=self.root_certificate)
        else:
            transport = grpc.local_channel_credentials()
        if principal is not None:
            token = grpc.access_token_call_credentials(self.tokens[principal])
            transport = grpc.composite_channel_credentials(transport, token)
        return grpc.secure_channel(self.target, transport)

    def stop(self) -> None:
        self.http.stop()


def free_ports(count: int) -> list[int]:
    """`count` free loopback ports, all different: each socket stays bound until all are chosen."""
    with ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def start_grpc(url: str, workdir: Path, *extra: str, root_certificate: bytes | None = None) -> GrpcServer:
    """`ledger serve` with HTTP and gRPC on two free ports; returns once the health service says SERVING.
    With `root_certificate` the server runs TLS (give --tls-cert and --tls-key in `extra`)."""
    http_port, grpc_port = free_ports(2)
    log = workdir / f"serve-{http_port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [LEDGER, "--db", url, "serve", "--port", str(http_port), "--grpc-port", str(grpc_port), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    scheme = "https" if root_certificate else "http"
    http = Server(url, f"{scheme}://127.0.0.1:{http_port}", process=process, log=log)
    server = GrpcServer(http, f"127.0.0.1:{grpc_port}", root_certificate)
    try:
        wait_for_health(server, health_pb2.HealthCheckResponse.SERVING)
    except RuntimeError:
        server.stop()
        raise
    return server


def wait_for_health(server: GrpcServer, wanted: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    process = server.http.process
    with server.channel() as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status == wanted:
                    return
            except grpc.RpcError:
                pass
            log = server.http.log.read_text() if server.http.log else ""
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"ledger serve exited with {process.returncode}: {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gRPC health did not become {wanted} in {seconds} s: {log}")
            time.sleep(0.1)


def policy(*bindings: tuple[str, str]) -> dict[str, Any]:
    return {"bindings": [{"role": role, "members": [member]} for role, member in bindings]}


def serve_with_policies(request: pytest.FixtureRequest, factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    """For a module-scoped fixture parametrized by backend: a server whose ADMIN administers
    everything, and under `tenants/` VIEWER reads and PRODUCER writes events; STRANGER holds nothing."""
    workdir = factory.mktemp("grpc")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite:///{workdir}/ledger.db"
    elif not PG_DSN:
        pytest.skip("LEDGER_TEST_PG_DSN is not set: PostgreSQL tests need a live database")
    else:
        url = with_schema(PG_DSN, schema)
    tokens_file = workdir / "tokens.json"
    tokens = {p: add_token(tokens_file, p) for p in (ADMIN, VIEWER, PRODUCER, STRANGER)}
    with Ledger.open(url) as lg:
        lg.set_policy("", policy(("roles/ledger.admin", ADMIN)), principal="local:test")
        tenants = policy(("roles/ledger.viewer", VIEWER), ("roles/ledger.producer", PRODUCER))
        lg.set_policy("tenants", tenants, principal="local:test")
    server = start_grpc(url, workdir, "--tokens", str(tokens_file), "--max-wait", "20")
    server.http.tokens = tokens
    yield server
    server.stop()
    if request.param == "postgresql":
        drop_schema(PG_DSN, schema)
