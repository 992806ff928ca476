"""What the explorer's benchmark and screenshot script share: a seeded ledger served by a real
`ledger serve` on a free loopback port, and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ledger import Ledger
from ledger.server.access import add_token
from ledger.simulate import simulate_lines

CHROMIUM = "/usr/bin/chromium"
# Headless, and nothing that reaches past this machine (no updates, sync or background fetches).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PRINCIPAL = "user:sre@example.com"


@dataclass
class Explorer:
    base: str
    token: str
    url: str


def seed(url: str, operations: int) -> None:
    """`operations` simulated operations (the same every time: seed 0), and an admin policy on the root."""
    with Ledger.open(url) as lg:
        lg.ingest(simulate_lines(operations))
        lg.set_policy("", {"bindings": [{"role": "roles/ledger.admin", "members": [PRINCIPAL]}]}, principal=PRINCIPAL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(url: str, workdir: Path) -> Iterator[Explorer]:
    """`ledger serve` over the ledger at `url`, with a token for PRINCIPAL; stopped afterwards."""
    tokens = workdir / "tokens.json"
    token = add_token(tokens, PRINCIPAL)
    port = free_port()
    ledger = str(Path(sys.executable).with_name("ledger"))
    log = (workdir / "serve.log").open("wb")
    process = subprocess.Popen(
        [ledger, "--db", url, "serve", "--port", str(port), "--tokens", str(tokens)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ledger serve did not start: {(workdir / 'serve.log').read_text()}")
            time.sleep(0.1)
        yield Explorer(base, token, url)
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def signed_in_page(browser: Any, explorer: Explorer, width: int = 1440, height: int = 900) -> Any:
    """A page whose session already holds the token (as the sign-in dialog would leave it)."""
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    context.add_init_script(f"sessionStorage.setItem('ledger.token', {explorer.token!r});")
    return context.new_page()
