"""Any payloads for gRPC: types found in installed packages, in protoc descriptor sets, or refused by name;
`ledger types`; and a descriptor set served end to end."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.api_core import exceptions, operations_v1
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

from ledger import Code, Ledger, LedgerError
from ledger.server.access import add_token
from ledger.server.grpc.anys import TypeRegistry, UnpackableError

from .grpcserving import start_grpc
from .serving import LEDGER

CLUSTER_METADATA = "type.googleapis.com/google.cloud.dataproc.v1.ClusterOperationMetadata"


def _operation(**fields: object) -> bytes:
    return orjson.dumps({"name": "projects/p/operations/x", **fields})


def _descriptor_set(tmp_path: Path, package: str, body: str, *, include_imports: bool = True) -> Path:
    """A descriptor set made by protoc (grpcio-tools) from a .proto the test writes."""
    source = tmp_path / f"{package.replace('.', '_')}.proto"
    source.write_text(f'syntax = "proto3";\npackage {package};\nimport "google/protobuf/timestamp.proto";\n{body}\n')
    out = tmp_path / f"{package}.pb"
    command = [sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}", f"--descriptor_set_out={out}", source.name]
    if include_imports:
        command.insert(3, "--include_imports")
    import grpc_tools

    command.insert(3, f"-I{Path(grpc_tools.__file__).parent / '_proto'}")  # the well-known types
    subprocess.run(command, check=True, capture_output=True)
    return out


def test_types_of_installed_packages_are_found_without_configuration() -> None:
    registry = TypeRegistry()
    assert registry.find(CLUSTER_METADATA) == "installed (google/cloud/dataproc_v1/types/operations.proto)"
    assert registry.find("google.cloud.common.OperationMetadata") is not None  # the ledger's default
    assert registry.find("type.googleapis.com/google.type.LatLng") == "installed (google/type/latlng.proto)"
    assert registry.find("google.rpc.BadRequest.FieldViolation") is not None  # a nested message
    assert registry.find("nowhere.v1.Nothing") is None
    metadata = {"@type": CLUSTER_METADATA, "clusterName": "etl", "labels": {"a": "b"}}
    packed = registry.operation(
        _operation(
            metadata=metadata, done=True, response={"@type": "type.googleapis.com/google.type.LatLng", "latitude": 1.5}
        )
    )
    assert packed.metadata.type_url == CLUSTER_METADATA  # kept as given
    assert json_format.MessageToDict(packed)["metadata"] == metadata


def test_a_type_nobody_defines_is_refused_by_name() -> None:
    with pytest.raises(UnpackableError) as refused:
        TypeRegistry().operation(_operation(metadata={"@type": "type.googleapis.com/nowhere.v1.Nothing", "a": 1}))
    assert refused.value.code == Code.FAILED_PRECONDITION
    assert refused.value.type_name == "nowhere.v1.Nothing"
    assert "nowhere.v1.Nothing" in refused.value.message and "--descriptor-set" in refused.value.message


def test_a_field_the_installed_definition_lacks_is_refused_not_dropped() -> None:
    with pytest.raises(UnpackableError) as refused:
        TypeRegistry().operation(_operation(metadata={"@type": CLUSTER_METADATA, "clusterName": "a", "newField": 1}))
    assert refused.value.type_name == "google.cloud.dataproc.v1.ClusterOperationMetadata"
    assert "newField" in refused.value.message and "installed" in refused.value.message
    assert "install a version of the client library" in refused.value.message


def test_descriptor_sets_supply_an_apis_own_types(tmp_path: Path) -> None:
    package = f"shipping{uuid.uuid4().hex[:6]}.v1"
    made = _descriptor_set(
        tmp_path, package, "message Shipment { string id = 1; google.protobuf.Timestamp sent_at = 2; int32 boxes = 3; }"
    )
    assert TypeRegistry().find(f"{package}.Shipment") is None
    registry = TypeRegistry([made])
    assert registry.find(f"type.googleapis.com/{package}.Shipment") == f"descriptor set {made}"
    shipment = {
        "@type": f"type.googleapis.com/{package}.Shipment",
        "id": "s-1",
        "sentAt": "2026-01-01T00:00:00Z",
        "boxes": 3,
    }
    packed = registry.operation(_operation(done=True, response=shipment))
    assert json_format.MessageToDict(packed)["response"] == shipment


def test_bad_descriptor_sets_are_invalid_arguments(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\xff\xff not a descriptor set")
    with pytest.raises(LedgerError, match="not a protoc descriptor set") as bad:
        TypeRegistry([junk])
    assert bad.value.code == Code.INVALID_ARGUMENT
    package = f"lonely{uuid.uuid4().hex[:6]}.v1"
    without_imports = tmp_path / "lonely.pb"
    files = descriptor_pb2.FileDescriptorSet()
    file = files.file.add(name=f"{package}.proto", package=package, dependency=["acme/not_there.proto"])
    file.message_type.add(name="M")
    without_imports.write_bytes(files.SerializeToString())
    with pytest.raises(LedgerError, match="include_imports"):
        TypeRegistry([without_imports])
    newer = _descriptor_set(tmp_path, "google.cloud.dataproc.v1", "message ClusterOperationMetadata { string x = 1; }")
    with pytest.raises(LedgerError, match="cannot replace one that an installed package defines"):
        TypeRegistry([newer])


def test_ledger_types_lists_held_types_and_whether_each_can_be_served(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    package = f"fleet{uuid.uuid4().hex[:6]}.v1"
    made = _descriptor_set(tmp_path, package, "message Job { string id = 1; }")
    with Ledger.open(url) as lg:
        lg.create("projects/p/operations/a")  # google.cloud.common.OperationMetadata
        lg.create("projects/p/operations/b", metadata={"@type": CLUSTER_METADATA, "clusterName": "c"})
        lg.create("projects/p/operations/c", metadata={"@type": CLUSTER_METADATA, "clusterName": "d"})
        lg.succeed("projects/p/operations/c", response={"@type": f"type.googleapis.com/{package}.Job", "id": "j"})
        lg.create("projects/p/operations/d", metadata={"@type": "type.googleapis.com/nowhere.v1.Meta"})
        lg.fail(
            "projects/p/operations/d",
            code=9,
            details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R"}],
        )

    def types(*extra: str) -> dict[str, dict[str, object]]:
        done = subprocess.run([LEDGER, "--db", url, "types", *extra], capture_output=True, check=True)
        return {entry["type"].rsplit("/", 1)[-1]: entry for entry in orjson.loads(done.stdout)["types"]}

    plain = types()
    assert set(plain) == {
        "google.cloud.common.OperationMetadata",
        "google.cloud.dataproc.v1.ClusterOperationMetadata",
        f"{package}.Job",
        "nowhere.v1.Meta",
        "google.rpc.ErrorInfo",
    }
    assert plain["google.cloud.dataproc.v1.ClusterOperationMetadata"]["operations"] == 2
    assert plain["google.cloud.dataproc.v1.ClusterOperationMetadata"]["grpc"] is True
    assert plain["google.rpc.ErrorInfo"]["fields"] == ["error.details"] and plain["google.rpc.ErrorInfo"]["grpc"]
    assert plain[f"{package}.Job"]["grpc"] is False and "--descriptor-set" in str(plain[f"{package}.Job"]["problem"])
    assert plain["nowhere.v1.Meta"]["grpc"] is False
    supplied = types("--descriptor-set", str(made))
    assert (
        supplied[f"{package}.Job"]["grpc"] is True and supplied[f"{package}.Job"]["source"] == f"descriptor set {made}"
    )
    table = subprocess.run(
        [LEDGER, "--db", url, "types", "--format", "table"], capture_output=True, text=True, check=True
    )
    assert "nowhere.v1.Meta" in table.stdout and " no " in table.stdout


def test_serve_packs_types_from_a_descriptor_set(tmp_path: Path) -> None:
    package = f"builds{uuid.uuid4().hex[:6]}.v1"
    made = _descriptor_set(tmp_path, package, "message Build { string id = 1; repeated string steps = 2; }")
    url = f"sqlite:///{tmp_path}/ledger.db"
    name = "projects/p/operations/build"
    build = {"@type": f"type.googleapis.com/{package}.Build", "id": "b-1", "steps": ["fetch", "compile"]}
    with Ledger.open(url) as lg:
        lg.create(name)
        lg.succeed(name, response=build)
        lg.set_policy(
            "",
            {"bindings": [{"role": "roles/ledger.viewer", "members": ["user:u@example.com"]}]},
            principal="local:test",
        )
    tokens = tmp_path / "tokens.json"
    token = add_token(tokens, "user:u@example.com")
    without = start_grpc(url, tmp_path, "--tokens", str(tokens))
    without.http.tokens = {"user:u@example.com": token}
    try:
        with pytest.raises(exceptions.FailedPrecondition, match=f"{package}.Build"):
            operations_v1.OperationsClient(without.channel("user:u@example.com")).get_operation(name)
    finally:
        without.stop()
    served = start_grpc(url, tmp_path, "--tokens", str(tokens), "--descriptor-set", str(made))
    served.http.tokens = {"user:u@example.com": token}
    try:
        got = operations_v1.OperationsClient(served.channel("user:u@example.com")).get_operation(name)
    finally:
        served.stop()
    pool = descriptor_pool.DescriptorPool()  # the client's side: the same .proto, compiled on its own
    for file in descriptor_pb2.FileDescriptorSet.FromString(made.read_bytes()).file:
        pool.Add(file)
    build_class = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.Build"))
    unpacked: Any = build_class.FromString(got.response.value)
    assert (
        got.response.type_url == build["@type"]
        and unpacked.id == "b-1"
        and list(unpacked.steps) == ["fetch", "compile"]
    )
