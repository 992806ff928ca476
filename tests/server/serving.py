"""A real `ledger serve` process for the server tests, on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

LEDGER = str(Path(sys.executable).with_name("ledger"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str  # the ledger's database URL
    base: str  # http://127.0.0.1:PORT
    tokens: dict[str, str] = field(default_factory=dict)  # principal -> token
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def headers(self, principal: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[principal]}"} if principal else {}

    def client(self, principal: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers=self.headers(principal), timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def start(url: str, workdir: Path, *extra: str) -> Server:
    """`ledger serve` on a free port with the given options; returns once it answers."""
    port = free_port()
    log = workdir / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [LEDGER, "--db", url, "serve", "--port", str(port), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    server = Server(url, f"http://127.0.0.1:{port}", process=process, log=log)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"ledger serve exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{server.base}/openapi.json", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"ledger serve did not answer in 30 s: {log.read_text()}")
        time.sleep(0.1)
