"""A LedgerError as a gRPC status: the same code number, message and ErrorInfo that HTTP sends.

google.rpc.Code numbers are gRPC's status codes, so the code passes through unchanged; the details
are the HTTP envelope's own (errors.error_body), carried as a google.rpc.Status in the
`grpc-status-details-bin` trailer, where google-api-core and grpcio-status look for them.
"""

from __future__ import annotations

from typing import Any

import grpc
import orjson
from google.protobuf import json_format
from google.rpc import error_details_pb2 as _error_details  # registers google.rpc.ErrorInfo for the details
from google.rpc import status_pb2

from ...domain.errors import Code, LedgerError
from ..errors import error_body
from .anys import UnpackableError

DETAILS_KEY = "grpc-status-details-bin"
_REGISTERED = (_error_details,)
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_code(code: int) -> Any:
    return _CODES[int(code)]


def rpc_status(error: LedgerError) -> status_pb2.Status:
    """The google.rpc.Status for an error, its details those of the HTTP envelope; a payload that
    cannot be packed names its type in the ErrorInfo's metadata too."""
    named = {"type": error.type_name} if isinstance(error, UnpackableError) and error.type_name else {}
    _, body = error_body(error, **named)
    details = orjson.loads(body)["error"].get("details", [])
    envelope = {"code": int(error.code), "message": error.message, "details": details}
    return json_format.ParseDict(envelope, status_pb2.Status())


async def abort(context: Any, error: LedgerError) -> None:
    """End the call with the error's status; never returns."""
    trailer = ((DETAILS_KEY, rpc_status(error).SerializeToString()),)
    await context.abort(status_code(Code(error.code)), error.message, trailing_metadata=trailer)
