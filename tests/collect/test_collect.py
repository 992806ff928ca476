"""`ledger collect`'s pieces and its command line: sources and their TOML file, backoff, Retry-After,
operation ids, gRPC messages as JSON, a failing source beside a working one, a sweep resumed from its
checkpoint, `--status`, usage errors."""

from __future__ import annotations

import email.utils
import io
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, json_format

from ledger import Ledger, LedgerError
from ledger.collect import collect
from ledger.collect.clients import longrunning, operation_id, operation_json, retry_after
from ledger.collect.pacing import Backoff
from ledger.collect.protos import register_ledger_types
from ledger.collect.reporting import Reporter
from ledger.collect.sources import Auth, load_config, parse_source

from ..server.serving import LEDGER
from .fake_google import PARENT, FakeApi, Script, corpus, evolutions, serve


def _log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_a_failing_source_does_not_stop_the_others(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    script = Script(evolutions(7, stagger=100), serves=100)  # one frame: every operation at once
    stream = io.StringIO()
    with serve(FakeApi(script)) as good, serve(FakeApi(Script(evolutions(3)), tokens={"other"})) as refusing:
        sources = [
            parse_source(good.collection, interval=0.05, sweep_every=2, auth=Auth("anonymous"), rate_limit=100),
            parse_source(refusing.collection, interval=0.05, auth=Auth("anonymous")),
        ]
        ok = collect(url, sources, once=True, reporter=Reporter(stream, progress=False))
    assert not ok  # exit status 1 for cron: a source failed
    with Ledger.open(url) as lg:
        assert len(lg.list(page_size=1000)["operations"]) == len(script.visible())
    errors = [line for line in _log_lines(stream) if line["event"] == "error"]
    assert [e["source"] for e in errors] == [refusing.collection]
    assert errors[0]["error"].startswith("UNAUTHENTICATED: HTTP 401: ")


def test_once_resumes_an_interrupted_sweep_from_its_checkpoint(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    script = Script(evolutions(12, stagger=100), serves=100)  # one frame: every operation at once
    api = FakeApi(script, page_size=3, faults={3: (500, {})})  # the third page fails, not retryable
    with serve(api) as running:
        source = parse_source(running.collection, auth=Auth("anonymous"), rate_limit=100)
        assert not collect(url, [source], once=True, reporter=Reporter(io.StringIO(), progress=False))
        assert [r.query.get("pageToken") for r in api.api_requests] == [None, "3", "6"]
        assert collect(url, [source], once=True, reporter=Reporter(io.StringIO(), progress=False))
    # The second run went on from the third page: nothing was read twice.
    assert [r.query.get("pageToken") for r in api.api_requests] == [None, "3", "6", "6", "9"]
    with Ledger.open(url) as lg:
        assert len(lg.list(page_size=1000)["operations"]) == 12


def test_status_before_any_collection_is_empty_and_reads_never_create_a_database(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/l.db"
    missing = subprocess.run([LEDGER, "--db", db, "collect", "--status"], capture_output=True, check=False)
    assert missing.returncode == 1 and b"UNAVAILABLE" in missing.stderr
    assert not (tmp_path / "l.db").exists()
    subprocess.run([LEDGER, "--db", db, "init"], capture_output=True, check=True)
    result = subprocess.run([LEDGER, "--db", db, "collect", "--status"], capture_output=True, check=True)
    assert orjson.loads(result.stdout) == []


def test_usage_errors(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/l.db"
    no_source = subprocess.run([LEDGER, "--db", db, "collect"], capture_output=True, check=False)
    assert no_source.returncode == 2
    bad = subprocess.run([LEDGER, "--db", db, "collect", "ftp://example.com/x"], capture_output=True, check=False)
    assert bad.returncode == 1 and b"INVALID_ARGUMENT: source" in bad.stderr
    token = tmp_path / "t"
    token.write_text("x")
    both = subprocess.run(
        [LEDGER, "--db", db, "collect", "http://h/v1/operations", "--anonymous", "--token-file", str(token)],
        capture_output=True,
        check=False,
    )
    assert both.returncode == 1 and b"give only one of" in both.stderr


def test_sources_from_urls() -> None:
    rest = parse_source("https://dataproc.googleapis.com/v1/projects/p/regions/us-central1/operations/")
    assert (rest.kind, rest.target, rest.tls) == (
        "rest",
        "https://dataproc.googleapis.com/v1/projects/p/regions/us-central1/operations",
        True,
    )
    assert rest.auth == Auth()  # application default credentials unless told otherwise
    grpc_source = parse_source("grpcs://dataproc.googleapis.com:443/projects/p/regions/r/operations", interval=5)
    assert (grpc_source.kind, grpc_source.target, grpc_source.parent, grpc_source.tls, grpc_source.interval) == (
        "grpc",
        "dataproc.googleapis.com:443",
        "projects/p/regions/r/operations",
        True,
        5,
    )
    assert parse_source("grpc://127.0.0.1:8081/").parent == ""  # the root collection
    for bad, why in [
        ("https://example.com/v1/projects/p", "ending in /operations"),
        ("grpc://127.0.0.1/projects/p", "HOST:PORT"),
        ("file:///tmp/x", "use https://"),
    ]:
        with pytest.raises(LedgerError, match=why):
            parse_source(bad)
    with pytest.raises(LedgerError, match="rate_limit"):
        parse_source("http://h/v1/operations", rate_limit=0)


def test_config_file_gives_defaults_and_each_source_its_own(tmp_path: Path) -> None:
    config = tmp_path / "collect.toml"
    config.write_text(
        """
interval = 60
rate_limit = 2.5
credentials = "/etc/ledger/key.json"

[[source]]
url = "https://dataproc.googleapis.com/v1/projects/acme/regions/us-central1/operations"

[[source]]
url = "https://storage.googleapis.com/storage/v1/b/acme-logs/operations"
interval = 300
filter = "done = false"
hot = "get"

[[source]]
url = "grpc://127.0.0.1:8081/projects/acme"
token_file = "/etc/ledger/ops.token"
proto_modules = ["google.cloud.dataproc_v1"]
"""
    )
    dataproc, storage, ledger_source = load_config(config, {"sweep_every": 4})
    assert (dataproc.interval, dataproc.rate_limit, dataproc.sweep_every) == (60, 2.5, 4)
    assert dataproc.auth == Auth("file", "/etc/ledger/key.json")
    assert (storage.interval, storage.filter, storage.hot) == (300, "done = false", "get")
    assert ledger_source.auth == Auth("token-file", "/etc/ledger/ops.token")
    assert ledger_source.proto_modules == ("google.cloud.dataproc_v1",)
    for text, why in [
        ('[[source]]\nurl = "http://h/v1/operations"\ncolour = 1', "unknown key 'colour'"),
        ('[[source]]\nurl = "http://h/v1/operations"\ninterval = "often"', "is not a float"),
        ("interval = 3", "no \\[\\[source\\]\\] tables"),
        ('[[source]]\nurl = "http://h/v1/operations"\nanonymous = true\ntoken_file = "t"', "give only one"),
        ("[[source]\n", "collect.toml"),
    ]:
        config.write_text(text)
        with pytest.raises(LedgerError, match=why):
            load_config(config)


def test_backoff_is_jittered_exponential_and_honours_retry_after() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(7))
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [backoff.delay(failures, None) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2 and len(set(delays)) > 100  # spread, not in step
    assert all(backoff.delay(1, 30.0) >= 30.0 for _ in range(50))


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(None) is None and retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert 110 < (retry_after(later) or 0) <= 120


def test_operation_ids_follow_the_parent_rule() -> None:
    assert operation_id("projects/p/regions/r/operations/abc") == "abc"
    assert operation_id("operations/accessPolicies/1/create/2") == "accessPolicies/1/create/2"
    assert operation_id("5263634183516942311") == "5263634183516942311"
    assert operation_id("projects/_/buckets/b/anywhereCaches/c/operations/x") == "x"


def test_grpc_operations_become_the_json_a_rest_api_returns() -> None:
    register_ledger_types()
    message = operations_pb2.Operation(name="operations/x", done=True)
    message.error.code = 6
    message.error.message = "exists"
    detail = message.error.details.add()
    detail.type_url = "type.googleapis.com/acme.v1.Unregistered"
    detail.value = b"\x08\x01"
    metadata = json_format.ParseDict(
        {
            "@type": "type.googleapis.com/google.cloud.common.OperationMetadata",
            "verb": "create",
            "createTime": "2026-11-20T10:00:00.250Z",
        },
        any_pb2.Any(),
    )
    message.metadata.CopyFrom(metadata)
    assert operation_json(message) == {
        "name": "operations/x",
        "metadata": {
            "@type": "type.googleapis.com/google.cloud.common.OperationMetadata",
            "createTime": "2026-11-20T10:00:00.250Z",
            "verb": "create",
        },
        "done": True,
        "error": {
            "code": 6,
            "message": "exists",
            "details": [{"@type": "type.googleapis.com/acme.v1.Unregistered", "value": "CAE="}],
        },
    }


def test_cloud_storage_bookkeeping_fields_are_not_part_of_the_operation(tmp_path: Path) -> None:
    """Cloud Storage's JSON API adds `kind` and `selfLink` to each operation; the ledger keeps the
    google.longrunning.Operation, as a client library parsing the answer does."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    name = f"{PARENT}/operations/cache-1"
    plain = {**corpus("04"), "name": name}
    served = {
        "kind": "storage#operation",
        "selfLink": "https://storage.googleapis.com/storage/v1/b/b/operations/cache-1",
        **plain,
    }
    api = FakeApi(Script({name: (0, [served])}, serves=100))
    with serve(api) as running:
        source = parse_source(running.collection, auth=Auth("anonymous"), rate_limit=100)
        assert collect(url, [source], once=True, reporter=Reporter(io.StringIO(), progress=False))
    with Ledger.open(url) as lg:
        assert lg.get(name) == {"name": name, "metadata": plain["metadata"]}
    assert longrunning({"kind": "compute#operation", "name": "x"}) == {"kind": "compute#operation", "name": "x"}


def test_progress_line_on_a_terminal_gives_way_to_log_lines() -> None:
    stream = io.StringIO()
    reporter = Reporter(stream, progress=True)
    reporter.page("https://api/v1/operations", 100, 40)
    reporter.page("https://api/v1/operations", 50, 0)
    reporter.log("sweep", source="https://api/v1/operations", pages=2)
    progress, _, log = stream.getvalue().rpartition("\r\x1b[K")
    assert progress.endswith(
        "collect: 2 pages, 150 operations seen, 40 events recorded (last: https://api/v1/operations)\x1b[K"
    )
    assert orjson.loads(log)["event"] == "sweep"
    quiet = io.StringIO()
    Reporter(quiet, progress=False).page("s", 1, 1)
    assert quiet.getvalue() == ""


def test_the_readme_configuration_loads(tmp_path: Path) -> None:
    """The README's TOML for Dataproc regions and Cloud Storage buckets is a working configuration."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### A configuration for Dataproc regions and Cloud Storage buckets", 1)[1]
    config = tmp_path / "collect.toml"
    config.write_text(section.split("```toml\n", 1)[1].split("```", 1)[0])
    sources = load_config(config)
    assert [(s.url.split("/")[2], s.hot, s.interval) for s in sources] == [
        ("dataproc.googleapis.com", "get", 30),
        ("dataproc.googleapis.com", "get", 30),
        ("storage.googleapis.com", "auto", 300),
        ("storage.googleapis.com", "auto", 300),
    ]
    assert {s.auth for s in sources} == {Auth("file", "/etc/ledger/collector-key.json")}
    assert all(s.kind == "rest" and s.tls and s.rate_limit == 5 and s.sweep_every == 10 for s in sources)


def test_a_proto_module_that_cannot_be_imported_leaves_that_source_out(tmp_path: Path) -> None:
    stream = io.StringIO()
    source = parse_source(
        "grpc://127.0.0.1:9/operations", proto_modules=("acme.no_such_module",), auth=Auth("anonymous")
    )
    assert not collect(f"sqlite:///{tmp_path}/l.db", [source], once=True, reporter=Reporter(stream, progress=False))
    (error,) = [line for line in _log_lines(stream) if line["event"] == "error"]
    assert error["error"].startswith("INVALID_ARGUMENT: proto_modules: cannot import acme.no_such_module")
