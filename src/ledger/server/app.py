"""The ASGI application: HTTP requests in, `Ledger` calls on worker threads, google.longrunning JSON out.

Each request is authenticated (access.py), routed (routes.py), authorized against the policies
covering its resource name, and only then run; a refused request changes nothing. Blocking ledger
calls run on a small pool of threads, each with a `Ledger` of its own (a ledger's connections are not
shared between threads); `:wait` sleeps between polls without holding one.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import Ledger
from ..domain.errors import Code, LedgerError, invalid
from ..domain.iam import PERMISSIONS, validate_resource
from ..domain.values import JSONObject, parse_json
from .access import Authenticator
from .errors import error_body
from .metrics import PRINCIPAL_KEY, Metrics
from .observability import Observability
from .openapi import openapi_document
from .routes import Call, route

_log = logging.getLogger("ledger.server")
T = TypeVar("T")
JSON = "application/json"
MAX_BODY_BYTES = 32 * 1024 * 1024
_DURATION = re.compile(r"(\d{1,12})(?:\.(\d{1,9}))?s")
_LIST_PARAMS = {  # query parameter (camelCase as clients send it, or the proto's snake_case) -> field
    "filter": "filter",
    "pageSize": "pageSize",
    "page_size": "pageSize",
    "pageToken": "pageToken",
    "page_token": "pageToken",
    "returnPartialSuccess": "partial",
    "return_partial_success": "partial",
}


class LedgerPool:
    """`size` open ledgers, one lent to each worker thread for the length of a call, and one more
    that every thread shares for policies: its in-memory policy cache is the one that a change made
    through this server updates at once."""

    def __init__(self, url: str, size: int) -> None:
        self.access = Ledger.open(url)
        self.access.get_policy("")  # fills the policy cache before the first request
        self._lent = [Ledger.open(url) for _ in range(size)]
        self._free: queue.SimpleQueue[Ledger] = queue.SimpleQueue()
        for ledger in self._lent:
            self._free.put(ledger)
        self.limiter = anyio.CapacityLimiter(size)

    @contextmanager
    def lend(self) -> Iterator[Ledger]:
        ledger = self._free.get()
        try:
            yield ledger
        finally:
            self._free.put(ledger)

    async def policy(self, work: Callable[[Ledger], T]) -> T:
        return await anyio.to_thread.run_sync(lambda: work(self.access))

    async def run(self, work: Callable[[Ledger], T]) -> T:
        def call() -> T:
            with self.lend() as ledger:
                return work(ledger)

        return await anyio.to_thread.run_sync(call, limiter=self.limiter)

    def close(self) -> None:
        for ledger in (*self._lent, self.access):
            ledger.close()


class Service:
    """The handlers, bound to one ledger pool and one authenticator."""

    def __init__(self, pool: LedgerPool, authenticator: Authenticator, max_wait: float = 60.0) -> None:
        self.pool = pool
        self.auth = authenticator
        self.max_wait = max_wait

    async def dispatch(self, request: Request) -> Response:
        started = time.perf_counter()
        principal: str | None = None
        try:
            principal = self.auth.principal(request.headers.get("authorization"))
            request.scope[PRINCIPAL_KEY] = principal  # for the JSON access log
            path = request.scope["path"]  # percent-decoded once, as the name was written
            call = route(request.method, path)
            if call is None:
                raise LedgerError(Code.NOT_FOUND, f"no method at {request.method} {path}")
            handler = getattr(self, f"_{call.method}")
            response: Response = await handler(request, call, principal)
        except LedgerError as e:
            response = _error(e)
        except Exception:  # answered as INTERNAL without details; the log has them
            _log.exception("request failed: %s %s", request.method, request.scope["path"])
            response = _error(LedgerError(Code.INTERNAL, "the server failed to answer; see its log"))
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="ledger"'
        _log.info(
            "%s %s %r -> %d in %.1f ms",  # %r: a decoded path may hold control characters
            principal or "anonymous",
            request.method,
            request.scope["path"],
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    # -- access ---------------------------------------------------------------------------------

    async def _require(self, principal: str | None, permission: str, resource: str) -> None:
        # On a worker thread although the answer mostly comes from memory: once a second the cache
        # rereads the database, which may wait behind a writer, and the event loop must not.
        held = await self.pool.policy(lambda lg: lg.permissions(principal, resource))
        if permission not in held:
            raise _refusal(principal, permission, resource)

    # -- google.longrunning.Operations ----------------------------------------------------------

    async def _addressed(self, call: Call) -> Call:
        """The call with the operation its path means (see `_addressed_name`)."""
        if not call.name.startswith("operations/"):
            return call
        return Call(call.method, await self.pool.run(lambda lg: _addressed_name(lg, call.name)))

    async def _get(self, request: Request, call: Call, principal: str | None) -> Response:
        call = await self._addressed(call)
        await self._require(principal, "ledger.operations.get", call.name)
        return _json_bytes(await self.pool.run(lambda lg: lg.get_json(call.name)))

    async def _list(self, request: Request, call: Call, principal: str | None) -> Response:
        await self._require(principal, "ledger.operations.list", call.name)
        params = _list_params(request)
        page = await self.pool.run(
            lambda lg: lg.list_json(
                call.name, filter=params["filter"], page_size=params["pageSize"], page_token=params["pageToken"]
            )
        )
        return _json_bytes(page)

    async def _cancel(self, request: Request, call: Call, principal: str | None) -> Response:
        call = await self._addressed(call)
        await self._require(principal, "ledger.operations.cancel", call.name)
        _body(await _read(request), call, allowed=("name",))
        await self.pool.run(lambda lg: _existing(lg, call.name).cancel(call.name))
        return _json({})

    async def _delete(self, request: Request, call: Call, principal: str | None) -> Response:
        call = await self._addressed(call)
        await self._require(principal, "ledger.operations.delete", call.name)
        await self.pool.run(lambda lg: _existing(lg, call.name).delete(call.name))
        return _json({})

    async def _wait(self, request: Request, call: Call, principal: str | None) -> Response:
        call = await self._addressed(call)
        await self._require(principal, "ledger.operations.get", call.name)
        body = _body(await _read(request), call, allowed=("name", "timeout"))
        timeout = min(self.max_wait, _duration(body["timeout"])) if "timeout" in body else self.max_wait
        deadline = time.monotonic() + timeout
        pause = 0.02
        while True:
            state = await self.pool.run(lambda lg: lg.get_json(call.name))
            remaining = deadline - time.monotonic()
            if remaining <= 0 or orjson.loads(state).get("done"):
                return _json_bytes(state)
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.5)

    # -- google.iam.v1.IAMPolicy ------------------------------------------------------------------

    async def _getIamPolicy(self, request: Request, call: Call, principal: str | None) -> Response:
        resource = validate_resource(call.name)
        await self._require(principal, "ledger.policies.get", resource)
        body = _body(await _read(request), call, allowed=("resource", "options"))
        _policy_options(body.get("options"))
        return _json(await self.pool.policy(lambda lg: lg.get_policy(resource)))

    async def _setIamPolicy(self, request: Request, call: Call, principal: str | None) -> Response:
        resource = validate_resource(call.name)
        await self._require(principal, "ledger.policies.set", resource)
        body = _body(await _read(request), call, allowed=("resource", "policy", "updateMask", "update_mask"))
        if "policy" not in body:
            raise invalid("policy", "is required")
        _update_mask(body.get("updateMask", body.get("update_mask")))
        who = principal or "allUsers"
        return _json(await self.pool.policy(lambda lg: lg.set_policy(resource, body["policy"], principal=who)))

    async def _testIamPermissions(self, request: Request, call: Call, principal: str | None) -> Response:
        body = _body(await _read(request), call, allowed=("resource", "permissions"))
        asked = body.get("permissions", [])
        if not isinstance(asked, list) or not all(isinstance(p, str) for p in asked):
            raise invalid("permissions", "must be a list of permission names")
        resource = validate_resource(call.name)
        held = await self.pool.policy(lambda lg: lg.permissions(principal, resource))
        granted = [p for p in dict.fromkeys(asked) if p in held and p in PERMISSIONS]
        return _json({"permissions": granted} if granted else {})

    # -- producers ------------------------------------------------------------------------------

    async def _events(self, request: Request, call: Call, principal: str | None) -> Response:
        lines = _event_lines(await _read(request))
        needed = {need for line in lines for need in _line_permissions(line)}
        if not needed:
            raise invalid("body", "no line names an operation")
        denied = await self.pool.policy(lambda lg: _first_denied(lg, principal, sorted(needed)))
        if denied:
            raise _refusal(principal, denied[1], denied[0])
        results: dict[int, JSONObject] = {}

        def ingest(lg: Ledger) -> JSONObject:
            def rejected(rejection: Any) -> None:
                code, _, message = rejection.reason.partition(": ")
                error = {"code": int(Code[code]) if code in Code.__members__ else 3, "message": message}
                results[rejection.line] = {"line": rejection.line, "status": "REJECTED", "error": error}

            def accepted(line: int, outcome: str) -> None:
                results[line] = {"line": line, "status": outcome}

            return lg.ingest(lines, on_reject=rejected, on_accept=accepted)

        summary = await self.pool.run(ingest)
        return _json(
            {
                "results": [results[line] for line in sorted(results)],
                "recorded": summary["recorded"],
                "duplicates": summary["duplicates"],
                "rejected": summary["rejected"],
            }
        )


def _refusal(principal: str | None, permission: str, resource: str) -> LedgerError:
    """401 for an anonymous caller (a token might help), 403 for a known principal."""
    if principal is None:
        return LedgerError(Code.UNAUTHENTICATED, f"anonymous callers lack {permission} on {resource!r}")
    return LedgerError(Code.PERMISSION_DENIED, f"permission {permission!r} denied on {resource!r}")


def _first_denied(lg: Ledger, principal: str | None, needed: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The first (name, permission) the principal lacks, all checked in one call."""
    return next(((name, p) for name, p in needed if p not in lg.permissions(principal, name)), None)


