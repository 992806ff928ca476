"""What `ledger serve` adds beside the google.longrunning API: the explorer at /ui/, Prometheus
metrics at /metrics, /healthz (the process answers) and /readyz (the database answers and the views
are current), request metrics for every route and, when asked, a JSON access log.

/metrics, /healthz and /readyz need no token, as scrapers and probes carry none; they tell counts and
states, never a name.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import Ledger
from ..domain.errors import LedgerError
from .fleet import FleetIndex
from .metrics import Metrics, RequestMetricsMiddleware
from .ui import ui_routes
from .ui.api import ExplorerApi, json_response

if TYPE_CHECKING:
    from .app import Service

_log = logging.getLogger("ledger.server")
READY_TIMEOUT = 5.0


class Observability:
    def __init__(self, service: Service, *, access_log: bool = False) -> None:
        self.pool = service.pool
        self.metrics = Metrics()
        self.fleet = FleetIndex(self.metrics)
        self.api = ExplorerApi(service, self.fleet, self.metrics)
        self.access_log = access_log
        self._warming: asyncio.Task[None] | None = None

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/metrics", self.scrape, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            *ui_routes(self.api),
        ]

    def middleware(self) -> list[Middleware]:
        endpoints = frozenset(self.api.handlers())
        return [
            Middleware(RequestMetricsMiddleware, metrics=self.metrics, access_log=self.access_log, explorer=endpoints)
        ]

    def start(self) -> None:
        """Reads the fleet once in the background, so the first page and scrape find it ready."""
        self._warming = asyncio.get_running_loop().create_task(self._warm())

    async def _warm(self) -> None:
        try:
            await self.pool.run(lambda lg: self.fleet.refresh(lg, force=True))
        except LedgerError as e:  # the first request tries again, and says why
            _log.warning("explorer: the fleet could not be read yet: %s", e.message)

    async def stop(self) -> None:
        if self._warming is not None and not self._warming.done():
            await asyncio.wait({self._warming}, timeout=30)

    async def scrape(self, request: Request) -> Response:
        def read(lg: Ledger) -> None:
            self.fleet.refresh(lg, force=True)  # a scrape reads what was recorded up to now
            for view, lag in lg.view_lag().items():
                self.metrics.view_lag.labels(view).set(lag)

        try:
            await self.pool.run(read)
            self.metrics.database_up.set(1)
        except LedgerError as e:  # the counts read before stay; ledger_database_up says they are old
            self.metrics.database_up.set(0)
            _log.warning("metrics: the ledger could not be read: %s", e.message)
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        def probe(lg: Ledger) -> tuple[int, dict[str, int]]:
            return lg.log_end(), lg.view_lag()

        try:
            end, lag = await asyncio.wait_for(self.pool.run(probe), READY_TIMEOUT)
        except LedgerError as e:
            return _unready(f"{e.code_name}: {e.message}")
        except TimeoutError:
            return _unready(f"the database did not answer in {READY_TIMEOUT:g} s")
        behind = {view: n for view, n in lag.items() if n > 0}
        if behind:
            return _unready(f"views behind the log: {behind}", logPosition=end, viewLag=lag)
        return json_response({"status": "ready", "logPosition": end, "viewLag": lag})


def _unready(detail: str, **more: object) -> Response:
    return json_response({"status": "unavailable", "detail": detail, **more}, status_code=503)
