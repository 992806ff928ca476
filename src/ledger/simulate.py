"""A realistic, deterministic workload: operations as Dataproc-, Cloud Storage-, Batch- and
Vertex-like services record them, with progress, cancellations and failures with error details.

Used by the demo, the tests and the benchmarks; the same seed always gives the same operations.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson

from .domain.operation import CancelRequested, Failed, Operation, Progressed, Succeeded
from .domain.timestamps import Timestamp, parse_timestamp

_SECOND = 1_000_000_000
START = parse_timestamp("2026-01-01T00:00:00Z", "start")
REGIONS = ("us-east1", "us-central1", "europe-west4", "asia-northeast1")
PROJECTS = tuple(f"proj-{i:03d}" for i in range(40))
FAILURES = (
    (8, "Quota 'CPUS' exceeded. Limit: 512.0 in region {region}.", "QUOTA_EXCEEDED"),
    (3, "Invalid value for field 'resource.machineType': 'n9-standard-8'.", "INVALID_ARGUMENT"),
    (13, "Internal error encountered while provisioning; retry.", "INTERNAL_ERROR"),
    (4, "Operation did not finish within the deadline of 3600s.", "DEADLINE"),
    (7, "Permission 'compute.instances.create' denied on the project.", "IAM_PERMISSION_DENIED"),
    (9, "The cluster is not in a state that allows this change.", "FAILED_PRECONDITION"),
)


def simulate_operations(count: int, seed: int = 0) -> Iterator[Operation]:
    """`count` operations, each with its events pending (Created first), in creation order."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    clock = START
    for index in range(count):
        clock = Timestamp(clock + int(rng.expovariate(1 / 20) * _SECOND) + 1)
        service = rng.choices(_SERVICES, weights=(35, 25, 25, 15))[0]
        yield service(rng, index, clock)


def simulate_lines(count: int, seed: int = 0) -> Iterator[bytes]:
    """The workload as event JSON lines, ready for `ledger ingest`: each operation's events in order."""
    for op in simulate_operations(count, seed):
        for event in op.pending:
            body = event.body()
            yield orjson.dumps({k: v for k, v in body.items() if k not in ("version", "recordedAt")}) + b"\n"


def _finish(op: Operation, rng: random.Random, at: Timestamp, region: str, response: dict[str, Any]) -> None:
    """Progress, then the outcome: 70% succeed, 12% fail, 8% are cancelled, 10% still run."""
    steps = rng.randint(1, 3)
    for step in range(steps):
        at = Timestamp(at + int(rng.uniform(5, 600) * _SECOND))
        op.trigger(
            Progressed, at, status_detail=_DETAILS[step % len(_DETAILS)], progress_percent=(step + 1) * 90 // steps
        )
    outcome = rng.random()
    at = Timestamp(at + int(rng.uniform(1, 900) * _SECOND))
    if outcome < 0.70:
        op.trigger(Succeeded, at, response=response)
    elif outcome < 0.82:
        code, message, reason = rng.choice(FAILURES)
        detail = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com"}
        op.trigger(Failed, at, error={"code": code, "message": message.format(region=region), "details": [detail]})
    elif outcome < 0.90:
        op.trigger(CancelRequested, at)
        op.trigger(Failed, Timestamp(at + 2 * _SECOND), error={"code": 1, "message": "Operation was cancelled."})


_DETAILS = ("Provisioning resources", "Running startup actions", "Finalizing")
_EMPTY = {"@type": "type.googleapis.com/google.protobuf.Empty"}


def _dataproc(rng: random.Random, index: int, at: Timestamp) -> Operation:
    project, region = rng.choice(PROJECTS), rng.choice(REGIONS)
    name = f"projects/{project}/regions/{region}/operations/{rng.getrandbits(128):032x}"
    verb = rng.choices(("create", "update", "delete"), weights=(6, 3, 1))[0]
    op = Operation.create(
        name,
        at,
        {
            "verb": verb,
            "target": f"projects/{project}/regions/{region}/clusters/cluster-{index % 500}",
            "api_version": "v1",
            "metadata": None,
            "lifecycle_fields": "common",
            "request_id": None,
        },
    )
    _finish(op, rng, at, region, _EMPTY)
    return op


def _storage(rng: random.Random, index: int, at: Timestamp) -> Operation:
    bucket = f"bucket-{rng.randrange(300):03d}"
    name = f"projects/_/buckets/{bucket}/operations/{rng.getrandbits(40):010X}"
    metadata = {
        "@type": "type.googleapis.com/google.storage.control.v2.BulkRestoreObjectsMetadata",
        "commonMetadata": {"type": "bulk-restore", "progressPercent": 0},
    }
    op = Operation.create(
        name,
        at,
        {
            "verb": "restore",
            "target": f"projects/_/buckets/{bucket}",
            "api_version": "v2",
            "metadata": metadata,
            "lifecycle_fields": "per-api",
            "request_id": f"req-{index}",
        },
    )
    _finish(op, rng, at, "global", _EMPTY)
    return op


def _batch(rng: random.Random, index: int, at: Timestamp) -> Operation:
    project, region = rng.choice(PROJECTS), rng.choice(REGIONS)
    name = f"projects/{project}/locations/{region}/operations/op-{index:09d}"
    op = Operation.create(
        name,
        at,
        {
            "verb": "create",
            "target": f"projects/{project}/locations/{region}/jobs/job-{index}",
            "api_version": "v1",
            "metadata": None,
            "lifecycle_fields": "common",
            "request_id": None,
        },
    )
    response = {"@type": "type.googleapis.com/google.cloud.batch.v1.Job", "name": f"job-{index}", "uid": f"j-{index:x}"}
    _finish(op, rng, at, region, response)
    return op


def _vertex(rng: random.Random, index: int, at: Timestamp) -> Operation:
    project, region = rng.choice(PROJECTS), rng.choice(REGIONS)
    name = f"projects/{project}/locations/{region}/operations/{rng.randrange(10**18, 10**19)}"
    metadata = {
        "@type": "type.googleapis.com/google.cloud.aiplatform.v1.CreateCustomJobOperationMetadata",
        "genericMetadata": {"partialFailures": []},
        "trainingSteps": rng.randrange(100, 10_000),
    }
    op = Operation.create(
        name,
        at,
        {
            "verb": "train",
            "target": f"projects/{project}/locations/{region}/customJobs/{index}",
            "api_version": "v1",
            "metadata": metadata,
            "lifecycle_fields": "none",
            "request_id": None,
        },
    )
    response = {"@type": "type.googleapis.com/google.cloud.aiplatform.v1.CustomJob", "displayName": f"train-{index}"}
    _finish(op, rng, at, region, response)
    return op


_SERVICES = (_dataproc, _storage, _batch, _vertex)
