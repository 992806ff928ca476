"""The permission matrix over gRPC, checked call by call against the same request over HTTP:
the same refusals (401 -> UNAUTHENTICATED, 403 -> PERMISSION_DENIED), and nothing recorded."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import orjson
import pytest
from google.iam.v1 import iam_policy_pb2, iam_policy_pb2_grpc, policy_pb2
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2

from ledger import Ledger

from ..support import log_length
from .grpcserving import ADMIN, PRODUCER, STRANGER, VIEWER, GrpcServer, serve_with_policies

HTTP_TO_GRPC = {401: grpc.StatusCode.UNAUTHENTICATED, 403: grpc.StatusCode.PERMISSION_DENIED, 200: grpc.StatusCode.OK}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    yield from serve_with_policies(request, tmp_path_factory)


@dataclass(frozen=True)
class Attempt:
    """One call made both ways: `rpc` over gRPC, and `method path body` over HTTP."""

    what: str
    rpc: Callable[[grpc.Channel], Any]
    method: str
    path: str
    body: dict[str, Any] | None = None


def _attempts(name: str, collection: str) -> list[Attempt]:
    ops = operations_pb2_grpc.OperationsStub
    iam = iam_policy_pb2_grpc.IAMPolicyStub
    grant = policy_pb2.Policy(bindings=[policy_pb2.Binding(role="roles/ledger.admin", members=[VIEWER])])
    return [
        Attempt(
            "get", lambda c: ops(c).GetOperation(operations_pb2.GetOperationRequest(name=name)), "GET", f"/v1/{name}"
        ),
        Attempt(
            "list",
            lambda c: ops(c).ListOperations(operations_pb2.ListOperationsRequest(name=collection)),
            "GET",
            f"/v1/{collection}/operations",
        ),
        Attempt(
            "cancel",
            lambda c: ops(c).CancelOperation(operations_pb2.CancelOperationRequest(name=name)),
            "POST",
            f"/v1/{name}:cancel",
            {},
        ),
        Attempt(
            "delete",
            lambda c: ops(c).DeleteOperation(operations_pb2.DeleteOperationRequest(name=name)),
            "DELETE",
            f"/v1/{name}",
        ),
        Attempt(
            "wait",
            lambda c: ops(c).WaitOperation(
                operations_pb2.WaitOperationRequest(name=name, timeout=duration_pb2.Duration(nanos=10**7))
            ),
            "POST",
            f"/v1/{name}:wait",
            {"timeout": "0.01s"},
        ),
        Attempt(
            "getIamPolicy",
            lambda c: iam(c).GetIamPolicy(iam_policy_pb2.GetIamPolicyRequest(resource=collection)),
            "POST",
            f"/v1/{collection}:getIamPolicy",
            {},
        ),
        Attempt(
            "setIamPolicy",
            lambda c: iam(c).SetIamPolicy(iam_policy_pb2.SetIamPolicyRequest(resource=collection, policy=grant)),
            "POST",
            f"/v1/{collection}:setIamPolicy",
            {"policy": {"bindings": [{"role": "roles/ledger.admin", "members": [VIEWER]}]}},
        ),
    ]


def _grpc_code(server: GrpcServer, principal: str | None, attempt: Attempt) -> grpc.StatusCode:
    with server.channel(principal) as channel:
        try:
            attempt.rpc(channel)
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def _http_status(server: GrpcServer, principal: str | None, attempt: Attempt) -> int:
    with server.http.client(principal) as http:
        body = None if attempt.body is None else orjson.dumps(attempt.body)
        return http.request(attempt.method, attempt.path, content=body).status_code


# who may do what on tenants/...: ADMIN everything; VIEWER get, list, wait; PRODUCER and STRANGER nothing
REFUSED = {
    VIEWER: ["cancel", "delete", "getIamPolicy", "setIamPolicy"],
    PRODUCER: ["get", "list", "cancel", "delete", "wait", "getIamPolicy", "setIamPolicy"],
    STRANGER: ["get", "list", "cancel", "delete", "wait", "getIamPolicy", "setIamPolicy"],
    None: ["get", "list", "cancel", "delete", "wait", "getIamPolicy", "setIamPolicy"],  # no token at all
}


def test_the_permission_matrix_matches_http_and_refusals_record_nothing(server: GrpcServer) -> None:
    collection = f"tenants/t{uuid.uuid4().hex[:10]}/locations/l"
    name = f"{collection}/operations/guarded"
    with Ledger.open(server.url) as lg:
        lg.create(name)
        before, policy_before = log_length(lg), lg.policy_history(collection)
        for principal, refused in REFUSED.items():
            for attempt in _attempts(name, collection):
                if attempt.what not in refused:
                    continue
                http = _http_status(server, principal, attempt)
                expected = 401 if principal is None else 403
                assert http == expected, (principal, attempt.what)
                assert _grpc_code(server, principal, attempt) == HTTP_TO_GRPC[http], (principal, attempt.what)
        assert log_length(lg) == before
        assert lg.policy_history(collection) == policy_before
        assert "done" not in lg.get(name) and "cancelRequested" not in lg.get(name)["metadata"]
        for attempt in _attempts(name, collection):  # what the viewer may do, it can, both ways
            if attempt.what not in REFUSED[VIEWER]:
                assert _grpc_code(server, VIEWER, attempt) == grpc.StatusCode.OK, attempt.what
                assert _http_status(server, VIEWER, attempt) == 200, attempt.what


def test_unknown_tokens_and_other_schemes_are_unauthenticated(server: GrpcServer) -> None:
    request = operations_pb2.ListOperationsRequest(name="tenants")
    for header in ("Bearer nope", "Basic eDp5", "Bearer"):
        with grpc.insecure_channel(server.target) as channel, pytest.raises(grpc.RpcError) as refused:
            operations_pb2_grpc.OperationsStub(channel).ListOperations(request, metadata=[("authorization", header)])
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, header
        answer = httpx.get(server.http.base + "/v1/tenants/operations", headers={"Authorization": header})
        assert answer.status_code == 401 and answer.json()["error"]["message"] == refused.value.details()


def test_test_iam_permissions_returns_the_same_subset_as_http(server: GrpcServer) -> None:
    everything = [
        "ledger.operations.get",
        "ledger.operations.list",
        "ledger.operations.cancel",
        "ledger.operations.delete",
        "ledger.events.write",
        "ledger.policies.get",
        "ledger.policies.set",
        "storage.objects.get",
    ]
    resource = "tenants/t/operations/x"
    expected = {
        ADMIN: everything[:7],
        VIEWER: ["ledger.operations.get", "ledger.operations.list"],
        PRODUCER: ["ledger.events.write"],
        STRANGER: [],
    }
    for principal, permitted in expected.items():
        with server.channel(principal) as channel:
            answer = iam_policy_pb2_grpc.IAMPolicyStub(channel).TestIamPermissions(
                iam_policy_pb2.TestIamPermissionsRequest(resource=resource, permissions=everything)
            )
        assert list(answer.permissions) == permitted, principal
        with server.http.client(principal) as http:
            over_http = http.post(f"/v1/{resource}:testIamPermissions", json={"permissions": everything}).json()
        assert over_http.get("permissions", []) == permitted
