"""The real corpus (tests/corpus/operations) read over gRPC: wherever the installed client libraries
define a document's types exactly, GetOperation and ListOperations give, field for field, what HTTP
gives; where none does, the call fails with FAILED_PRECONDITION naming that type."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from google.api_core import exceptions, operations_v1
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import json_format

from ledger import Ledger
from ledger.domain.names import parent_of

from ..ledger.test_corpus import CLIENT_MODULES, DOCUMENTS
from .grpcserving import ADMIN, GrpcServer, serve_with_policies

# What no installed package defines as these documents use it, each with the type the refusal names.
UNPACKABLE = {
    "11-vertex-tensorboard-done.json": "google.cloud.aiplatform.v1beta1.CreateTensorboardOperationMetadata",
    "12-vertex-endpoint-running.json": "google.cloud.aiplatform.v1beta1.CreateEndpointOperationMetadata",
    "21-common-operationmetadata-done.json": "google.cloud.filestore.v1.Instance",  # capacityGb: newer than the library
    "32-firestore-v1beta1-export-running.json": "google.firestore.admin.v1beta1.ExportDocumentsMetadata",
    "33-genomics-v2alpha1-failed.json": "google.genomics.v2alpha1.Metadata",
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    for module in CLIENT_MODULES:  # this process reads the answers as those libraries' users would
        importlib.import_module(module)
    for served in serve_with_policies(request, tmp_path_factory):
        with Ledger.open(served.url) as lg:
            lines = [orjson.dumps(document) for document in DOCUMENTS.values()]
            assert lg.ingest(lines, snapshots=True)["rejected"] == 0
        yield served


def _over_http(server: GrpcServer, name: str) -> dict[str, Any]:
    path = name if name.startswith("operations/") or "/operations/" in name else f"operations/{name}"
    with server.http.client(ADMIN) as http:
        response = http.get(f"/v1/{path}")
    assert response.status_code == 200, (name, response.text)
    return response.json()  # type: ignore[no-any-return]


def _fields(message: Any) -> dict[str, Any]:
    """A message field for field, each Any unpacked (its bytes may order map entries either way).
    Both sides are printed the same way, since real APIs write some values in another proto3 JSON
    form than protobuf prints (enums as numbers in Cloud Run, defaults written out in AlloyDB)."""
    return json_format.MessageToDict(message)


def test_every_corpus_operation_over_grpc_is_what_http_returns(server: GrpcServer) -> None:
    client = operations_v1.OperationsClient(server.channel(ADMIN))
    served = 0
    for file, document in DOCUMENTS.items():
        over_http = _over_http(server, document["name"])
        assert over_http == document, file
        if file in UNPACKABLE:
            with pytest.raises(exceptions.FailedPrecondition) as refused:
                client.get_operation(document["name"], retry=None)
            assert UNPACKABLE[file] in refused.value.message, file
            continue
        over_grpc = client.get_operation(document["name"])
        assert _fields(over_grpc) == _fields(json_format.Parse(orjson.dumps(over_http), operations_pb2.Operation())), (
            file
        )
        served += 1
    assert served == len(DOCUMENTS) - len(UNPACKABLE) == 29


def test_corpus_pages_over_grpc_are_https_pages(server: GrpcServer) -> None:
    """Each collection of the corpus, in pages of 2, with the unpackable documents filtered out."""
    excluded = " AND ".join(f'name != "{DOCUMENTS[f]["name"]}"' for f in UNPACKABLE)
    names = [d["name"] for f, d in DOCUMENTS.items() if f not in UNPACKABLE]
    listed: list[str] = []
    with server.channel(ADMIN) as channel, server.http.client(ADMIN) as http:
        stub = operations_pb2_grpc.OperationsStub(channel)
        for parent in sorted({parent_of(name) for name in names}):
            token = ""
            while True:
                request = operations_pb2.ListOperationsRequest(
                    name=parent, filter=excluded, page_size=2, page_token=token
                )
                page = stub.ListOperations(request)
                path = f"/v1/{parent}/operations" if parent else "/v1/operations"
                over_http = http.get(path, params={"filter": excluded, "pageSize": 2, "pageToken": token}).json()
                assert _fields(page) == _fields(
                    json_format.Parse(orjson.dumps(over_http), operations_pb2.ListOperationsResponse())
                ), parent
                listed += [op.name for op in page.operations]
                token = page.next_page_token
                if not token:
                    break
    assert sorted(listed) == sorted(names)
