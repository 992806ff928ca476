"""The message types a gRPC source needs known to print its Any values as JSON: the ledger's own
`google.cloud.common.OperationMetadata` (which googleapis-common-protos lacks; the google-cloud-common
package registers it), so that one ledger collects another's operations over gRPC exactly as they
render. An API's own types come from its client library (`proto_modules` in the config)."""

from __future__ import annotations

import contextlib
import importlib
import threading

_lock = threading.Lock()


def register_ledger_types() -> None:
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf import timestamp_pb2 as _timestamp  # noqa: F401  (registers Timestamp, a dependency)
    from google.rpc import error_details_pb2 as _details  # noqa: F401  (registers ErrorInfo and friends)

    with contextlib.suppress(ImportError):  # without the package, the same descriptor is built below
        importlib.import_module("google.cloud.common")  # registers OperationMetadata
    pool = descriptor_pool.Default()
    with _lock:
        try:
            pool.FindMessageTypeByName("google.cloud.common.OperationMetadata")
            return
        except KeyError:
            pass
        field = descriptor_pb2.FieldDescriptorProto
        timestamp = ".google.protobuf.Timestamp"
        fields = [
            ("create_time", "createTime", field.TYPE_MESSAGE, timestamp),
            ("end_time", "endTime", field.TYPE_MESSAGE, timestamp),
            ("target", "target", field.TYPE_STRING, ""),
            ("verb", "verb", field.TYPE_STRING, ""),
            ("status_detail", "statusDetail", field.TYPE_STRING, ""),
            ("cancel_requested", "cancelRequested", field.TYPE_BOOL, ""),
            ("api_version", "apiVersion", field.TYPE_STRING, ""),
        ]
        message = descriptor_pb2.DescriptorProto(name="OperationMetadata")
        for number, (name, json_name, kind, type_name) in enumerate(fields, start=1):
            added = message.field.add(
                name=name, json_name=json_name, number=number, type=kind, label=field.LABEL_OPTIONAL
            )
            if type_name:
                added.type_name = type_name
        pool.Add(
            descriptor_pb2.FileDescriptorProto(
                name="google/cloud/common/operation_metadata.proto",
                package="google.cloud.common",
                syntax="proto3",
                dependency=["google/protobuf/timestamp.proto"],
                message_type=[message],
            )
        )