def _addressed_name(lg: Ledger, name: str) -> str:
    """The operation a path `operations/{rest}` names: the one of that name, else the one named `rest`.
    Speech v1 names its operations with a bare number, and its clients address them as
    `operations/{number}`."""
    try:
        lg.get_json(name)
    except LedgerError as e:
        if e.code != Code.NOT_FOUND:
            raise
        bare = name.removeprefix("operations/")
        try:
            lg.get_json(bare)
        except LedgerError:
            return name
        return bare
    return name


def _existing(lg: Ledger, name: str) -> Ledger:
    """NOT_FOUND for a deleted operation, as Google's API answers: over HTTP it is gone, while the
    ledger alone would call a second delete a broken rule (FAILED_PRECONDITION)."""
    lg.get_json(name)
    return lg


# -- request parsing --------------------------------------------------------------------------------


async def _read(request: Request) -> bytes:
    """The request body, refused once it passes MAX_BODY_BYTES (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise invalid("body", f"larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise invalid("body", f"larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _body(raw: bytes, call: Call, allowed: tuple[str, ...]) -> JSONObject:
    """A request message as JSON: an object of known fields only; its name, if given, the path's."""
    if not raw.strip():
        return {}
    body = parse_json(raw, "body")
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise invalid(unknown[0], "is not a field of this request")
    for key in ("name", "resource"):
        if key in body and body[key] != call.name:
            raise invalid(key, f"{body[key]!r} differs from the name in the path ({call.name!r})")
    return body


