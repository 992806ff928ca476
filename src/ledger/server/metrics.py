"""Prometheus metrics of one server: requests by route and code, and the fleet as the ledger holds it.

Every metric lives in a registry of the server's own (not prometheus-client's global one), so two
servers in one process never share counts. Requests are counted by `observe_request`, which the HTTP
middleware below calls for every request and which any other front end (a gRPC port) calls the same
way with `protocol="grpc"`: one family of request metrics whatever the wire.

The fleet metrics (operations by state, events by type, durations by verb) are fed by FleetIndex
(fleet.py) as it reads the log; view lag and the last audit are set when /metrics is read or an audit
is run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..domain.timestamps import format_timestamp, now
from .routes import route

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

EVENT_TYPES = ("Created", "Progressed", "CancelRequested", "Succeeded", "Failed", "Deleted")
STATES = ("RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
# Long-running operations last from seconds to days: buckets from 1 s to a week.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400, 604800, float("inf"))
PRINCIPAL_KEY = "ledger.principal"  # where a handler leaves the caller it authenticated, for the access log
_access_log = logging.getLogger("ledger.access")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ledger_requests", "Requests answered, by protocol, route and status code.",
            ["protocol", "route", "code"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "ledger_request_duration_seconds", "Time to answer a request, by protocol and route.",
            ["protocol", "route"], registry=r,
        )  # fmt: skip
        self.operations = Gauge("ledger_operations", "Operations the ledger lists, by state.", ["state"], registry=r)
        self.events = Counter(
            "ledger_events_recorded", "Events in the log, by type (counted from the log as it grows).", ["type"],
            registry=r,
        )  # fmt: skip
        self.durations = Histogram(
            "ledger_operation_duration_seconds", "Create to end of finished operations, by verb.", ["verb"],
            buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.database_up = Gauge(
            "ledger_database_up", "1 when the last read for /metrics reached the database, else 0.", registry=r
        )
        self.log_end = Gauge("ledger_log_position", "Position of the last event recorded.", registry=r)
        self.view_lag = Gauge(
            "ledger_view_lag_events", "How many log positions each view is behind.", ["view"], registry=r
        )
        self.audit_ok = Gauge("ledger_audit_last_ok", "1 when the last audit found no error, else 0.", registry=r)
        self.audit_time = Gauge(
            "ledger_audit_last_timestamp_seconds", "When the last audit ran (0: none since start).", registry=r
        )
        self.audit_findings = Gauge(
            "ledger_audit_last_findings", "Findings of the last audit, by severity and kind.", ["severity", "kind"],
            registry=r,
        )  # fmt: skip
        self.audit_checked = Gauge(
            "ledger_audit_last_checked", "What the last audit checked: operations and events.", ["what"], registry=r
        )
        for kind in EVENT_TYPES:  # every series exists from the start, at zero
            self.events.labels(kind)
        for state in STATES:
            self.operations.labels(state).set(0)

    def observe_request(self, protocol: str, route_name: str, code: str, seconds: float) -> None:
        self.requests.labels(protocol, route_name, code).inc()
        self.latency.labels(protocol, route_name).observe(seconds)

    def record_audit(self, report: dict[str, Any]) -> None:
        self.audit_ok.set(1 if report["ok"] else 0)
        self.audit_time.set(time.time())
        for what in ("operations", "events"):
            self.audit_checked.labels(what).set(report["checked"][what])
        self.audit_findings.clear()
        for severity in ("error", "warning"):  # zero series for a clean audit, so alerts can compare
            self.audit_findings.labels(severity, "any").set(0)
        counts: dict[tuple[str, str], int] = {}
        for finding in report["findings"]:
            key = (finding["severity"], finding["kind"])
            counts[key] = counts.get(key, 0) + 1
        for (severity, kind), count in counts.items():
            self.audit_findings.labels(severity, kind).set(count)
            any_kind = self.audit_findings.labels(severity, "any")
            any_kind.inc(count)


def route_name(method: str, path: str, explorer: frozenset[str] = frozenset()) -> str:
    """A route label of bounded cardinality: the method a /v1 path calls, never the name in it, and
    the explorer's endpoint when it is one of `explorer`."""
    if path.startswith("/v1/"):
        call = route(method, path)
        return f"v1.{call.method}" if call else "v1.unrouted"
    if path.startswith("/ui/api/"):
        endpoint = path.removeprefix("/ui/api/")
        return f"ui.api.{endpoint}" if endpoint in explorer else "ui.api.unrouted"
    if path == "/ui" or path.startswith("/ui/"):
        return "ui.static"
    if path in ("/metrics", "/healthz", "/readyz", "/openapi.json"):
        return path.lstrip("/")
    return "unrouted"


class RequestMetricsMiddleware:
    """ASGI middleware: counts and times each HTTP request, and writes a JSON access log line when
    asked to (one object a line on the `ledger.access` logger)."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, access_log: bool = False, explorer: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.explorer = explorer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer: dict[str, int] = {"status": 500, "bytes": 0}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = int(message["status"])
            elif message["type"] == "http.response.body":
                answer["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            name = route_name(scope["method"], scope["path"], self.explorer)
            self.metrics.observe_request("http", name, str(answer["status"]), seconds)
            if self.access_log:
                _access_log.info(_access_line(scope, name, answer, seconds).decode())


def _access_line(scope: Scope, name: str, answer: dict[str, int], seconds: float) -> bytes:
    client = scope.get("client")
    return orjson.dumps(
        {
            "time": format_timestamp(now()),
            "remote": client[0] if client else None,
            "principal": scope.get(PRINCIPAL_KEY),
            "method": scope["method"],
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
            "route": name,
            "status": answer["status"],
            "bytes": answer["bytes"],
            "durationMs": round(seconds * 1000, 2),
        }
    )
