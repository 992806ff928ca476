"""`ledger serve` around the gRPC service: TLS on both ports with a certificate the test makes, and
the health service following the database as it goes away and comes back."""

from __future__ import annotations

import selectors
import socket
import ssl
import subprocess
import threading
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
import httpx
import pytest
from google.api_core import exceptions, operations_v1
from grpc_health.v1 import health_pb2

from ledger import Ledger

from ..support import PG_DSN, drop_schema, with_schema
from ..tls import self_signed_certificate
from .grpcserving import free_ports, start_grpc, wait_for_health
from .serving import LEDGER


def test_tls_on_both_ports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    with Ledger.open(url) as lg:
        lg.create("projects/p/operations/secret")
        lg.set_policy("", {"bindings": [{"role": "roles/ledger.viewer", "members": ["allUsers"]}]}, principal="local:t")
    cert, key = self_signed_certificate(tmp_path)
    tls = ("--allow-anonymous", "--tls-cert", str(cert), "--tls-key", str(key))
    server = start_grpc(url, tmp_path, *tls, root_certificate=cert.read_bytes())
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        answer = httpx.get(f"{server.http.base}/v1/projects/p/operations/secret", verify=trusted)
        assert answer.status_code == 200 and answer.json()["name"] == "projects/p/operations/secret"
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate is refused
            httpx.get(f"{server.http.base}/v1/projects/p/operations/secret")
        with server.channel() as channel:
            assert operations_v1.OperationsClient(channel).get_operation("projects/p/operations/secret").name
        plaintext = grpc.insecure_channel(server.target)  # TLS only: a plaintext client gets nowhere
        with plaintext, pytest.raises(exceptions.ServiceUnavailable):
            operations_v1.OperationsClient(plaintext).get_operation(
                "projects/p/operations/secret", retry=None, timeout=5
            )
    finally:
        server.stop()


class Proxy:
    """A TCP relay to PostgreSQL that the test can cut and restore: the database as seen from the server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_ports(1)[0]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        listener = socket.create_server(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._relay, args=(listener,), daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _relay(self, listener: socket.socket) -> None:
        pairs: dict[socket.socket, socket.socket] = {}
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.1):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is not listener and sock not in pairs:
                        continue  # closed a moment ago with its partner, in this same round
                    if sock is listener:
                        client, _ = listener.accept()
                        upstream = socket.create_connection(self.target)
                        pairs[client], pairs[upstream] = upstream, client
                        selector.register(client, selectors.EVENT_READ)
                        selector.register(upstream, selectors.EVENT_READ)
                        continue
                    data = b""
                    try:
                        data = sock.recv(65536)
                        if data:
                            pairs[sock].sendall(data)
                            continue
                    except OSError:
                        pass
                    for end in (sock, pairs.pop(sock)):  # one side closed: close both
                        pairs.pop(end, None)
                        selector.unregister(end)
                        end.close()
            for sock in [listener, *pairs]:
                sock.close()


@pytest.mark.skipif(not PG_DSN, reason="LEDGER_TEST_PG_DSN is not set: PostgreSQL tests need a live database")
def test_health_is_not_serving_while_the_database_is_unreachable(tmp_path: Path) -> None:
    schema = f"test_{uuid.uuid4().hex[:12]}"
    direct = with_schema(PG_DSN, schema)
    parts = urlsplit(direct)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    user = parts.netloc.rpartition("@")[0]
    through_proxy = urlunsplit(parts._replace(netloc=f"{user}{'@' if user else ''}127.0.0.1:{proxy.port}"))
    with Ledger.open(direct) as lg:
        lg.create("projects/p/operations/x")
        lg.set_policy("", {"bindings": [{"role": "roles/ledger.viewer", "members": ["allUsers"]}]}, principal="local:t")
    proxy.start()
    server = start_grpc(through_proxy, tmp_path, "--allow-anonymous")
    try:
        proxy.cut()
        wait_for_health(server, health_pb2.HealthCheckResponse.NOT_SERVING)
        with server.channel() as channel, pytest.raises(exceptions.ServiceUnavailable):
            operations_v1.OperationsClient(channel).get_operation("projects/p/operations/x", retry=None)
        proxy.start()
        wait_for_health(server, health_pb2.HealthCheckResponse.SERVING)
        with server.channel() as channel:
            assert operations_v1.OperationsClient(channel).get_operation("projects/p/operations/x").name
    finally:
        server.stop()
        proxy.cut()
        drop_schema(PG_DSN, schema)
    assert server.http.log is not None and "gRPC health: NOT_SERVING" in server.http.log.read_text()


def test_a_taken_grpc_port_or_half_a_tls_pair_fails_before_serving(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        command = [LEDGER, "--db", url, "serve", "--port", "0", "--grpc-port", port, "--allow-anonymous"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and done.stderr.startswith(f"Error: cannot listen for gRPC on 127.0.0.1 port {port}")
    cert, _ = self_signed_certificate(tmp_path)
    half = subprocess.run([*command, "--tls-cert", str(cert)], capture_output=True, text=True, timeout=60, check=False)
    assert half.returncode == 2 and "--tls-cert and --tls-key together" in half.stderr
