"""Acceptance 1: every Operation JSON the ledger renders parses with Google's own protobuf types."""

from __future__ import annotations

from typing import Any

import pytest
from google.longrunning import operations_pb2
from google.protobuf import json_format

from ledger import Ledger

from ..protos import POOL, parse_operation

T0 = "2026-11-21T10:00:00Z"
BUILD_META = "type.googleapis.com/acme.v1.BuildMetadata"
ERROR_INFO = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "QUOTA", "domain": "example.com"}


def _scenarios(lg: Ledger) -> dict[str, dict[str, Any]]:
    rendered: dict[str, dict[str, Any]] = {}
    rendered["running"] = lg.create("operations/running", verb="create", target="t", api_version="v1", occurred_at=T0)
    rendered["running-progressed"] = lg.progress("operations/running", status_detail="half way", progress_percent=50)

    lg.create("projects/p/operations/ok", verb="create", occurred_at="2026-11-21T10:00:00.5Z")
    rendered["succeeded-empty"] = lg.succeed("projects/p/operations/ok", occurred_at="2026-11-21T10:00:01.123456789Z")

    lg.create("projects/p/operations/built", occurred_at=T0)
    response = {"@type": "type.googleapis.com/acme.v1.Build", "id": "b-1", "image": "gcr.io/x"}
    rendered["succeeded-response"] = lg.succeed("projects/p/operations/built", response=response)

    lg.create("projects/p/locations/l/operations/bad", verb="run", occurred_at=T0)
    rendered["failed"] = lg.fail(
        "projects/p/locations/l/operations/bad", code="RESOURCE_EXHAUSTED", message="quota", details=[ERROR_INFO]
    )

    lg.create("projects/_/buckets/b/operations/C894F35J", occurred_at=T0)
    rendered["cancel-requested"] = lg.cancel("projects/_/buckets/b/operations/C894F35J")
    rendered["cancelled"] = lg.fail("projects/_/buckets/b/operations/C894F35J", code=1)

    custom = {"@type": BUILD_META, "step": "fetch", "stage": {"name": "fetch", "done": 1}}
    rendered["custom"] = lg.create("operations/custom", metadata=custom, occurred_at=T0)
    rendered["custom-patched"] = lg.progress(
        "operations/custom", metadata_patch={"step": "compile", "stage": {"done": 2}}
    )

    per_api = {"@type": BUILD_META, "step": "fetch"}
    lg.create(
        "operations/per-api",
        verb="build",
        target="builds/1",
        metadata=per_api,
        lifecycle_fields="per-api",
        api_version="v2",
        occurred_at=T0,
    )
    lg.progress("operations/per-api", status_detail="compiling")
    rendered["per-api-cancel"] = lg.cancel("operations/per-api")
    rendered["per-api-done"] = lg.fail("operations/per-api", code="CANCELLED", message="by user")
    return rendered


def test_every_rendering_parses_as_a_google_operation(ledger: Ledger) -> None:
    for label, operation in _scenarios(ledger).items():
        message = parse_operation(operation)
        assert message.name == operation["name"], label
        back = json_format.MessageToDict(message, descriptor_pool=POOL)
        assert back["done"] if operation.get("done") else "done" not in back, label


def test_key_order_done_and_exactly_one_result(ledger: Ledger) -> None:
    for label, operation in _scenarios(ledger).items():
        keys = list(operation)
        assert keys[:2] == ["name", "metadata"], label
        assert next(iter(operation["metadata"])) == "@type", label
        if operation.get("done"):
            assert operation["done"] is True
            assert len(keys) == 4 and keys[2] == "done" and keys[3] in ("error", "response"), label
            result = operation[keys[3]]
            assert "@type" not in result or next(iter(result)) == "@type"
        else:
            assert keys == ["name", "metadata"], label


def test_exact_renderings(ledger: Ledger) -> None:
    r = _scenarios(ledger)
    assert r["succeeded-empty"] == {
        "name": "projects/p/operations/ok",
        "metadata": {
            "@type": "type.googleapis.com/google.cloud.common.OperationMetadata",
            "createTime": "2026-11-21T10:00:00.500Z",
            "endTime": "2026-11-21T10:00:01.123456789Z",
            "verb": "create",
        },
        "done": True,
        "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
    }
    assert r["cancelled"]["error"] == {"code": 1}
    assert r["failed"]["error"] == {"code": 8, "message": "quota", "details": [ERROR_INFO]}
    assert r["custom-patched"]["metadata"] == {
        "@type": BUILD_META,
        "step": "compile",
        "stage": {"name": "fetch", "done": 2},
    }
    per_api = r["per-api-done"]["metadata"]
    assert per_api["statusMessage"] == "compiling"
    assert per_api["requestedCancellation"] is True
    assert "statusDetail" not in per_api
    assert "cancelRequested" not in per_api
    assert r["cancel-requested"]["metadata"]["cancelRequested"] is True


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "operations/x", "metadata": {"@type": BUILD_META}, "kind": "extra"},
        {"name": "operations/x", "metadata": {"@type": "type.googleapis.com/unknown.Type"}},
        {"name": "operations/x", "metadata": {"@type": BUILD_META, "nope": 1}},
    ],
)
def test_the_parser_really_is_strict(bad: dict[str, Any]) -> None:
    """The conformance check could not pass by accident: Google's parser rejects what it should."""
    with pytest.raises(json_format.ParseError):
        parse_operation(bad)
    assert isinstance(operations_pb2.Operation(), operations_pb2.Operation)
