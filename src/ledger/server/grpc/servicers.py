"""The stock google.longrunning.Operations and google.iam.v1.IAMPolicy servicers, answered by the ledger.

Each call goes the way its HTTP twin goes (../app.py): the bearer token from the `authorization`
metadata, the same permission check (`Service._require`) before anything is read or written, the
same ledger calls on the same worker threads, the same errors; only the encoding differs. A refused
call records nothing, and the access log names principal, method, name, status and time, never a token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from google.iam.v1 import iam_policy_pb2, iam_policy_pb2_grpc, policy_pb2
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import empty_pb2, json_format

from ...domain.errors import Code, LedgerError, invalid
from ...domain.iam import PERMISSIONS, validate_resource
from ..app import Service, _existing, _policy_options, _update_mask
from ..metrics import Metrics
from .anys import TypeRegistry
from .status import abort

_log = logging.getLogger("ledger.server")
T = TypeVar("T")
Work = Callable[[str | None], Awaitable[T]]


class Calls:
    """What every call shares: who is calling, the ledger pool, errors as statuses, the access log."""

    def __init__(self, service: Service, registry: TypeRegistry, metrics: Metrics | None = None) -> None:
        self.service = service
        self.pool = service.pool
        self.registry = registry
        self.metrics = metrics

    async def run(self, context: Any, method: str, name: str, work: Work[T]) -> T:
        started = time.perf_counter()
        principal: str | None = None
        outcome = "OK"
        try:
            principal = self.service.auth.principal(_authorization(context))
            return await work(principal)
        except LedgerError as e:
            outcome = Code(e.code).name
            await abort(context, e)
        except asyncio.CancelledError:
            outcome = "CANCELLED"
            raise
        except Exception:  # answered as INTERNAL without details; the log has them
            outcome = "INTERNAL"
            _log.exception("gRPC call failed: %s %r", method, name)
            await abort(context, LedgerError(Code.INTERNAL, "the server failed to answer; see its log"))
        finally:
            seconds = time.perf_counter() - started
            _log.info("%s gRPC %s %r -> %s in %.1f ms", principal or "anonymous", method, name, outcome, seconds * 1000)
            if self.metrics is not None:  # ledger_requests_total{protocol="grpc", route="Operations.GetOperation"}
                self.metrics.observe_request("grpc", method, outcome, seconds)
        raise AssertionError("abort returned")  # abort always raises

    async def require(self, principal: str | None, permission: str, resource: str) -> None:
        await self.service._require(principal, permission, resource)  # the HTTP handlers' own check


def _authorization(context: Any) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else None
    return None


def collection(name: str) -> str:
    """ListOperationsRequest.name as the ledger's parent: `projects/p`, `projects/p/operations`
    (as Google's gRPC clients send it) and `operations` or `""` (the root) all work."""
    return "" if name in ("", "operations") else name.removesuffix("/operations")


class OperationsServicer(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def GetOperation(self, request: Any, context: Any) -> operations_pb2.Operation:
        name = request.name
        registry = self.calls.registry

        async def work(principal: str | None) -> operations_pb2.Operation:
            await self.calls.require(principal, "ledger.operations.get", name)
            return await self.calls.pool.run(lambda lg: registry.operation(lg.get_json(name)))

        return await self.calls.run(context, "Operations.GetOperation", name, work)

    async def ListOperations(self, request: Any, context: Any) -> operations_pb2.ListOperationsResponse:
        parent = collection(request.name)
        registry = self.calls.registry

        async def work(principal: str | None) -> operations_pb2.ListOperationsResponse:
            await self.calls.require(principal, "ledger.operations.list", parent)
            return await self.calls.pool.run(
                lambda lg: registry.page(
                    lg.list_json(
                        parent, filter=request.filter, page_size=request.page_size, page_token=request.page_token
                    )
                )
            )

        return await self.calls.run(context, "Operations.ListOperations", request.name, work)

    async def CancelOperation(self, request: Any, context: Any) -> empty_pb2.Empty:
        name = request.name

        async def work(principal: str | None) -> empty_pb2.Empty:
            await self.calls.require(principal, "ledger.operations.cancel", name)
            await self.calls.pool.run(lambda lg: _existing(lg, name).cancel(name))
            return empty_pb2.Empty()

        return await self.calls.run(context, "Operations.CancelOperation", name, work)

    async def DeleteOperation(self, request: Any, context: Any) -> empty_pb2.Empty:
        name = request.name

        async def work(principal: str | None) -> empty_pb2.Empty:
            await self.calls.require(principal, "ledger.operations.delete", name)
            await self.calls.pool.run(lambda lg: _existing(lg, name).delete(name))
            return empty_pb2.Empty()

        return await self.calls.run(context, "Operations.DeleteOperation", name, work)

    async def WaitOperation(self, request: Any, context: Any) -> operations_pb2.Operation:
        name = request.name

        async def work(principal: str | None) -> operations_pb2.Operation:
            await self.calls.require(principal, "ledger.operations.get", name)
            return await self._wait(name, self._timeout(request, context))

        return await self.calls.run(context, "Operations.WaitOperation", name, work)

    def _timeout(self, request: Any, context: Any) -> float:
        """The request's timeout, capped by --max-wait as over HTTP, and ending a little before the
        call's deadline, so that the caller gets the latest state rather than DEADLINE_EXCEEDED."""
        timeout = self.calls.service.max_wait
        if request.HasField("timeout"):
            asked = request.timeout.seconds + request.timeout.nanos / 1e9
            if asked < 0:
                raise invalid("timeout", f"{asked}s is negative")
            timeout = min(timeout, asked)
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, max(0.0, remaining - 0.1))
        return timeout

    async def _wait(self, name: str, timeout: float) -> operations_pb2.Operation:
        deadline = time.monotonic() + timeout
        registry = self.calls.registry
        pause = 0.02
        while True:
            state = await self.calls.pool.run(lambda lg: registry.operation(lg.get_json(name)))
            remaining = deadline - time.monotonic()
            if remaining <= 0 or state.done:
                return state
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.5)


