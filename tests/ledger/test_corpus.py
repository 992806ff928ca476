"""Real operations, as 34 Google Cloud APIs returned them (tests/corpus/operations, provenance in each
`.src`), kept exactly: `get` and `list` give each document back unchanged, Google's own client
libraries parse what the ledger gives wherever they parse the original, and polling again records
nothing."""

from __future__ import annotations

import importlib
import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner
from google.longrunning import operations_pb2
from google.protobuf import json_format

from ledger import Ledger, LedgerError
from ledger.cli import cli
from ledger.domain.errors import Code

from ..support import log_length

CORPUS = Path(__file__).parents[1] / "corpus" / "operations"
DOCUMENTS = {path.name: orjson.loads(path.read_bytes()) for path in sorted(CORPUS.glob("*.json"))}
POLLS = (CORPUS / "seq-01-then-02.jsonl").read_bytes().splitlines()

# The client libraries whose message types the corpus names; importing one registers its types.
CLIENT_MODULES = [
    "google.cloud.alloydb_v1beta",
    "google.cloud.api_keys_v2",
    "google.cloud.bigtable_admin_v2",
    "google.cloud.common",
    "google.cloud.dataproc_v1",
    "google.cloud.devtools.cloudbuild_v1",
    "google.cloud.documentai_v1",
    "google.cloud.filestore_v1",
    "google.cloud.firestore_admin_v1",
    "google.cloud.gkehub_v1",
    "google.cloud.kms_v1",
    "google.cloud.redis_v1",
    "google.cloud.resourcemanager_v3",
    "google.cloud.run_v2",
    "google.cloud.spanner_admin_database_v1",
    "google.cloud.spanner_admin_instance_v1",
    "google.cloud.speech_v1",
    "google.cloud.speech_v2",
    "google.cloud.storage_control_v2",
    "google.cloud.workflows_v1",
    "google.identity.accesscontextmanager.v1.access_context_manager_pb2",
]


def _lines(documents: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(document) for document in documents]


def _parses(document: object, message: Any) -> bool:
    try:
        json_format.Parse(orjson.dumps(document), message, ignore_unknown_fields=False)
    except json_format.ParseError:
        return False
    return True


@pytest.fixture(scope="module")
def client_types() -> None:
    for module in CLIENT_MODULES:
        importlib.import_module(module)


def test_the_corpus_is_34_real_operations_with_their_provenance() -> None:
    assert len(DOCUMENTS) == 34
    assert all((CORPUS / name).with_suffix(".src").is_file() for name in DOCUMENTS)


def test_every_document_comes_back_exactly(ledger: Ledger, client_types: None) -> None:
    summary = ledger.ingest(_lines(list(DOCUMENTS.values())), snapshots=True)
    assert summary["rejected"] == 0 and summary["operations"] == 34
    for name, document in DOCUMENTS.items():
        got = ledger.get(document["name"])
        assert got == document, name
        assert orjson.loads(ledger.get_json(document["name"])) == document, name
        if _parses(document, operations_pb2.Operation()):
            assert _parses(got, operations_pb2.Operation()), name
    listed: dict[str, Any] = {}
    token = ""
    for _ in range(10):
        page = ledger.list(page_size=7, page_token=token)
        listed.update({op["name"]: op for op in page["operations"]})
        assert _parses(page, operations_pb2.ListOperationsResponse()) == all(
            _parses(op, operations_pb2.Operation()) for op in page["operations"]
        )
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert listed == {document["name"]: document for document in DOCUMENTS.values()}


def test_client_libraries_parse_most_of_the_corpus(client_types: None) -> None:
    """The check above means something only where the original parses: most documents do."""
    parsed = [name for name, document in DOCUMENTS.items() if _parses(document, operations_pb2.Operation())]
    assert len(parsed) >= 28, sorted(set(DOCUMENTS) - set(parsed))


def test_polling_again_in_any_order_records_nothing(ledger: Ledger) -> None:
    documents = list(DOCUMENTS.values())
    assert ledger.ingest(_lines(documents), snapshots=True)["rejected"] == 0
    length = log_length(ledger)
    for again in (documents, documents[::-1]):
        summary = ledger.ingest(_lines(again), snapshots=True)
        assert (summary["recorded"], summary["rejected"], summary["unchanged"]) == (0, 0, 34)
        assert log_length(ledger) == length
    assert ledger.audit()["ok"] is True


@pytest.mark.parametrize("order", [*itertools.permutations(range(len(POLLS))), (0, 1, 0, 1), (1, 0, 1, 0)])
def test_the_polls_of_one_operation_in_any_order(ledger: Ledger, order: tuple[int, ...]) -> None:
    first = ledger.ingest([POLLS[i] for i in order], snapshots=True)
    assert first["rejected"] == 0
    length = log_length(ledger)
    name = orjson.loads(POLLS[0])["name"]
    assert ledger.get(name) == orjson.loads(POLLS[-1])  # done is the latest state, whatever the order
    for again in (POLLS, POLLS[::-1], [POLLS[0]]):
        summary = ledger.ingest(again, snapshots=True)
        assert summary["recorded"] == summary["rejected"] == 0
        assert summary["unchanged"] + summary["stale"] == len(again)
    assert log_length(ledger) == length
    assert ledger.audit()["ok"] is True


