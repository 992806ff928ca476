"""The gRPC server beside the HTTP one: its limits, TLS, health service and reflection.

`grpc_companion(settings)` gives what `create_app(companions=...)` starts in the HTTP server's
lifespan: a grpc.aio server on the same event loop, with the same ledger pool and authenticator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from google.iam.v1 import iam_policy_pb2, iam_policy_pb2_grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..app import MAX_BODY_BYTES, LedgerPool, Service
from ..metrics import Metrics
from .anys import TypeRegistry
from .servicers import Calls, IAMPolicyServicer, OperationsServicer

_log = logging.getLogger("ledger.server")
OPERATIONS = operations_pb2.DESCRIPTOR.services_by_name["Operations"].full_name
IAM_POLICY = iam_policy_pb2.DESCRIPTOR.services_by_name["IAMPolicy"].full_name
HEALTH_CHECK_SECONDS = 1.0
DEFAULT_METADATA = "google.cloud.common.OperationMetadata"

# The limits, with the HTTP side's where it has one (README: "The gRPC service").
MAX_RECEIVE_BYTES = MAX_BODY_BYTES  # a request as large as an HTTP body may be (32 MiB)
MAX_CONCURRENT_STREAMS = 100  # calls at once on one connection (HTTP/2 SETTINGS)
MAX_CONCURRENT_RPCS = 1000  # calls at once on the server; more are RESOURCE_EXHAUSTED at once
OPTIONS = (
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
    ("grpc.max_send_message_length", -1),  # answers unbounded, as HTTP's are (a page holds 1,000 at most)
    ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
    ("grpc.keepalive_time_ms", 60_000),  # ping a connection idle for a minute ...
    ("grpc.keepalive_timeout_ms", 20_000),  # ... and close it when no answer comes in 20 s
    ("grpc.keepalive_permit_without_calls", 1),  # clients may keep idle connections alive ...
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),  # ... pinging at most every 10 s
    ("grpc.max_connection_idle_ms", 15 * 60_000),  # a connection without calls for 15 minutes is closed
    ("grpc.so_reuseport", 0),  # a port already taken is an error, not a second listener
)


@dataclass(frozen=True)
class GrpcSettings:
    host: str
    port: int
    registry: TypeRegistry
    tls: tuple[bytes, bytes] | None = None  # (private key PEM, certificate chain PEM)


def grpc_companion(settings: GrpcSettings) -> Callable[[Service, Metrics], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def serving(service: Service, metrics: Metrics) -> AsyncIterator[None]:
        server = grpc.aio.server(options=OPTIONS, maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS)
        # The ledger's default metadata type, loaded now so that reflection describes it from the start
        # (tools that print an Any, as grpcurl does, ask reflection for its type).
        settings.registry.find(DEFAULT_METADATA)
        calls = Calls(service, settings.registry, metrics)
        operations_pb2_grpc.add_OperationsServicer_to_server(OperationsServicer(calls), server)
        iam_policy_pb2_grpc.add_IAMPolicyServicer_to_server(IAMPolicyServicer(calls), server)
        checker = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(checker, server)
        reflection.enable_server_reflection(
            (OPERATIONS, IAM_POLICY, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        port = _listen(server, settings)
        await server.start()
        _log.info("gRPC on %s port %d (%s)", settings.host, port, "TLS" if settings.tls else "plaintext")
        watcher = asyncio.create_task(_watch_health(service.pool, checker))
        try:
            yield
        finally:
            watcher.cancel()
            await server.stop(grace=5)

    return serving


def _listen(server: Any, settings: GrpcSettings) -> int:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    address = f"{host}:{settings.port}"
    try:
        if settings.tls:
            return int(server.add_secure_port(address, grpc.ssl_server_credentials([settings.tls])))
        return int(server.add_insecure_port(address))
    except RuntimeError as e:
        raise RuntimeError(f"cannot listen for gRPC on {address}: {e}") from None


async def _watch_health(pool: LedgerPool, checker: Any) -> None:
    """SERVING while the database answers, NOT_SERVING while it does not, checked every second."""
    last = None
    while True:
        try:
            await pool.run(lambda lg: lg.log_end())
            state, problem = health_pb2.HealthCheckResponse.SERVING, ""
        except Exception as e:  # UNAVAILABLE from the ledger, or anything else that stops reads
            state, problem = health_pb2.HealthCheckResponse.NOT_SERVING, str(e)
        if state != last:
            for name in ("", OPERATIONS, IAM_POLICY):
                await checker.set(name, state)
            if last is not None or problem:
                _log.warning(
                    "gRPC health: %s%s",
                    health_pb2.HealthCheckResponse.ServingStatus.Name(state),
                    f" ({problem})" if problem else "",
                )
            last = state
        await asyncio.sleep(HEALTH_CHECK_SECONDS)
