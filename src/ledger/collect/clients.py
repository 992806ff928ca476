"""ListOperations and GetOperation against a source: REST (Google's HTTP mapping, JSON as the API returns
it) or gRPC (google.longrunning.Operations, converted to the same JSON by protobuf's mapping).

Every failure becomes a SourceError that says whether a later attempt may succeed (429, 503, 504,
UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, a connection refused) and how long the server
asked to wait (Retry-After). A 401 or UNAUTHENTICATED is answered once by refreshing the credentials
and repeating the request.
"""

from __future__ import annotations

import base64
import email.utils
import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import orjson

from ..domain.errors import Code, LedgerError
from ..domain.values import JSONObject
from . import credentials as auth
from .sources import Source

RETRYABLE_HTTP = {429: "RESOURCE_EXHAUSTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
RETRYABLE_GRPC = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")


class SourceError(Exception):
    def __init__(self, status: str, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message
        self.retryable, self.retry_after = retryable, retry_after


@dataclass(frozen=True)
class Page:
    operations: list[JSONObject]
    next_page_token: str


class OperationsClient(Protocol):
    requests: int  # requests sent, including repeats after a refused token

    def list_page(self, filter_: str, page_token: str) -> Page: ...

    def get(self, name: str) -> JSONObject | None:
        """The operation, or None when the API no longer has it (NOT_FOUND)."""

    def close(self) -> None: ...


def open_client(source: Source) -> OperationsClient:
    credentials = auth.load(source.auth)
    if source.kind == "rest":
        return RestClient(source, credentials)
    return GrpcClient(source, credentials)


def operation_id(name: str) -> str:
    """What follows the name's parent and its `operations` segment (SPEC's parent rule): the part a
    collection URL needs to reach one operation; the whole name when it has no such segment."""
    segments = name.split("/")
    for index in range(len(segments) - 2, -1, -1):
        if segments[index] == "operations":
            return "/".join(segments[index + 1 :])
    return name


class RestClient:
    def __init__(self, source: Source, credentials: Any) -> None:
        import requests

        self.source, self.credentials = source, credentials
        self.session = requests.Session()
        # Given with each request: requests lets REQUESTS_CA_BUNDLE override a session's own setting.
        self.verify: str | bool = source.ca_file or True
        self.token_request = auth.token_request()
        self.requests = 0

    def list_page(self, filter_: str, page_token: str) -> Page:
        params = {"filter": filter_, "pageToken": page_token}
        if self.source.page_size:
            params["pageSize"] = str(self.source.page_size)
        body = self._call(self.source.target, {k: v for k, v in params.items() if v})
        assert body is not None
        operations = body.get("operations", [])
        token = body.get("nextPageToken", "")
        if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
            raise SourceError("INVALID_RESPONSE", "operations is not a list of objects", retryable=False)
        return Page([longrunning(op) for op in operations], token if isinstance(token, str) else "")

    def get(self, name: str) -> JSONObject | None:
        op = self._call(f"{self.source.target}/{quote(operation_id(name), safe='/:@-._~')}", {}, missing_ok=True)
        return None if op is None else longrunning(op)

    def _call(self, url: str, params: dict[str, str], *, missing_ok: bool = False) -> JSONObject | None:
        import requests

        for renew in (False, True):
            headers = _authorization(self.credentials, self.token_request, renew)
            self.requests += 1
            try:
                response = self.session.get(
                    url, params=params, headers=headers, timeout=self.source.timeout, verify=self.verify
                )
            except requests.exceptions.SSLError as e:  # a certificate refused: waiting will not change it
                raise SourceError("UNAVAILABLE", str(e), retryable=False) from None
            except requests.Timeout as e:
                raise SourceError("DEADLINE_EXCEEDED", str(e), retryable=True) from None
            except requests.RequestException as e:
                raise SourceError("UNAVAILABLE", str(e), retryable=True) from None
            if response.status_code != 401 or renew or not headers:
                break
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code != 200:
            envelope_status, message = _error_envelope(response.content)
            status = RETRYABLE_HTTP.get(response.status_code) or envelope_status or f"HTTP {response.status_code}"
            raise SourceError(
                status,
                f"HTTP {response.status_code}: {message}",
                retryable=response.status_code in RETRYABLE_HTTP,
                retry_after=retry_after(response.headers.get("Retry-After")),
            )
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as e:
            raise SourceError("INVALID_RESPONSE", f"not JSON: {e}", retryable=False) from None
        if not isinstance(body, dict):
            raise SourceError("INVALID_RESPONSE", "not a JSON object", retryable=False)
        return body

    def close(self) -> None:
        self.session.close()


def longrunning(op: JSONObject) -> JSONObject:
    """The google.longrunning.Operation in a REST answer. Cloud Storage's JSON API adds `kind`
    ("storage#operation") and `selfLink` to its operations, discovery-API bookkeeping that the message
    has no field for (a client library parsing the answer drops them too); anything else stays, so a
    Compute Engine operation (`compute#operation`, not a google.longrunning.Operation) is still refused
    by the snapshot path, saying why."""
    if op.get("kind") == "compute#operation" or ("kind" not in op and "selfLink" not in op):
        return op
    return {key: value for key, value in op.items() if key not in ("kind", "selfLink")}


def _authorization(credentials: Any, token_request: Any, renew: bool) -> dict[str, str]:
    """A request's headers; a token that cannot be had is UNAUTHENTICATED, retryable when google-auth
    says so (its token endpoint unreachable or busy), not when the grant was refused."""
    import google.auth.exceptions

    try:
        return auth.authorization(credentials, token_request, renew=renew)
    except google.auth.exceptions.TransportError as e:
        raise SourceError("UNAUTHENTICATED", f"no token: {e}", retryable=True) from None
    except google.auth.exceptions.GoogleAuthError as e:
        retryable = bool(getattr(e, "retryable", False))
        raise SourceError("UNAUTHENTICATED", f"no token: {e}", retryable=retryable) from None


def _error_envelope(content: bytes) -> tuple[str, str]:
    """The status and message of Google's error envelope (AIP-193), else no status and the start of
    the body."""
    try:
        error = orjson.loads(content)["error"]
        return str(error.get("status", "")), str(error.get("message", ""))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return "", content[:200].decode("utf-8", errors="replace")


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class GrpcClient:
    def __init__(self, source: Source, credentials: Any) -> None:
        import grpc
        from google.longrunning import operations_pb2_grpc

        from .protos import register_ledger_types

        register_ledger_types()
        for module in source.proto_modules:
            try:
                importlib.import_module(module)  # registers the API's message types for its Any values
            except ImportError as e:
                raise LedgerError(Code.INVALID_ARGUMENT, f"proto_modules: cannot import {module}: {e}") from None
        self.source, self.credentials = source, credentials
        if source.tls:
            roots = _read_ca_file(source.ca_file) if source.ca_file else None
            self.channel = grpc.secure_channel(source.target, grpc.ssl_channel_credentials(root_certificates=roots))
        else:
            self.channel = grpc.insecure_channel(source.target)
        self.stub = operations_pb2_grpc.OperationsStub(self.channel)
        self.token_request = auth.token_request()
        self.requests = 0

    def list_page(self, filter_: str, page_token: str) -> Page:
        from google.longrunning import operations_pb2

        request = operations_pb2.ListOperationsRequest(
            name=self.source.parent, filter=filter_, page_size=self.source.page_size, page_token=page_token
        )
        response = self._call(self.stub.ListOperations, request)
        return Page([operation_json(op) for op in response.operations], response.next_page_token)

    def get(self, name: str) -> JSONObject | None:
        from google.longrunning import operations_pb2

        try:
            return operation_json(self._call(self.stub.GetOperation, operations_pb2.GetOperationRequest(name=name)))
        except SourceError as e:
            if e.status == "NOT_FOUND":
                return None
            raise

    def _call(self, method: Any, request: Any) -> Any:
        import grpc

        for renew in (False, True):
            headers = _authorization(self.credentials, self.token_request, renew)
            metadata = [(key.lower(), value) for key, value in headers.items()]
            self.requests += 1
            try:
                return method(request, metadata=metadata, timeout=self.source.timeout)
            except grpc.RpcError as e:
                code = e.code().name
                if code == "UNAUTHENTICATED" and not renew and headers:
                    continue
                trailing = dict(e.trailing_metadata() or ())
                raise SourceError(
                    code,
                    e.details() or "",
                    retryable=code in RETRYABLE_GRPC,
                    retry_after=retry_after(trailing.get("retry-after")),
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.channel.close()


def _read_ca_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise LedgerError(Code.INVALID_ARGUMENT, f"ca_file: cannot read {path}: {e}") from None


def operation_json(op: Any) -> JSONObject:
    """An Operation message as proto3 JSON. An Any whose type this process does not know (no client
    library registered it) keeps its bytes: `{"@type": ..., "value": base64}`."""
    result: JSONObject = {"name": op.name}
    if op.HasField("metadata"):
        result["metadata"] = _any_json(op.metadata)
    if op.done:
        result["done"] = True
    if op.HasField("error"):
        error: JSONObject = {"code": op.error.code}
        if op.error.message:
            error["message"] = op.error.message
        if op.error.details:
            error["details"] = [_any_json(detail) for detail in op.error.details]
        result["error"] = error
    elif op.HasField("response"):
        result["response"] = _any_json(op.response)
    return result


def _any_json(message: Any) -> JSONObject:
    from google.protobuf import json_format

    try:
        value = json_format.MessageToDict(message)
    except (TypeError, KeyError, json_format.Error):
        return {"@type": message.type_url, "value": base64.b64encode(message.value).decode()}
    assert isinstance(value, dict)
    return value