def test_polls_from_before_a_delete_are_stale(ledger: Ledger) -> None:
    assert ledger.ingest(POLLS, snapshots=True)["rejected"] == 0
    name = orjson.loads(POLLS[0])["name"]
    ledger.delete(name)
    summary = ledger.ingest(POLLS, snapshots=True)
    assert (summary["recorded"], summary["rejected"], summary["stale"]) == (0, 0, 2)
    newer = orjson.loads(POLLS[0]) | {"metadata": {"@type": "type.googleapis.com/x.v1.M", "note": "new"}}
    reasons: list[str] = []
    ledger.ingest([orjson.dumps(newer)], snapshots=True, on_reject=lambda r: reasons.append(r.reason))
    assert reasons and reasons[0].startswith("FAILED_PRECONDITION") and "deleted" in reasons[0]


def test_reingesting_polls_exits_zero(ledger_url: str, tmp_path: Path) -> None:
    polls = tmp_path / "polls.jsonl"
    polls.write_bytes(b"\n".join([*POLLS, *POLLS[::-1]]) + b"\n")
    for _ in range(2):
        result = CliRunner().invoke(cli, ["--db", ledger_url, "ingest", str(polls), "--snapshots"])
        assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["--db", ledger_url, "audit"])
    assert result.exit_code == 0, result.output


def _gcloud_outputs() -> dict[str, bytes]:
    documents = list(DOCUMENTS.values())
    return {
        "list --format=json": orjson.dumps(documents, option=orjson.OPT_INDENT_2),
        "describe --format=json": b"".join(orjson.dumps(d, option=orjson.OPT_INDENT_2) + b"\n" for d in documents),
        "list (default yaml)": yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True).encode(),
        "a ListOperationsResponse page": orjson.dumps({"operations": documents, "nextPageToken": "x"}) + b"\n",
    }


@pytest.mark.parametrize("shape", sorted(_gcloud_outputs()))
def test_gcloud_outputs_ingest_whole(ledger: Ledger, shape: str) -> None:
    text = _gcloud_outputs()[shape]
    rejected: list[str] = []
    summary = ledger.ingest(
        text.splitlines(keepends=True), snapshots=True, on_reject=lambda r: rejected.append(r.reason)
    )
    assert rejected == [] and summary["operations"] == 34
    assert all(ledger.get(d["name"]) == d for d in DOCUMENTS.values())


def test_a_broken_document_is_its_own_rejection(ledger: Ledger) -> None:
    documents = list(DOCUMENTS.values())[:3]
    text = yaml.safe_dump_all(documents, explicit_start=True).replace("done: true", "done: [", 1)
    reasons: list[tuple[int, str]] = []
    summary = ledger.ingest(
        text.splitlines(keepends=True), snapshots=True, on_reject=lambda r: reasons.append((r.line, r.reason))
    )
    assert summary["rejected"] == 1 and summary["operations"] == 2
    assert reasons[0][1].startswith("INVALID_ARGUMENT: line: not valid YAML")


def test_a_compute_engine_operation_is_refused_for_what_it_is(ledger: Ledger) -> None:
    compute = {
        "kind": "compute#operation",
        "id": "7042412896437419634",
        "name": "operation-1712345678901-61234abcd-1234abcd-5678abcd",
        "operationType": "insert",
        "status": "DONE",
        "progress": 100,
    }
    reasons: list[str] = []
    ledger.ingest([orjson.dumps(compute)], snapshots=True, on_reject=lambda r: reasons.append(r.reason))
    assert reasons == [reasons[0]] and reasons[0].startswith("INVALID_ARGUMENT: kind: compute#operation")
    assert "Compute Engine" in reasons[0] and "does not end in" not in reasons[0]


# -- the API's own times --------------------------------------------------------------------------

# (convention, metadata at creation, metadata once done), each shaped as the corpus shows it; times
# are filled in from a create time C and an end time E.
CONVENTIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "createTime/endTime (most APIs)": ({"createTime": "C"}, {"createTime": "C", "endTime": "E"}),
    "startTime/endTime (Firestore, Spanner)": ({"startTime": "C"}, {"startTime": "C", "endTime": "E"}),
    "createTime/doneTime (Dataproc batches)": ({"createTime": "C"}, {"createTime": "C", "doneTime": "E"}),
    "startTime/lastUpdateTime (Speech v1)": (
        {"startTime": "C", "lastUpdateTime": "C"},
        {"startTime": "C", "lastUpdateTime": "E", "progressPercent": 100},
    ),
    "commonMetadata (Document AI, Cloud Storage)": (
        {"commonMetadata": {"state": "RUNNING", "createTime": "C", "updateTime": "C"}},
        {"commonMetadata": {"state": "SUCCEEDED", "createTime": "C", "updateTime": "E", "endTime": "E"}},
    ),
    "genericMetadata (Vertex AI)": (
        {"genericMetadata": {"createTime": "C", "updateTime": "C"}},
        {"genericMetadata": {"createTime": "C", "updateTime": "E"}},
    ),
    "requestTime/finishTime (Bigtable)": ({"requestTime": "C"}, {"requestTime": "C", "finishTime": "E"}),
    "status and statusHistory (Dataproc clusters)": (
        {"status": {"state": "PENDING", "stateStartTime": "C"}},
        {
            "status": {"state": "DONE", "stateStartTime": "E"},
            "statusHistory": [{"state": "PENDING", "stateStartTime": "C"}, {"state": "RUNNING", "stateStartTime": "C"}],
        },
    ),
}