class IAMPolicyServicer(iam_policy_pb2_grpc.IAMPolicyServicer):  # type: ignore[misc]
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def GetIamPolicy(self, request: Any, context: Any) -> policy_pb2.Policy:
        async def work(principal: str | None) -> policy_pb2.Policy:
            resource = validate_resource(request.resource)
            await self.calls.require(principal, "ledger.policies.get", resource)
            if request.HasField("options"):
                _policy_options({"requestedPolicyVersion": request.options.requested_policy_version})
            policy = await self.calls.pool.policy(lambda lg: lg.get_policy(resource))
            return json_format.ParseDict(policy, policy_pb2.Policy())

        return await self.calls.run(context, "IAMPolicy.GetIamPolicy", request.resource, work)

    async def SetIamPolicy(self, request: Any, context: Any) -> policy_pb2.Policy:
        async def work(principal: str | None) -> policy_pb2.Policy:
            resource = validate_resource(request.resource)
            await self.calls.require(principal, "ledger.policies.set", resource)
            if not request.HasField("policy"):
                raise invalid("policy", "is required")
            if request.HasField("update_mask"):
                _update_mask(",".join(request.update_mask.paths))
            body = json_format.MessageToDict(request.policy)  # the JSON an HTTP caller sends (etag in base64)
            who = principal or "allUsers"
            policy = await self.calls.pool.policy(lambda lg: lg.set_policy(resource, body, principal=who))
            return json_format.ParseDict(policy, policy_pb2.Policy())

        return await self.calls.run(context, "IAMPolicy.SetIamPolicy", request.resource, work)

    async def TestIamPermissions(self, request: Any, context: Any) -> iam_policy_pb2.TestIamPermissionsResponse:
        async def work(principal: str | None) -> iam_policy_pb2.TestIamPermissionsResponse:
            resource = validate_resource(request.resource)
            held = await self.calls.pool.policy(lambda lg: lg.permissions(principal, resource))
            granted = [p for p in dict.fromkeys(request.permissions) if p in held and p in PERMISSIONS]
            return iam_policy_pb2.TestIamPermissionsResponse(permissions=granted)

        return await self.calls.run(context, "IAMPolicy.TestIamPermissions", request.resource, work)
