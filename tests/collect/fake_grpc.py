"""A small google.longrunning.Operations gRPC server over a ledger (the stock servicer of
googleapis-common-protos), so the collector's gRPC client is tested against real gRPC: ListOperations
and GetOperation answer from `Ledger.list` and `Ledger.get`, with a bearer token required."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import json_format

from ledger import Ledger, LedgerError
from ledger.collect.protos import register_ledger_types


class LedgerOperations(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    def __init__(self, url: str, token: str) -> None:
        register_ledger_types()
        self.url, self.token = url, token
        self.calls: list[str] = []
        self.faults: list[tuple[grpc.StatusCode, str]] = []  # answered first, one a call: (code, retry-after)

    def _check(self, context: Any) -> None:
        if self.faults:
            code, wait = self.faults.pop(0)
            if wait:
                context.set_trailing_metadata([("retry-after", wait)])
            context.abort(code, "scripted fault")
        if dict(context.invocation_metadata()).get("authorization") != f"Bearer {self.token}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "a bearer token is required")

    def ListOperations(self, request: Any, context: Any) -> Any:
        self._check(context)
        self.calls.append(f"list {request.filter}")
        with Ledger.open(self.url, create=False) as lg:
            try:
                page = lg.list(
                    request.name, filter=request.filter, page_size=request.page_size, page_token=request.page_token
                )
            except LedgerError as e:
                context.abort(grpc.StatusCode(_status(e.code)), e.message)
        response = operations_pb2.ListOperationsResponse(next_page_token=page.get("nextPageToken", ""))
        for op in page["operations"]:
            json_format.ParseDict(op, response.operations.add())
        return response

    def GetOperation(self, request: Any, context: Any) -> Any:
        self._check(context)
        self.calls.append("get")
        with Ledger.open(self.url, create=False) as lg:
            try:
                op = lg.get(request.name)
            except LedgerError as e:
                context.abort(grpc.StatusCode(_status(e.code)), e.message)
        return json_format.ParseDict(op, operations_pb2.Operation())


def _status(code: int) -> tuple[int, str]:
    value: tuple[int, str] = next(status.value for status in grpc.StatusCode if status.value[0] == code)
    return value


@contextmanager
def serve(url: str, token: str) -> Iterator[tuple[int, LedgerOperations]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = LedgerOperations(url, token)
    operations_pb2_grpc.add_OperationsServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(grace=None)
