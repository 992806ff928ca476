"""The explorer's JSON endpoints under /ui/api/, with the same tokens and policies as /v1/.

What a page offers to download is the body of one of these answers, and the answers that stand for
a CLI command are that command's stdout byte for byte: `operation` is `ledger get` (with --version or
--as-of), `history` is `ledger history`, `list` is `ledger list` (one page), `audit` is
`ledger audit --format json`, `digest` is `ledger digest`, `verify` is `ledger verify`.

Permissions: reading one operation (its states, history, hash check) needs ledger.operations.get on
it; lists, facets and the timeline need ledger.operations.list on the collection (every collection:
on the root, ""), and the timeline and facets show only the collections the caller may list; audit,
digest and verify read the whole log, so they need ledger.operations.list on the root.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response

from ... import Ledger
from ...domain.errors import Code, LedgerError, invalid
from ...domain.timestamps import parse_timestamp
from ..errors import error_body
from ..fleet import FleetIndex, Row, Window
from ..metrics import PRINCIPAL_KEY, Metrics

if TYPE_CHECKING:
    from ..app import Service

JSON = "application/json"
LIST = "ledger.operations.list"
GET = "ledger.operations.get"
MAX_TIMELINE_ROWS = 20000
MAX_DIGEST_BYTES = 64 * 1024
Handler = Callable[[Request], Awaitable[Response]]
ENDPOINTS = frozenset(
    {"whoami", "list", "facets", "timeline", "operation", "history", "check", "audit", "digest", "verify"}
)


class ExplorerApi:
    def __init__(self, service: Service, fleet: FleetIndex, metrics: Metrics) -> None:
        self.service = service
        self.pool = service.pool
        self.fleet = fleet
        self.metrics = metrics

    def handlers(self) -> dict[str, tuple[str, Handler]]:
        """path under /ui/api/ -> (HTTP method, handler)."""
        return {
            "whoami": ("GET", self.whoami),
            "list": ("GET", self.list_page),
            "facets": ("GET", self.facets),
            "timeline": ("GET", self.timeline),
            "operation": ("GET", self.operation),
            "history": ("GET", self.history),
            "check": ("GET", self.check),
            "audit": ("POST", self.audit),
            "digest": ("GET", self.digest),
            "verify": ("POST", self.verify),
        }

    async def answer(self, request: Request, handler: Handler) -> Response:
        """Runs a handler; a LedgerError becomes the same error envelope /v1/ answers with."""
        try:
            return await handler(request)
        except LedgerError as e:
            return error_response(e)

    async def _caller(self, request: Request, permission: str, resource: str) -> str | None:
        principal = self.service.auth.principal(request.headers.get("authorization"))
        request.scope[PRINCIPAL_KEY] = principal
        await self.service._require(principal, permission, resource)
        return principal

    # -- the fleet --------------------------------------------------------------------------------

    async def whoami(self, request: Request) -> Response:
        principal = self.service.auth.principal(request.headers.get("authorization"))
        request.scope[PRINCIPAL_KEY] = principal
        return json_response({"principal": principal or "allUsers"})

    async def list_page(self, request: Request) -> Response:
        query = request.query_params
        parent = query.get("parent")
        collection = "" if not parent or parent == "operations" else parent.removesuffix("/operations")
        await self._caller(request, LIST, collection)
        size = _integer(query.get("pageSize", "0"), "pageSize")

        filter_, token, as_of = query.get("filter", ""), query.get("pageToken", ""), query.get("asOf") or None
        if query.get("view") == "rows":  # the view's columns, for the tables; not what the CLI prints

            def rows(lg: Ledger) -> bytes:
                flat, after = lg.list_flat(
                    parent or None, filter=filter_, page_size=size, page_token=token, as_of=as_of
                )
                return orjson.dumps({"rows": flat, "nextPageToken": after})

            return Response(await self.pool.run(rows), media_type=JSON)

        def page(lg: Ledger) -> bytes:
            body = lg.list_json(parent or None, filter=filter_, page_size=size, page_token=token, as_of=as_of)
            return body + b"\n"

        return Response(await self.pool.run(page), media_type=JSON)

    async def _visible(self, request: Request) -> list[tuple[str, Row]]:
        """The fleet's rows in the collections the caller may list."""
        principal = self.service.auth.principal(request.headers.get("authorization"))
        request.scope[PRINCIPAL_KEY] = principal
        await self.pool.run(self.fleet.refresh)
        return await self.pool.policy(lambda lg: list(self.fleet.visible(_lister(lg, principal))))

    async def facets(self, request: Request) -> Response:
        as_of = request.query_params.get("asOf") or None
        at_ms = parse_timestamp(as_of, "asOf") // 1_000_000 if as_of else None
        rows = await self._visible(request)
        # Counting 100,000 rows takes a while: on a thread, so the event loop answers others meanwhile.
        result = await anyio.to_thread.run_sync(lambda: self.fleet.facets(rows, at_ms))
        extent = self.fleet.extent(rows)
        result["asOf"] = as_of
        result["extent"] = list(extent) if extent else None
        return json_response(result)

    async def timeline(self, request: Request) -> Response:
        query = request.query_params
        rows = await self._visible(request)
        extent = self.fleet.extent(rows)
        if "from" in query and "to" in query:
            start, end = _integer(query["from"], "from"), _integer(query["to"], "to")
        elif extent:  # the last six hours of the fleet's own time, where an incident shows first
            end = extent[1]
            start = max(extent[0], end - 6 * 3600 * 1000)
        else:
            now_ms = int(time.time() * 1000)
            start, end = now_ms - 3600 * 1000, now_ms
        if end <= start:
            raise invalid("to", "must be after from")
        asked = _integer(query.get("limit", "0"), "limit")
        limit = min(asked, MAX_TIMELINE_ROWS) if asked > 0 else MAX_TIMELINE_ROWS
        result = await anyio.to_thread.run_sync(lambda: self.fleet.timeline(rows, Window(start, end, limit)))
        result["extent"] = list(extent) if extent else None
        return json_response(result)

    # -- one operation ----------------------------------------------------------------------------

    async def operation(self, request: Request) -> Response:
        name = _required(request, "name")
        await self._caller(request, GET, name)
        version, as_of = request.query_params.get("version"), request.query_params.get("asOf")
        when: int | str | None = _integer(version, "version") if version else as_of or None
        body = await self.pool.run(lambda lg: lg.get_json(name, as_of=when))
        return Response(body + b"\n", media_type=JSON)

    async def history(self, request: Request) -> Response:
        name = _required(request, "name")
        await self._caller(request, GET, name)
        events = await self.pool.run(lambda lg: lg.history(name))
        return Response(orjson.dumps(events) + b"\n", media_type=JSON)

    async def check(self, request: Request) -> Response:
        """The audit of this one operation: its rules, hash chain and views."""
        name = _required(request, "name")
        await self._caller(request, GET, name)
        return json_response(await self.pool.run(lambda lg: lg.audit([name])))

    # -- the whole log ----------------------------------------------------------------------------

    async def audit(self, request: Request) -> Response:
        await self._caller(request, LIST, "")
        report = await self.pool.run(lambda lg: lg.audit())
        self.metrics.record_audit(report)
        return json_response(report)

    async def digest(self, request: Request) -> Response:
        await self._caller(request, LIST, "")
        return json_response(await self.pool.run(lambda lg: lg.digest()))

    async def verify(self, request: Request) -> Response:
        await self._caller(request, LIST, "")
        saved = b""
        async for chunk in request.stream():
            saved += chunk
            if len(saved) > MAX_DIGEST_BYTES:
                raise invalid("digest", f"larger than {MAX_DIGEST_BYTES} bytes; a digest is one small JSON object")
        if not saved.strip():
            raise invalid("digest", 'give the digest JSON, {"position": N, "digest": "sha256:..."}')
        return json_response(await self.pool.run(lambda lg: lg.verify(saved.decode("utf-8", errors="replace"))))


def json_response(value: object, status_code: int = 200) -> Response:
    """As the CLI prints JSON: compact, keys in order, one newline."""
    return Response(orjson.dumps(value) + b"\n", status_code=status_code, media_type=JSON)


def _lister(lg: Ledger, principal: str | None) -> Callable[[str], bool]:
    def may_list(parent: str) -> bool:
        return LIST in lg.permissions(principal, parent)

    return may_list


def _required(request: Request, key: str) -> str:
    value = request.query_params.get(key)
    if not value:
        raise invalid(key, "is required")
    return value


def _integer(value: str, field: str) -> int:
    text = value.strip()
    if not text.lstrip("-").isdigit() or len(text) > 19:
        raise invalid(field, f"{value!r} is not an integer")
    return int(text)


def error_response(error: LedgerError) -> Response:
    status, body = error_body(error)
    response = Response(body, status_code=status, media_type=JSON)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="ledger"'
    return response


def unknown(request: Request) -> LedgerError:
    return LedgerError(Code.NOT_FOUND, f"no explorer endpoint at {request.method} {request.scope['path']}")
