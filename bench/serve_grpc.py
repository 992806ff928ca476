"""Load test of `ledger serve --grpc-port` over loopback: gRPC pollers and HTTP writers in this process,
the server in another.

    python bench/serve_grpc.py --backend sqlite --pollers 32 --writers 4 --seconds 60 --out bench/results/serve-grpc-sqlite.json

The same workload as bench/serve.py, with the polling moved to gRPC: each poller is a client of its
own (its own channel and connection) looping on GetOperation of a random operation (one call in ten
is a ListOperations page of 20 instead), every call with a bearer token as call credentials; the
writers record whole lifecycles through HTTP's POST /v1/events as in serve.py. Operations carry the
ledger's default metadata, so every answer packs an Any. Afterwards every operation a writer was told
RECORDED is read back from the ledger itself: a lost write shows. Both sides share the machine's
cores, so this measures the pair, not the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
from common import fresh_store, provenance, write_result
from google.longrunning import operations_pb2, operations_pb2_grpc
from serve import POLLER, SEEDED, WRITER, percentile

from ledger import Ledger
from ledger.server.access import add_token


def free_ports() -> tuple[int, int]:
    """Two free loopback ports, different from each other (both sockets bound until both are chosen)."""
    with socket.socket() as first, socket.socket() as second:
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        return int(first.getsockname()[1]), int(second.getsockname()[1])


def start_server(url: str, workdir: Path, threads: int) -> tuple[subprocess.Popen[bytes], str, str]:
    http_port, grpc_port = free_ports()
    log = (workdir / "serve.log").open("wb")
    ledger = str(Path(sys.executable).with_name("ledger"))
    command = [ledger, "--db", url, "serve", "--port", str(http_port), "--grpc-port", str(grpc_port)]
    command += ["--tokens", str(workdir / "tokens.json"), "--threads", str(threads)]
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    base = f"http://127.0.0.1:{http_port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/openapi.json", timeout=1).status_code == 200:
                return process, base, f"127.0.0.1:{grpc_port}"
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    sys.exit(f"ledger serve did not start: {(workdir / 'serve.log').read_text()}")


async def run_load(
    base: str, target: str, tokens: dict[str, str], pollers: int, writers: int, seconds: float
) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {"get": [], "list": [], "write": []}
    errors: list[str] = []
    written: list[str] = []
    deadline = time.monotonic() + seconds
    seeded = [f"projects/bench/operations/seed-{i}" for i in range(SEEDED)]
    credentials = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(), grpc.access_token_call_credentials(tokens[POLLER])
    )

    async def rpc(kind: str, call: Any, request: Any) -> None:
        started = time.perf_counter()
        try:
            await call(request, timeout=30)
        except grpc.RpcError as e:
            errors.append(f"{kind}: {e.code()} {e.details()}")
            return
        latencies[kind].append(time.perf_counter() - started)

    async def poll() -> None:
        async with grpc.aio.secure_channel(target, credentials) as channel:
            stub = operations_pb2_grpc.OperationsStub(channel)
            while time.monotonic() < deadline:
                if random.random() < 0.1:
                    page = operations_pb2.ListOperationsRequest(name="projects/bench", page_size=20)
                    await rpc("list", stub.ListOperations, page)
                else:
                    await rpc("get", stub.GetOperation, operations_pb2.GetOperationRequest(name=random.choice(seeded)))

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
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/events", json=[step])
                except httpx.HTTPError as e:
                    errors.append(f"write: {type(e).__name__}: {e}")
                    continue
                latencies["write"].append(time.perf_counter() - started)
                if response.status_code != 200 or response.json()["results"][0]["status"] != "RECORDED":
                    errors.append(f"write: {response.status_code} {response.text[:200]}")
            written.append(name)

    headers = {"Authorization": f"Bearer {tokens[WRITER]}"}
    limits = httpx.Limits(max_connections=writers, max_keepalive_connections=writers)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as producers:
        await asyncio.gather(*(poll() for _ in range(pollers)), *(write(producers, w) for w in range(writers)))
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


def seed(url: str) -> None:
    with Ledger.open(url) as lg:
        bindings = [
            {"role": "roles/ledger.viewer", "members": [POLLER]},
            {"role": "roles/ledger.producer", "members": [WRITER]},
        ]
        lg.set_policy("projects/bench", {"bindings": bindings}, principal="local:bench")
        lg.ingest(
            f'{{"type":"Created","name":"{name}","occurredAt":"2026-11-22T00:00:00Z"}}'
            for name in (f"projects/bench/operations/seed-{i}" for i in range(SEEDED))
        )


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
        seed(url)
        process, base, target = start_server(url, workdir, args.threads)
        try:
            load = asyncio.run(run_load(base, target, tokens, args.pollers, args.writers, args.seconds))
        finally:
            process.terminate()
            process.wait(30)
        written = load.pop("written_operations")
        with Ledger.open(url) as lg:
            lost = [name for name in written if len(lg.history(name)) != 3 or not lg.get(name).get("done")]
    result = {
        **provenance("serve-grpc", args.backend),
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
