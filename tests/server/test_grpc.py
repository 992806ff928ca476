"""The gRPC service, driven over loopback by google-api-core's gRPC OperationsClient, its futures,
a real client library's default transport (google-cloud-dataproc), and the stock stubs.

One `ledger serve --grpc-port` process per backend serves every test of this module; each test works
under a collection of its own.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator

import grpc
import httpx
import orjson
import pytest
from google.api_core import exceptions, operation, operations_v1
from google.cloud import dataproc_v1
from google.cloud.dataproc_v1.services.cluster_controller.transports import ClusterControllerGrpcTransport
from google.iam.v1 import iam_policy_pb2, iam_policy_pb2_grpc, policy_pb2
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import descriptor_pb2, duration_pb2, struct_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ledger import Ledger

from .. import protos
from .grpcserving import ADMIN, STRANGER, GrpcServer, serve_with_policies
from .serving import LEDGER

_POOL = protos.POOL  # the example API's acme.v1 types, known to this process as a client's would be
CLUSTER_METADATA = "type.googleapis.com/google.cloud.dataproc.v1.ClusterOperationMetadata"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    yield from serve_with_policies(request, tmp_path_factory)


@pytest.fixture
def collection() -> str:
    return f"tenants/t{uuid.uuid4().hex[:10]}/locations/l"


def _client(server: GrpcServer, principal: str | None = ADMIN) -> operations_v1.OperationsClient:
    return operations_v1.OperationsClient(server.channel(principal))


def _ledger_cli(server: GrpcServer, *args: str, delay: float = 0.0) -> subprocess.Popen[bytes]:
    """Another process that records an event, after `delay` seconds."""
    command = f"sleep {delay}; exec {LEDGER} --db '{server.url}' " + " ".join(f"'{a}'" for a in args)
    return subprocess.Popen(["sh", "-c", command], stdout=subprocess.DEVNULL)


# -- google-api-core's gRPC OperationsClient -----------------------------------------------------


def test_operations_client_gets_lists_pages_cancels_and_deletes(server: GrpcServer, collection: str) -> None:
    with Ledger.open(server.url) as lg:
        names = [f"{collection}/operations/op-{i:03}" for i in range(110)]
        lg.ingest(
            orjson.dumps({"type": "Created", "name": name, "occurredAt": f"2026-01-01T00:{i // 60:02}:{i % 60:02}Z"})
            for i, name in enumerate(names)
        )
        lg.succeed(names[1])
        lg.fail(names[2], code="NOT_FOUND", message="gone")
        client = _client(server)

        got = client.get_operation(names[2])
        assert got.name == names[2] and got.done and got.error.code == 5 and got.error.message == "gone"
        assert got == protos.parse_operation(lg.get(names[2]))  # the stored JSON, Anys packed

        pager = client.list_operations(collection, filter_="done = false")  # pages of 50, the default
        pages = [[op.name for op in page] for page in pager.pages]
        assert [len(page) for page in pages] == [50, 50, 8]
        assert [name for page in pages for name in page] == [n for n in reversed(names) if n not in names[1:3]]
        collection_form = client.list_operations(f"{collection}/operations", filter_="done = true")
        assert {op.name for op in collection_form} == {names[1], names[2]}
        with server.channel(ADMIN) as channel:  # return_partial_success is accepted; nothing is unreachable
            request = operations_pb2.ListOperationsRequest(name=collection, page_size=1, return_partial_success=True)
            page = operations_pb2_grpc.OperationsStub(channel).ListOperations(request)
            assert len(page.operations) == 1 and page.next_page_token and not page.unreachable

        client.cancel_operation(names[3])
        assert lg.get(names[3])["metadata"]["cancelRequested"] is True
        client.delete_operation(names[4])
        with pytest.raises(exceptions.NotFound):
            client.get_operation(names[4])
        with pytest.raises(exceptions.NotFound):  # as over HTTP, a deleted operation is gone
            client.delete_operation(names[4])
        with pytest.raises(exceptions.InvalidArgument, match="filter"):
            list(client.list_operations(collection, filter_="done = = true"))


def test_wait_operation_returns_when_another_process_finishes(server: GrpcServer, collection: str) -> None:
    name = f"{collection}/operations/waited"
    with Ledger.open(server.url) as lg:
        lg.create(name)
    with server.channel(ADMIN) as channel:
        stub = operations_pb2_grpc.OperationsStub(channel)
        still = stub.WaitOperation(
            operations_pb2.WaitOperationRequest(name=name, timeout=duration_pb2.Duration(nanos=10**8))
        )
        assert still.name == name and not still.done
        early = stub.WaitOperation(operations_pb2.WaitOperationRequest(name=name), timeout=0.5)  # the call's deadline
        assert not early.done
        writer = _ledger_cli(server, "succeed", name, delay=0.5)
        waited = stub.WaitOperation(
            operations_pb2.WaitOperationRequest(name=name, timeout=duration_pb2.Duration(seconds=15))
        )
        assert waited.done and waited.response.type_url == "type.googleapis.com/google.protobuf.Empty"
        assert writer.wait(30) == 0
        with pytest.raises(grpc.RpcError) as refused:
            stub.WaitOperation(
                operations_pb2.WaitOperationRequest(name=name, timeout=duration_pb2.Duration(seconds=-1))
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _future(server: GrpcServer, name: str) -> operation.Operation:
    client = _client(server)
    future = operation.from_gapic(
        client.get_operation(name), client, struct_pb2.Struct, metadata_type=struct_pb2.Struct
    )
    assert isinstance(future, operation.Operation)
    return future


def test_from_gapic_polls_until_another_process_succeeds(server: GrpcServer, collection: str) -> None:
    name = f"{collection}/operations/poll-ok"
    with Ledger.open(server.url) as lg:
        lg.create(name, metadata={"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"step": "start"}})
    future = _future(server, name)
    assert not future.done()
    assert future.metadata is not None and future.metadata["step"] == "start"
    response = '{"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"bytes": 10}}'
    writer = _ledger_cli(server, "succeed", name, "--response", response, delay=0.5)
    result = future.result(timeout=30)
    assert writer.wait(30) == 0
    assert isinstance(result, struct_pb2.Struct) and result["bytes"] == 10


def test_from_gapic_raises_the_mapped_exception_for_a_failure(server: GrpcServer, collection: str) -> None:
    name = f"{collection}/operations/poll-fail"
    with Ledger.open(server.url) as lg:
        lg.create(name)
    future = _future(server, name)
    writer = _ledger_cli(server, "fail", name, "--code", "PERMISSION_DENIED", "--message", "no quota", delay=0.5)
    with pytest.raises(exceptions.PermissionDenied, match="no quota"):
        future.result(timeout=30)
    assert writer.wait(30) == 0


def test_from_gapic_reports_cancelled(server: GrpcServer, collection: str) -> None:
    name = f"{collection}/operations/poll-cancel"
    with Ledger.open(server.url) as lg:
        lg.create(name)
    future = _future(server, name)
    assert future.cancel() is True  # CancelOperation over gRPC: records CancelRequested
    with Ledger.open(server.url) as lg:
        assert lg.get(name)["metadata"]["cancelRequested"] is True
    writer = _ledger_cli(server, "fail", name, "--code", "CANCELLED", delay=0.3)
    with pytest.raises(exceptions.Cancelled):
        future.result(timeout=30)
    assert writer.wait(30) == 0
    assert future.cancelled()


# -- a real client library's default (gRPC) transport ------------------------------------------------


def test_dataproc_client_reads_operations_over_its_grpc_transport(server: GrpcServer, collection: str) -> None:
    name = f"{collection}/operations/cluster-create"
    metadata = {"@type": CLUSTER_METADATA, "clusterName": "etl", "operationType": "CREATE", "labels": {"team": "d"}}
    with Ledger.open(server.url) as lg:
        lg.create(name, metadata=metadata)
        lg.create(f"{collection}/operations/other", occurred_at="2020-01-01T00:00:00Z")
    client = dataproc_v1.ClusterControllerClient(
        transport=ClusterControllerGrpcTransport(channel=server.channel(ADMIN))
    )

    got = client.get_operation({"name": name})
    assert got.metadata.type_url == CLUSTER_METADATA
    unpacked = dataproc_v1.ClusterOperationMetadata.deserialize(got.metadata.value)
    assert unpacked.cluster_name == "etl" and unpacked.labels == {"team": "d"}

    listed = client.list_operations(
        {"name": f"{collection}/operations", "filter": f'metadata.@type = "{CLUSTER_METADATA}"'}
    )
    assert [op.name for op in listed.operations] == [name]


# -- google.iam.v1.IAMPolicy -----------------------------------------------------------------------


def test_iam_policy_service_gets_sets_with_etags_and_tests_permissions(server: GrpcServer, collection: str) -> None:
    with server.channel(ADMIN) as channel:
        iam = iam_policy_pb2_grpc.IAMPolicyStub(channel)
        first = iam.GetIamPolicy(iam_policy_pb2.GetIamPolicyRequest(resource=collection))
        assert not first.bindings and first.etag
        wanted = policy_pb2.Policy(
            bindings=[policy_pb2.Binding(role="roles/ledger.deleter", members=[STRANGER])], etag=first.etag
        )
        second = iam.SetIamPolicy(iam_policy_pb2.SetIamPolicyRequest(resource=collection, policy=wanted))
        assert list(second.bindings) == list(wanted.bindings) and second.etag != first.etag and second.version == 1
        with pytest.raises(grpc.RpcError) as stale:
            iam.SetIamPolicy(iam_policy_pb2.SetIamPolicyRequest(resource=collection, policy=wanted))
        assert stale.value.code() == grpc.StatusCode.ABORTED
        assert iam.GetIamPolicy(iam_policy_pb2.GetIamPolicyRequest(resource=collection)) == second
        with Ledger.open(server.url) as lg:
            assert [h["principal"] for h in lg.policy_history(collection)] == [ADMIN]
    with server.channel(STRANGER) as channel:  # the new binding applies at once, over gRPC and HTTP alike
        asked = ["ledger.operations.delete", "ledger.operations.get", "storage.objects.get"]
        answer = iam_policy_pb2_grpc.IAMPolicyStub(channel).TestIamPermissions(
            iam_policy_pb2.TestIamPermissionsRequest(resource=f"{collection}/operations/x", permissions=asked)
        )
        assert list(answer.permissions) == ["ledger.operations.delete", "ledger.operations.get"]
    with server.http.client(STRANGER) as http:
        assert http.post(f"/v1/{collection}:testIamPermissions", json={"permissions": asked}).json() == {
            "permissions": ["ledger.operations.delete", "ledger.operations.get"]
        }


# -- errors, types, health, reflection ---------------------------------------------------------------


def _rich_status(error: grpc.RpcError) -> status_pb2.Status:
    trailer = dict(error.trailing_metadata())
    return status_pb2.Status.FromString(trailer["grpc-status-details-bin"])


def test_errors_carry_the_http_envelope_details(server: GrpcServer, collection: str) -> None:
    with server.channel(ADMIN) as channel:
        stub = operations_pb2_grpc.OperationsStub(channel)
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetOperation(operations_pb2.GetOperationRequest(name=f"{collection}/operations/missing"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    status = _rich_status(missing.value)
    assert status.code == 5 and status.message == missing.value.details()
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and (info.reason, info.domain) == ("NOT_FOUND", "ledger")
    with server.http.client(ADMIN) as http:  # the same message and details as HTTP's envelope
        envelope = http.get(f"/v1/{collection}/operations/missing").json()["error"]
    assert envelope["message"] == status.message and envelope["details"][0]["reason"] == info.reason


def test_a_type_without_a_descriptor_fails_that_call_only_and_says_how_to_supply_it(
    server: GrpcServer, collection: str
) -> None:
    odd = f"{collection}/operations/odd"
    with Ledger.open(server.url) as lg:
        lg.create(odd, metadata={"@type": "type.googleapis.com/nowhere.v1.Unknown", "x": 1})
        lg.create(f"{collection}/operations/fine")
    client = _client(server)
    with pytest.raises(exceptions.FailedPrecondition) as refused:
        client.get_operation(odd)
    assert "nowhere.v1.Unknown" in refused.value.message and "--descriptor-set" in refused.value.message
    assert refused.value.details[0].metadata == {"type": "nowhere.v1.Unknown"}  # the ErrorInfo, unpacked
    assert client.get_operation(f"{collection}/operations/fine").name.endswith("/fine")
    with server.http.client(ADMIN) as http:  # HTTP still serves it as JSON
        assert http.get(f"/v1/{odd}").json()["metadata"]["x"] == 1


def test_health_and_reflection(server: GrpcServer) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with server.channel() as channel:  # both answer without a token, as /healthz does
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "google.longrunning.Operations", "google.iam.v1.IAMPolicy"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        services = {
            s.name for r in reflection.ServerReflectionInfo(iter([request])) for s in r.list_services_response.service
        }
    assert {"google.longrunning.Operations", "google.iam.v1.IAMPolicy", "grpc.health.v1.Health"} <= services
    with server.channel() as channel:  # the default metadata type is described, for tools that print Anys
        ask = reflection_pb2.ServerReflectionRequest(file_containing_symbol="google.cloud.common.OperationMetadata")
        answer = next(iter(reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(iter([ask]))))
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(f) for f in answer.file_descriptor_response.file_descriptor_proto
    ]
    assert any(m.name == "OperationMetadata" for f in files for m in f.message_type)


def test_a_request_larger_than_an_http_body_may_be_is_refused(server: GrpcServer) -> None:
    request = operations_pb2.GetOperationRequest(name="x" * (32 * 1024 * 1024 + 1))
    with server.channel(ADMIN) as channel, pytest.raises(grpc.RpcError) as refused:
        operations_pb2_grpc.OperationsStub(channel).GetOperation(request)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_access_log_names_calls_and_never_tokens(server: GrpcServer, collection: str) -> None:
    with pytest.raises(exceptions.PermissionDenied):
        _client(server, STRANGER).get_operation(f"{collection}/operations/x")
    assert server.http.log is not None
    line = f"{STRANGER} gRPC Operations.GetOperation '{collection}/operations/x' -> PERMISSION_DENIED"
    deadline = time.monotonic() + 10  # the line is written once the answer has gone out
    while line not in (log := server.http.log.read_text()):
        assert time.monotonic() < deadline, log
        time.sleep(0.05)
    assert not any(token in log for token in server.tokens.values())


def test_grpc_calls_are_counted_in_the_servers_metrics(server: GrpcServer, collection: str) -> None:
    with Ledger.open(server.url) as lg:
        lg.create(f"{collection}/operations/counted")
    client = _client(server)
    client.get_operation(f"{collection}/operations/counted")
    with pytest.raises(exceptions.NotFound):
        client.get_operation(f"{collection}/operations/absent")
    wanted = [
        'ledger_requests_total{code="OK",protocol="grpc",route="Operations.GetOperation"}',
        'ledger_requests_total{code="NOT_FOUND",protocol="grpc",route="Operations.GetOperation"}',
        'ledger_request_duration_seconds_count{protocol="grpc",route="Operations.GetOperation"}',
    ]
    deadline = time.monotonic() + 10  # counted once the answer has gone out
    while not all(w in (text := httpx.get(server.http.base + "/metrics").text) for w in wanted):
        assert time.monotonic() < deadline, text[-3000:]
        time.sleep(0.05)
