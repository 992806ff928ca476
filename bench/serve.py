"""Load test of `ledger serve` over loopback: pollers and writers in this process, the server in another.

    python bench/serve.py --backend sqlite --pollers 32 --writers 4 --seconds 60 --out bench/results/serve-sqlite.json

Pollers loop on GET of a random operation (one in ten lists a page of 20 instead); writers record
whole lifecycles through POST /v1/events (Created, Progressed, Succeeded: one request each). Every
call carries a bearer token, so authentication and the policy check are in every figure. Afterwards
every operation a writer was told RECORDED is read back from the ledger itself: a lost write shows.
Both sides share the machine's cores, so this measures the pair, not the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import fresh_store, provenance, write_result

from ledger import Ledger
from ledger.server.access import add_token

POLLER, WRITER = "serviceAccount:poller@bench", "serviceAccount:writer@bench"
SEEDED = 500


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2) if ordered else 0.0


def start_server(url: str, workdir: Path, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    tokens_file = workdir / "tokens.json"
    port = 18000 + random.randrange(1000)
    log = (workdir / "serve.log").open("wb")
    ledger = str(Path(sys.executable).with_name("ledger"))
    command = [
        ledger,
        "--db",
        url,
        "serve",
        "--port",
        str(port),
        "--tokens",
        str(tokens_file),
        "--threads",
        str(threads),
    ]
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/openapi.json", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    sys.exit(f"ledger serve did not start: {(workdir / 'serve.log').read_text()}")


async def run_load(base: str, tokens: dict[str, str], pollers: int, writers: int, seconds: float) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {"get": [], "list": [], "write": []}
    errors: list[str] = []
    written: list[str] = []
    deadline = time.monotonic() + seconds
    seeded = [f"projects/bench/operations/seed-{i}" for i in range(SEEDED)]
    limits = httpx.Limits(max_connections=pollers + writers, max_keepalive_connections=pollers + writers)

    async def call(
        client: httpx.AsyncClient, kind: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            errors.append(f"{kind}: {type(e).__name__}: {e}")
            return None
        latencies[kind].append(time.perf_counter() - started)
        if response.status_code != 200:
            errors.append(f"{kind}: {response.status_code} {response.text[:200]}")
            return None
        return response

    async def poll(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            if random.random() < 0.1:
                await call(client, "list", "GET", "/v1/projects/bench/operations", params={"pageSize": 20})
            else:
                await call(client, "get", "GET", f"/v1/{random.choice(seeded)}")

    async def write(client: httpx.AsyncClient, writer: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            name = f"projects/bench/operations/w{writer}-{n}"
            n += 1
            steps = [
                {"type": "Created", "name": name, "occurredAt": "2026-11-22T00:00:00Z", "verb": "load"},
                {"type": "Progressed", "name": name, "occurredAt": "2026-11-22T00:00:01Z", "progressPercent": 50},
                {"type": "Succeeded", "name": name, "occurredAt": "2026-11-22T00:00:02Z"},
            ]
            for step in steps:
                response = await call(client, "write", "POST", "/v1/events", json=[step])
                if response is not None and response.json()["results"][0]["status"] != "RECORDED":
                    errors.append(f"write: {response.text[:200]}")
            written.append(name)

    def client(principal: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {tokens[principal]}"}
        return httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits)

    started = time.monotonic()
    async with client(POLLER) as readers, client(WRITER) as producers:
        await asyncio.gather(*(poll(readers) for _ in range(pollers)), *(write(producers, w) for w in range(writers)))
    elapsed = time.monotonic() - started
    total = sum(len(v) for v in latencies.values())
    return {
        "seconds": round(elapsed, 1),
        "requests": total,
        "requests_per_s": round(total / elapsed),
        "errors": len(errors),
        "first_errors": errors[:5],
        "written_operations": written,
        "latency_ms": {
            kind: {"count": len(samples), "p50": percentile(samples, 0.5), "p99": percentile(samples, 0.99)}
            for kind, samples in latencies.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pollers", type=int, default=32)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--threads", type=int, default=4, help="ledger serve --threads")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with fresh_store(args.backend) as url, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        tokens = {p: add_token(workdir / "tokens.json", p) for p in (POLLER, WRITER)}
        with Ledger.open(url) as lg:
            lg.set_policy(
                "projects/bench",
                {
                    "bindings": [
                        {"role": "roles/ledger.viewer", "members": [POLLER]},
                        {"role": "roles/ledger.producer", "members": [WRITER]},
                    ]
                },
                principal="local:bench",
            )
            lg.ingest(
                f'{{"type":"Created","name":"{name}","occurredAt":"2026-11-22T00:00:00Z"}}'
                for name in (f"projects/bench/operations/seed-{i}" for i in range(SEEDED))
            )
        process, base = start_server(url, workdir, args.threads)
        try:
            load = asyncio.run(run_load(base, tokens, args.pollers, args.writers, args.seconds))
        finally:
            process.terminate()
            process.wait(30)
        written = load.pop("written_operations")
        with Ledger.open(url) as lg:
            lost = [name for name in written if len(lg.history(name)) != 3 or not lg.get(name).get("done")]
    result = {
        **provenance("serve", args.backend),
        "pollers": args.pollers,
        "writers": args.writers,
        "server_threads": args.threads,
        **load,
        "operations_written": len(written),
        "lost_writes": len(lost),
    }
    write_result(result, args.out)
    if lost or load["errors"]:
        sys.exit(f"{len(lost)} lost writes, {load['errors']} errors")


if __name__ == "__main__":
    main()
