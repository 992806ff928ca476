"""Protobuf types for the conformance test: google.cloud.common.OperationMetadata, which
googleapis-common-protos lacks (the google-cloud-common package registers it), and an example API's
own metadata and response types."""

from __future__ import annotations

from typing import Any

import orjson
from google.cloud import common as _common  # registers google.cloud.common.OperationMetadata
from google.longrunning import operations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, json_format
from google.protobuf import timestamp_pb2 as _timestamp  # registers google/protobuf/timestamp.proto
from google.rpc import error_details_pb2 as _details  # registers google.rpc.ErrorInfo and friends

F = descriptor_pb2.FieldDescriptorProto
_REGISTERED = (_common, _timestamp, _details)


def _field(name: str, number: int, kind: int, type_name: str = "") -> descriptor_pb2.FieldDescriptorProto:
    json_name = name.split("_", maxsplit=1)[0] + "".join(part.title() for part in name.split("_")[1:])
    field = F(name=name, number=number, type=kind, label=F.LABEL_OPTIONAL, json_name=json_name)  # type: ignore[arg-type]
    if type_name:
        field.type_name = type_name
    return field


def _lifecycle_fields(detail: str, cancelled: str) -> list[descriptor_pb2.FieldDescriptorProto]:
    ts = ".google.protobuf.Timestamp"
    return [
        _field("create_time", 1, F.TYPE_MESSAGE, ts),
        _field("end_time", 2, F.TYPE_MESSAGE, ts),
        _field("target", 3, F.TYPE_STRING),
        _field("verb", 4, F.TYPE_STRING),
        _field(detail, 5, F.TYPE_STRING),
        _field(cancelled, 6, F.TYPE_BOOL),
        _field("api_version", 7, F.TYPE_STRING),
    ]


def _build_pool() -> Any:
    pool = descriptor_pool.Default()
    try:
        pool.FindMessageTypeByName("acme.v1.Build")
        return pool
    except KeyError:
        pass
    example = descriptor_pb2.FileDescriptorProto(
        name="acme/v1/builds.proto", package="acme.v1", syntax="proto3", dependency=["google/protobuf/timestamp.proto"]
    )
    stage = example.message_type.add(name="Stage")
    stage.field.extend([_field("name", 1, F.TYPE_STRING), _field("done", 2, F.TYPE_INT32)])
    per_api = example.message_type.add(name="BuildMetadata")
    per_api.field.extend(_lifecycle_fields("status_message", "requested_cancellation"))
    per_api.field.extend([_field("step", 8, F.TYPE_STRING), _field("stage", 9, F.TYPE_MESSAGE, ".acme.v1.Stage")])
    build = example.message_type.add(name="Build")
    build.field.extend([_field("id", 1, F.TYPE_STRING), _field("image", 2, F.TYPE_STRING)])
    pool.Add(example)
    return pool


POOL = _build_pool()


def parse_operation(operation: dict[str, Any]) -> operations_pb2.Operation:
    """Parse as Google's clients do: unknown fields are errors, every Any must resolve."""
    message = operations_pb2.Operation()
    json_format.Parse(orjson.dumps(operation).decode(), message, ignore_unknown_fields=False, descriptor_pool=POOL)
    return message