def _list_params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {"filter": "", "pageSize": 0, "pageToken": ""}
    for key, value in request.query_params.multi_items():
        field = _LIST_PARAMS.get(key)
        if field == "pageSize":
            if not re.fullmatch(r"-?\d{1,10}", value):
                raise invalid("pageSize", f"{value!r} is not an integer")
            params["pageSize"] = int(value)
        elif field == "partial":
            if value not in ("true", "false", "1", "0"):
                raise invalid("returnPartialSuccess", f"{value!r} is not true or false")
        elif field is not None:
            params[field] = value
    return params


def _duration(value: object) -> float:
    """A google.protobuf.Duration in its JSON form ("5s", "0.25s")."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise invalid("timeout", f'{value!r} is not a duration such as "5s" or "0.5s"')
    return int(match.group(1)) + float("0." + (match.group(2) or "0"))


def _policy_options(options: object) -> None:
    if options is None:
        return
    if not isinstance(options, dict) or set(options) - {"requestedPolicyVersion", "requested_policy_version"}:
        raise invalid("options", 'must be a GetPolicyOptions object ({"requestedPolicyVersion": N})')
    version = next(iter(options.values()), 0)
    if version not in (0, 1, 3) or isinstance(version, bool):
        raise invalid("options.requestedPolicyVersion", f"{version!r} is not 0, 1 or 3")


def _update_mask(mask: object) -> None:
    if mask is None:
        return
    if not isinstance(mask, str) or not set(filter(None, mask.split(","))) <= {"bindings", "etag", "version"}:
        raise invalid("updateMask", f"{mask!r} may name only bindings, etag and version")


def _event_lines(raw: bytes) -> list[bytes]:
    """Event JSON as a JSON array or as JSON lines, one encoded event a line."""
    text = raw.lstrip()
    if text.startswith(b"["):
        try:
            events = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            raise invalid("body", f"not a JSON array: {e}") from None
        lines = [orjson.dumps(event) for event in events] if isinstance(events, list) else []
    else:
        lines = raw.splitlines()  # blank lines stay, so results number lines as the client wrote them
    if not any(line.strip() for line in lines):
        raise invalid("body", "give events as a JSON array or as JSON lines")
    return lines


def _line_permissions(line: bytes) -> list[tuple[str, str]]:
    """(name, permission) pairs a line needs: writing events, and for a Deleted or CancelRequested
    event also what the DELETE or :cancel call would need, so the producer role cannot do either."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return []
    name = event.get("name") if isinstance(event, dict) else None
    if not isinstance(name, str):
        return []
    needs = [(name, "ledger.events.write")]
    kind = event.get("type")
    extra = {"Deleted": "ledger.operations.delete", "CancelRequested": "ledger.operations.cancel"}.get(
        kind if isinstance(kind, str) else ""
    )
    return [*needs, (name, extra)] if extra else needs


