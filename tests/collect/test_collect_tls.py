"""TLS sources: grpcs:// and https:// with a certificate from a private CA (`ca_file`), made here."""

from __future__ import annotations

import io
import ssl
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import grpc
from google.longrunning import operations_pb2_grpc

from ledger import Ledger
from ledger.collect import collect
from ledger.collect.reporting import Reporter
from ledger.collect.sources import Auth, parse_source

from ..tls import self_signed_certificate
from . import fake_grpc
from .fake_google import FakeApi, Script, _Handler, evolutions
from .test_collect_ledgers import PARENT, _fill, _list_all


def test_grpcs_source_with_a_private_ca(tmp_path: Path) -> None:
    source_url, url = f"sqlite:///{tmp_path}/source.db", f"sqlite:///{tmp_path}/ledger.db"
    _fill(source_url)
    cert_file, key_file = self_signed_certificate(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text("grpc-token")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    operations_pb2_grpc.add_OperationsServicer_to_server(fake_grpc.LedgerOperations(source_url, "grpc-token"), server)
    credentials = grpc.ssl_server_credentials([(key_file.read_bytes(), cert_file.read_bytes())])
    port = server.add_secure_port("localhost:0", credentials)
    server.start()
    try:
        source = parse_source(
            f"grpcs://localhost:{port}/{PARENT}/operations",
            ca_file=str(cert_file),
            auth=Auth("token-file", str(token_file)),
        )
        assert collect(url, [source], once=True, reporter=Reporter(io.StringIO(), progress=False))
    finally:
        server.stop(grace=None)
    assert _list_all(url) == _list_all(source_url)


@contextmanager
def _https(api: FakeApi, cert_file: Path, key_file: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.api = api  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}/v1/{api.parent}/operations"
    finally:
        server.shutdown()
        server.server_close()


def test_https_source_with_a_private_ca(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    cert_file, key_file = self_signed_certificate(tmp_path)
    script = Script(evolutions(7, stagger=100), serves=100)
    with _https(FakeApi(script), cert_file, key_file) as collection:
        source = parse_source(collection, ca_file=str(cert_file), auth=Auth("anonymous"))
        assert source.tls
        stream = io.StringIO()
        assert collect(url, [source], once=True, reporter=Reporter(stream, progress=False)), stream.getvalue()
    with Ledger.open(url) as lg:
        collected = {op["name"]: op for op in lg.list(page_size=100)["operations"]}
    assert collected == {op["name"]: op for op in script.visible()}


def test_a_certificate_nobody_vouches_for_fails_the_source_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    cert_file, key_file = self_signed_certificate(tmp_path)
    stream = io.StringIO()
    with _https(FakeApi(Script(evolutions(3))), cert_file, key_file) as collection:
        source = parse_source(collection, auth=Auth("anonymous"))  # the system's CAs only
        assert not collect(url, [source], once=True, reporter=Reporter(stream, progress=False))
    log = stream.getvalue()
    assert '"event":"retry"' not in log  # not transient: no backoff
    assert "CERTIFICATE_VERIFY_FAILED" in log
