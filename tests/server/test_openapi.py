"""schemathesis against the served `/openapi.json`: generated requests (valid and invalid) never get a
5xx, and every response matches the document (status, content type, headers, body schema).

The server runs with anonymous access on and `allUsers` holding every role, so that generated calls
reach the handlers instead of stopping at 401; a few operations exist under the document's examples.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ledger import Ledger

from ..support import backend_url
from .serving import start

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_schemathesis_finds_no_server_error_and_no_response_off_the_schema(backend: str, tmp_path: Path) -> None:
    with backend_url(backend, tmp_path) as url:
        _check_with_schemathesis(url, tmp_path)


def _check_with_schemathesis(url: str, tmp_path: Path) -> None:
    with Ledger.open(url) as lg:
        lg.set_policy(
            "", {"bindings": [{"role": "roles/ledger.admin", "members": ["allUsers"]}]}, principal="local:test"
        )
        for name in ("operations/op-1", "projects/p/operations/op-1", "projects/p/operations/op-2"):
            lg.create(name, verb="build")
        lg.succeed("projects/p/operations/op-2")
    server = start(url, tmp_path, "--allow-anonymous", "--max-wait", "0.2")
    try:
        assert httpx.get(f"{server.base}/openapi.json").json()["openapi"].startswith("3.")
        # One worker: CPython 3.11's ast.parse is not safe in threads, and hypothesis calls it while
        # describing strategies ("AST constructor recursion depth mismatch" with two workers).
        run = subprocess.run(
            [
                SCHEMATHESIS,
                "run",
                f"{server.base}/openapi.json",
                "--checks",
                CHECKS,
                "--max-examples",
                "40",
                "--seed",
                "7",
                "--workers",
                "1",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert "Server error" not in (server.log.read_text() if server.log else "")
    finally:
        server.stop()