def _timed(shape: Any, create: str, end: str) -> Any:
    if isinstance(shape, dict):
        return {key: _timed(value, create, end) for key, value in shape.items()}
    if isinstance(shape, list):
        return [_timed(value, create, end) for value in shape]
    return {"C": create, "E": end}.get(shape, shape) if isinstance(shape, str) else shape


def _polls(name: str, convention: str, create: str, end: str) -> tuple[dict[str, Any], dict[str, Any]]:
    running_shape, done_shape = CONVENTIONS[convention]
    kind = "type.googleapis.com/example.v1.OperationMetadata"
    running = {"name": name, "metadata": {"@type": kind, **_timed(running_shape, create, end)}}
    done = {
        "name": name,
        "metadata": {"@type": kind, **_timed(done_shape, create, end)},
        "done": True,
        "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
    }
    return running, done


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_the_ledger_keeps_the_apis_times(ledger: Ledger, tmp_path: Path, convention: str) -> None:
    older = _polls("projects/p/operations/older", convention, "2024-04-01T10:00:00Z", "2024-04-01T10:30:00Z")
    newer = _polls("projects/p/operations/newer", convention, "2024-04-02T09:00:00Z", "2024-04-02T09:00:45.5Z")
    assert ledger.ingest(_lines([older[0], newer[0], older[1], newer[1]]), snapshots=True)["rejected"] == 0
    names = [op["name"] for op in ledger.list("projects/p")["operations"]]
    assert names == ["projects/p/operations/newer", "projects/p/operations/older"]  # newest createTime first
    assert [op["name"] for op in ledger.list(filter='createTime < "2024-04-02T00:00:00Z"')["operations"]] == [names[1]]
    assert ledger.get(names[1], as_of="2024-04-01T10:10:00Z") == older[0]  # running, as polled
    assert ledger.get(names[1], as_of="2024-04-01T10:30:00Z") == older[1]
    with pytest.raises(LedgerError) as missing:
        ledger.get(names[1], as_of="2024-04-01T09:59:59Z")  # not yet created then
    assert missing.value.code == Code.NOT_FOUND
    ledger.export("operations", out=str(tmp_path / "operations.jsonl"))
    exported = {
        row["name"]: row for row in map(orjson.loads, (tmp_path / "operations.jsonl").read_bytes().splitlines())
    }
    assert exported[names[1]]["durationSeconds"] == 1800
    assert exported[names[0]]["durationSeconds"] == 45.5
    assert exported[names[0]]["createTime"] == "2024-04-02T09:00:00Z"


def test_an_api_time_before_the_previous_event_keeps_the_order(ledger: Ledger) -> None:
    """Time never runs backwards within an operation; the rendered JSON keeps the API's value."""
    kind = "type.googleapis.com/example.v1.OperationMetadata"
    running = {"name": "operations/skew", "metadata": {"@type": kind, "createTime": "2024-04-01T10:00:00Z"}}
    done = {
        "name": "operations/skew",
        "metadata": {"@type": kind, "createTime": "2024-04-01T10:00:00Z", "endTime": "2024-04-01T09:00:00Z"},
        "done": True,
    }
    assert ledger.ingest(_lines([running, done]), snapshots=True)["rejected"] == 0
    assert [e["occurredAt"] for e in ledger.history("operations/skew")] == ["2024-04-01T10:00:00Z"] * 3
    assert ledger.get("operations/skew") == done


def test_an_exported_log_of_real_operations_ingests_into_another_ledger(ledger: Ledger, tmp_path: Path) -> None:
    """Event JSON carries the verbatim convention: a copy renders every document exactly too."""
    assert ledger.ingest(_lines(list(DOCUMENTS.values())), snapshots=True)["rejected"] == 0
    ledger.export("events", out=str(tmp_path / "events.jsonl"))
    with Ledger.open(f"sqlite:///{tmp_path}/copy.db") as copy:
        summary = copy.ingest((tmp_path / "events.jsonl").read_bytes().splitlines())
        assert summary["rejected"] == 0
        assert all(copy.get(d["name"]) == d for d in DOCUMENTS.values())
        name = DOCUMENTS["34-apikeys-done-nometadata.json"]["name"]  # done, no metadata, no result

        def content(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: v for k, v in e.items() if k not in ("position", "recordedAt", "hash")} for e in events]

        assert content(copy.history(name)) == content(ledger.history(name))
        assert copy.audit()["ok"] is True
