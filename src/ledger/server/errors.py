"""Errors on the wire: the AIP-193 envelope with google.rpc's code -> HTTP status mapping.

`{"error": {"code": <HTTP status>, "message": ..., "status": "NOT_FOUND", "details": [ErrorInfo]}}`:
google-api-core turns exactly this into its exception classes.
"""

from __future__ import annotations

import orjson

from ..domain.errors import Code, LedgerError

HTTP_STATUS: dict[Code, int] = {  # google/rpc/code.proto
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
DOMAIN = "ledger"


def error_body(error: LedgerError, **metadata: str) -> tuple[int, bytes]:
    """The HTTP status and envelope bytes for an error; `metadata` goes into its ErrorInfo."""
    code = Code(error.code)
    info: dict[str, object] = {"@type": ERROR_INFO, "reason": code.name, "domain": DOMAIN}
    if metadata:
        info["metadata"] = metadata
    status = HTTP_STATUS[code]
    body = {"error": {"code": status, "message": error.message, "status": code.name, "details": [info]}}
    return status, orjson.dumps(body)