# -- responses ----------------------------------------------------------------------------------------


def _json(value: object) -> Response:
    return Response(orjson.dumps(value), media_type=JSON)


def _json_bytes(body: bytes) -> Response:
    return Response(body, media_type=JSON)


def _error(error: LedgerError) -> Response:
    status, body = error_body(error)
    return Response(body, status_code=status, media_type=JSON)


Companion = Callable[["Service", Metrics], AbstractAsyncContextManager[object]]


def create_app(
    url: str,
    authenticator: Authenticator,
    *,
    pool_size: int = 4,
    max_wait: float = 60.0,
    access_log: bool = False,
    companions: Sequence[Companion] = (),
) -> Starlette:
    """The ASGI application serving the ledger at `url`. Each companion (the gRPC server) runs for
    the application's lifetime on the same service (its ledger pool, tokens and policy cache) and
    counts its calls in the same metrics."""
    pool = LedgerPool(url, pool_size)
    service = Service(pool, authenticator, max_wait)
    extras = Observability(service, access_log=access_log)  # /ui/, /metrics, /healthz, /readyz, request metrics
    document = orjson.dumps(openapi_document())

    async def openapi(request: Request) -> Response:
        return _json_bytes(document)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        extras.start()
        async with AsyncExitStack() as running:
            running.callback(pool.close)  # last, once every companion has stopped
            running.push_async_callback(extras.stop)
            for companion in companions:
                await running.enter_async_context(companion(service, extras.metrics))
            yield

    async def unrouted(request: Request, error: Exception) -> Response:
        # Paths the router cannot match (a newline in a segment, say) still answer in the envelope.
        return _error(LedgerError(Code.NOT_FOUND, f"no method at {request.method} {request.scope['path']}"))

    app = Starlette(
        routes=[
            *extras.routes(),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/{path:path}", service.dispatch, methods=["GET", "POST", "DELETE", "PUT", "PATCH"]),
        ],
        exception_handlers={HTTPException: unrouted},
        middleware=extras.middleware(),
        lifespan=lifespan,
    )
    app.state.metrics = extras.metrics  # another front end (a gRPC port) counts its calls with observe_request
    return app
