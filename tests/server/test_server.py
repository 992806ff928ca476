"""The REST service, driven over loopback by Google's own client (google-api-core) and by plain HTTP.

One `ledger serve` process per backend serves every test of this module; each test works under a
collection of its own, so tests do not see each other's operations.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from google.api_core import exceptions, operation
from google.api_core.operations_v1 import AbstractOperationsClient
from google.api_core.operations_v1.transports.rest import OperationsRestTransport
from google.auth.credentials import AnonymousCredentials
from google.oauth2.credentials import Credentials
from google.protobuf import struct_pb2

from ledger import Ledger
from ledger.server.access import add_token
from ledger.server.routes import Call, route

from .. import protos
from ..support import backend_url, log_length
from .serving import LEDGER, Server, start

ADMIN, VIEWER, PRODUCER, STRANGER = (
    "user:admin@example.com",
    "user:viewer@example.com",
    "serviceAccount:producer@example.com",
    "user:stranger@example.com",
)
_POOL = protos.POOL  # OperationMetadata must be known to the client's parser, as a real API's types are


def _policy(*bindings: tuple[str, str]) -> dict[str, Any]:
    return {"bindings": [{"role": role, "members": [member]} for role, member in bindings]}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("serve")
    with backend_url(request.param, workdir) as url:
        yield from _serving(url, workdir)


def _serving(url: str, workdir: Path) -> Iterator[Server]:
    tokens_file = workdir / "tokens.json"
    tokens = {p: add_token(tokens_file, p) for p in (ADMIN, VIEWER, PRODUCER, STRANGER)}
    with Ledger.open(url) as lg:
        lg.set_policy("", _policy(("roles/ledger.admin", ADMIN)), principal="local:test")
        tenants = _policy(("roles/ledger.viewer", VIEWER), ("roles/ledger.producer", PRODUCER))
        lg.set_policy("tenants", tenants, principal="local:test")
    server = start(url, workdir, "--tokens", str(tokens_file), "--threads", "4")
    server.tokens = tokens
    yield server
    server.stop()


@pytest.fixture
def collection() -> str:
    """A collection of this test's own, under `tenants/` (which VIEWER may read and PRODUCER write)."""
    return f"tenants/t{uuid.uuid4().hex[:10]}/locations/l"


def _client(
    server: Server, principal: str | None = ADMIN, http_options: dict[str, Any] | None = None
) -> AbstractOperationsClient:
    credentials = Credentials(token=server.tokens[principal]) if principal else AnonymousCredentials()
    transport = OperationsRestTransport(
        host=server.base, credentials=credentials, url_scheme="http", http_options=http_options
    )
    return AbstractOperationsClient(transport=transport)


def _ledger_cli(server: Server, *args: str, delay: float = 0.0) -> subprocess.Popen[bytes]:
    """Another process that records an event, after `delay` seconds."""
    command = f"sleep {delay}; exec {LEDGER} --db '{server.url}' " + " ".join(f"'{a}'" for a in args)
    return subprocess.Popen(["sh", "-c", command], stdout=subprocess.DEVNULL)


# -- google-api-core's client ---------------------------------------------------------------------


def test_client_gets_lists_pages_cancels_and_deletes(server: Server, collection: str) -> None:
    with Ledger.open(server.url) as lg:
        names = [f"{collection}/operations/op-{i}" for i in range(7)]
        for i, name in enumerate(names):
            lg.create(name, verb="build", occurred_at=f"2026-01-01T00:00:0{i}Z")
        lg.succeed(names[1])
        lg.fail(names[2], code="NOT_FOUND", message="gone")
        client = _client(server)

        got = client.get_operation(names[2])
        assert got.name == names[2] and got.done and got.error.code == 5 and got.error.message == "gone"
        assert got == protos.parse_operation(lg.get(names[2]))

        pager = client.list_operations(collection, filter_="done = false", page_size=2)
        listed = [op.name for op in pager]
        assert listed == [names[i] for i in (6, 5, 4, 3, 0)]  # newest createTime first, over three pages

        client.cancel_operation(names[3])
        assert lg.get(names[3])["metadata"]["cancelRequested"] is True
        client.delete_operation(names[4])
        with pytest.raises(exceptions.NotFound):
            client.get_operation(names[4])
        with pytest.raises(exceptions.BadRequest, match="filter"):
            list(client.list_operations(collection, filter_="done = = true"))


def test_operations_proto_binding_for_root_names(server: Server) -> None:
    """operations.proto's own rules: `/v1/{name=operations/**}` and `/v1/{name=operations}`."""
    name = f"operations/root-{uuid.uuid4().hex[:8]}"
    with Ledger.open(server.url) as lg:
        lg.create(name)
    client = _client(
        server,
        http_options={
            "google.longrunning.Operations.GetOperation": [{"method": "get", "uri": "/v1/{name=operations/**}"}],
            "google.longrunning.Operations.ListOperations": [{"method": "get", "uri": "/v1/{name=operations}"}],
            "google.longrunning.Operations.CancelOperation": [
                {"method": "post", "uri": "/v1/{name=operations/**}:cancel", "body": "*"}
            ],
            "google.longrunning.Operations.DeleteOperation": [{"method": "delete", "uri": "/v1/{name=operations/**}"}],
        },
    )
    assert client.get_operation(name).name == name
    assert name in [op.name for op in client.list_operations("operations", filter_="")]
    client.cancel_operation(name)
    assert client.get_operation(name).metadata.value  # metadata now carries cancelRequested
    client.delete_operation(name)
    with pytest.raises(exceptions.NotFound):
        client.get_operation(name)


def _future(server: Server, name: str) -> operation.Operation:
    client = _client(server)
    future = operation.from_gapic(
        client.get_operation(name), client, struct_pb2.Struct, metadata_type=struct_pb2.Struct
    )
    assert isinstance(future, operation.Operation)
    return future


def test_from_gapic_polls_until_another_process_succeeds(server: Server, collection: str) -> None:
    name = f"{collection}/operations/poll-ok"
    with Ledger.open(server.url) as lg:
        lg.create(name, metadata={"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"step": "start"}})
    future = _future(server, name)
    assert not future.done()
    response = '{"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"bytes": 10}}'
    writer = _ledger_cli(server, "succeed", name, "--response", response, delay=0.5)
    result = future.result(timeout=30)
    assert writer.wait(30) == 0
    assert isinstance(result, struct_pb2.Struct) and result["bytes"] == 10


def test_from_gapic_raises_the_mapped_exception_for_a_failure(server: Server, collection: str) -> None:
    name = f"{collection}/operations/poll-fail"
    with Ledger.open(server.url) as lg:
        lg.create(name)
    future = _future(server, name)
    writer = _ledger_cli(server, "fail", name, "--code", "PERMISSION_DENIED", "--message", "no quota", delay=0.5)
    with pytest.raises(exceptions.PermissionDenied, match="no quota"):
        future.result(timeout=30)
    assert writer.wait(30) == 0


def test_from_gapic_reports_cancelled(server: Server, collection: str) -> None:
    name = f"{collection}/operations/poll-cancel"
    with Ledger.open(server.url) as lg:
        lg.create(name)
    future = _future(server, name)
    assert future.cancel() is True  # CancelOperation through the client: records CancelRequested
    with Ledger.open(server.url) as lg:
        assert lg.get(name)["metadata"]["cancelRequested"] is True
    writer = _ledger_cli(server, "fail", name, "--code", "CANCELLED", delay=0.3)
    with pytest.raises(exceptions.GoogleAPICallError):
        future.result(timeout=30)
    assert writer.wait(30) == 0
    assert future.cancelled()


# -- access -----------------------------------------------------------------------------------------


def _status(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == response.status_code
    assert body["error"]["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    return response.status_code, body["error"]["status"]


def test_unauthenticated_calls_are_401(server: Server, collection: str) -> None:
    path = f"/v1/{collection}/operations"
    anonymous = httpx.get(server.base + path)
    assert _status(anonymous) == (401, "UNAUTHENTICATED")
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert _status(httpx.get(server.base + path, headers={"Authorization": "Bearer nope"})) == (401, "UNAUTHENTICATED")
    assert _status(httpx.get(server.base + path, headers={"Authorization": "Basic eDp5"})) == (401, "UNAUTHENTICATED")


def test_a_principal_without_the_role_is_403_and_nothing_is_recorded(server: Server, collection: str) -> None:
    name = f"{collection}/operations/guarded"
    with Ledger.open(server.url) as lg:
        lg.create(name)
        before, policy_before = log_length(lg), lg.policy_history(collection)
        event = {"type": "Succeeded", "name": name, "occurredAt": "2030-01-01T00:00:00Z"}
        attempts = [
            (VIEWER, "POST", f"/v1/{name}:cancel", {}),
            (VIEWER, "DELETE", f"/v1/{name}", None),
            (VIEWER, "POST", "/v1/events", [event]),
            (VIEWER, "POST", f"/v1/{collection}:setIamPolicy", {"policy": _policy(("roles/ledger.admin", VIEWER))}),
            (VIEWER, "POST", f"/v1/{collection}:getIamPolicy", {}),
            (PRODUCER, "GET", f"/v1/{name}", None),
            (PRODUCER, "POST", "/v1/events", [event, {**event, "name": "elsewhere/operations/x"}]),
            (PRODUCER, "POST", "/v1/events", [{**event, "type": "Deleted"}]),  # writing events is not deleting
            (PRODUCER, "POST", "/v1/events", [{**event, "type": "CancelRequested"}]),
            (STRANGER, "GET", f"/v1/{collection}/operations", None),
            (STRANGER, "POST", f"/v1/{name}:wait", {"timeout": "1s"}),
        ]
        for principal, method, path, body in attempts:
            with server.client(principal) as http:
                response = http.request(method, path, content=None if body is None else orjson.dumps(body))
            assert _status(response) == (403, "PERMISSION_DENIED"), (principal, method, path)
        assert log_length(lg) == before
        assert lg.policy_history(collection) == policy_before
        assert "done" not in lg.get(name)
        with server.client(VIEWER) as http:  # what the viewer may do, it can
            assert http.get(f"/v1/{name}").json()["name"] == name


def test_test_iam_permissions_returns_exactly_the_permitted_subset(server: Server, collection: str) -> None:
    everything = [
        "ledger.operations.get",
        "ledger.operations.list",
        "ledger.operations.cancel",
        "ledger.operations.delete",
        "ledger.events.write",
        "ledger.policies.get",
        "ledger.policies.set",
        "storage.objects.get",
    ]
    expected = {
        ADMIN: everything[:7],
        VIEWER: ["ledger.operations.get", "ledger.operations.list"],
        PRODUCER: ["ledger.events.write"],
        STRANGER: [],
    }
    for principal, permitted in expected.items():
        with server.client(principal) as http:
            answer = http.post(f"/v1/{collection}/operations/x:testIamPermissions", json={"permissions": everything})
        assert answer.status_code == 200
        assert answer.json() == ({"permissions": permitted} if permitted else {})
    with server.client(VIEWER) as http:  # outside tenants/, the viewer holds nothing
        assert http.post("/v1/other/operations/x:testIamPermissions", json={"permissions": everything}).json() == {}


def test_set_iam_policy_with_a_stale_etag_is_aborted_and_changes_are_audited(server: Server, collection: str) -> None:
    with server.client(ADMIN) as http:
        first = http.post(f"/v1/{collection}:getIamPolicy", json={}).json()
        assert first == {"etag": "ACAB"}
        policy = {**_policy(("roles/ledger.deleter", STRANGER)), "etag": first["etag"]}
        second = http.post(f"/v1/{collection}:setIamPolicy", json={"policy": policy}).json()
        assert second["bindings"] == [{"role": "roles/ledger.deleter", "members": [STRANGER]}]
        assert second["etag"] != first["etag"] and second["version"] == 1
        stale = http.post(f"/v1/{collection}:setIamPolicy", json={"policy": policy})
        assert _status(stale) == (409, "ABORTED")
        assert http.post(f"/v1/{collection}:getIamPolicy", json={}).json() == second
        bad = http.post(f"/v1/{collection}:setIamPolicy", json={"policy": {"bindings": [{"role": "roles/owner"}]}})
        assert _status(bad) == (400, "INVALID_ARGUMENT") and "role" in bad.json()["error"]["message"]
    with server.client(STRANGER) as http:  # the new binding took effect at once
        answer = http.post(
            f"/v1/{collection}/operations/x:testIamPermissions", json={"permissions": ["ledger.operations.delete"]}
        )
        assert answer.json() == {"permissions": ["ledger.operations.delete"]}
    with Ledger.open(server.url) as lg:
        history = lg.policy_history(collection)
        assert [(h["version"], h["principal"]) for h in history] == [(1, ADMIN)]
        report = lg.audit()
        assert report["ok"] and report["checked"]["policyChanges"] >= 3


def test_audit_finds_a_policy_change_edited_in_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    with Ledger.open(url) as lg:
        lg.set_policy("projects/p", _policy(("roles/ledger.viewer", VIEWER)), principal="local:test")
        lg.set_policy("projects/p", _policy(("roles/ledger.admin", VIEWER)), principal="local:test")
        assert lg.audit()["ok"]
        with lg.parts.db.write() as cursor:  # grant the first change more than it granted
            cursor.execute("SELECT payload FROM ledger_policy_events WHERE version = 1")
            payload = orjson.loads(cursor.fetchone()[0])
            payload["principal"] = "local:someone-else"
            cursor.execute("UPDATE ledger_policy_events SET payload = ? WHERE version = 1", (orjson.dumps(payload),))
        report = lg.audit()
    assert not report["ok"]
    assert [(f["kind"], f["name"]) for f in report["findings"]] == [("policy-chain", "projects/p")]
    assert subprocess.run([LEDGER, "--db", url, "audit"], capture_output=True, check=False).returncode == 3


def test_a_replaced_token_stops_working_without_a_restart(server: Server, tmp_path: Path) -> None:
    assert server.log is not None
    tokens_file = server.log.parent / "tokens.json"
    old = server.tokens[STRANGER]
    new = add_token(tokens_file, STRANGER)
    server.tokens[STRANGER] = new
    deadline = time.monotonic() + 10
    while httpx.get(server.base + "/v1/operations", headers={"Authorization": f"Bearer {old}"}).status_code != 401:
        assert time.monotonic() < deadline, "the old token still works"
        time.sleep(0.2)
    answer = httpx.get(server.base + "/v1/operations", headers={"Authorization": f"Bearer {new}"})
    assert _status(answer) == (403, "PERMISSION_DENIED")  # known again, and still without a role
    assert old not in server.log.read_text() and new not in server.log.read_text()


def test_names_with_unusual_characters_are_addressed_exactly(server: Server, collection: str) -> None:
    names = [f"{collection}/operations/a\\b", f"{collection}/operations/x:y", f"{collection}/operations/caf\u00e9"]
    with Ledger.open(server.url) as lg:
        for name in names:
            lg.create(name)
    with server.client(ADMIN) as http:
        for name in names:
            assert http.get("/v1/" + quote(name)).json()["name"] == name
            answer = http.post(
                "/v1/" + quote(name) + ":testIamPermissions", json={"permissions": ["ledger.operations.get"]}
            )
            assert answer.json() == {"permissions": ["ledger.operations.get"]}
        assert _status(http.get("/v1/" + quote(f"{collection}/operations/x%3Fy"))) == (404, "NOT_FOUND")


def test_the_real_corpus_over_http(server: Server) -> None:
    """Every real operation reads back exactly over HTTP; Speech v1's bare numbers are found as its
    clients address them, `operations/{number}`, and Access Context Manager's longer names as given."""
    corpus = Path(__file__).parents[1] / "corpus" / "operations"
    documents = [orjson.loads(path.read_bytes()) for path in sorted(corpus.glob("*.json"))]
    with Ledger.open(server.url) as lg:
        assert lg.ingest([orjson.dumps(d) for d in documents], snapshots=True)["rejected"] == 0
    with server.client(ADMIN) as http:
        for document in documents:
            name = document["name"]
            path = name if name.startswith("operations/") or "/operations/" in name else f"operations/{name}"
            response = http.get(f"/v1/{path}")
            assert response.status_code == 200, (name, response.text)
            assert response.json() == document
        speech = http.get("/v1/operations/5263634183516942311").json()
        assert speech["name"] == "5263634183516942311" and speech["done"] is True
        assert "5263634183516942311" in [
            op["name"] for op in http.get("/v1/operations?pageSize=1000").json()["operations"]
        ]


def test_policy_changes_by_another_writer_reach_a_cache(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as server_side, Ledger.open(ledger_url) as operator:
        server_side.set_policy("projects/p", _policy(("roles/ledger.viewer", VIEWER)), principal="local:test")
        server_side._policy_store().refresh_seconds = 0  # reread whenever the table changed
        assert "ledger.operations.get" in server_side.permissions(VIEWER, "projects/p/operations/x")
        operator.set_policy("projects/p", {"bindings": []}, principal="local:test")  # a revocation elsewhere
        assert server_side.permissions(VIEWER, "projects/p/operations/x") == frozenset()
        operator.set_policy("projects/p", _policy(("roles/ledger.deleter", VIEWER)), principal="local:test")
        assert "ledger.operations.delete" in server_side.permissions(VIEWER, "projects/p/operations/x")


# -- producers and errors -------------------------------------------------------------------------


def test_events_endpoint_applies_the_ingest_rules_line_by_line(server: Server, collection: str) -> None:
    name = f"{collection}/operations/produced"
    events = [
        {"type": "Created", "name": name, "occurredAt": "2026-01-01T00:00:00Z", "verb": "export"},
        {"type": "Progressed", "name": name, "occurredAt": "2026-01-01T00:00:01Z", "progressPercent": 50},
        {"type": "Progressed", "name": name, "occurredAt": "2026-01-01T00:00:02Z", "progressPercent": 500},
        {"type": "Succeeded", "name": name, "occurredAt": "2026-01-01T00:00:03Z"},
    ]
    with server.client(PRODUCER) as http:
        first = http.post("/v1/events", json=events).json()
        assert first["recorded"] == 3 and first["rejected"] == 1 and first["duplicates"] == 0
        assert [r["status"] for r in first["results"]] == ["RECORDED", "RECORDED", "REJECTED", "RECORDED"]
        assert (
            first["results"][2]["error"]["code"] == 3 and "progressPercent" in first["results"][2]["error"]["message"]
        )
        lines = orjson.dumps(events[0]) + b"\n\n" + orjson.dumps(events[1]) + b"\nnot json\n"
        again = http.post("/v1/events", content=lines, headers={"Content-Type": "application/x-ndjson"}).json()
        assert [(r["line"], r["status"]) for r in again["results"]] == [
            (1, "DUPLICATE"),
            (3, "DUPLICATE"),
            (4, "REJECTED"),
        ]
        assert _status(http.post("/v1/events", content=b"not json")) == (400, "INVALID_ARGUMENT")
    with server.client(VIEWER) as http:
        state = http.get(f"/v1/{name}").json()
    assert state["done"] is True and state["metadata"]["verb"] == "export"


def test_wait_returns_when_another_process_finishes(server: Server, collection: str) -> None:
    name = f"{collection}/operations/waited"
    with Ledger.open(server.url) as lg:
        lg.create(name)
    writer = _ledger_cli(server, "succeed", name, delay=0.5)
    with server.client(ADMIN) as http:
        waited = http.post(f"/v1/{name}:wait", json={"timeout": "20s"}).json()
        assert waited["done"] is True
        assert "done" not in http.post(f"/v1/{collection}/operations/x:wait", json={"timeout": "0.1s"}).json().get(
            "error", {}
        )
        assert _status(http.post(f"/v1/{name}:wait", json={"timeout": "soon"})) == (400, "INVALID_ARGUMENT")
    assert writer.wait(30) == 0


def test_errors_use_the_aip_193_envelope(server: Server, collection: str) -> None:
    with server.client(ADMIN) as http:
        assert _status(http.get(f"/v1/{collection}/operations/missing")) == (404, "NOT_FOUND")
        assert _status(http.get("/v2/nothing")) == (404, "NOT_FOUND")
        assert _status(http.get(f"/v1/{collection}/operations", params={"filter": "nope = 1"})) == (
            400,
            "INVALID_ARGUMENT",
        )
        assert _status(http.get(f"/v1/{collection}/operations", params={"pageSize": "x"})) == (400, "INVALID_ARGUMENT")
        assert _status(http.post(f"/v1/{collection}/operations/x:cancel", content=b"[1]")) == (400, "INVALID_ARGUMENT")
        assert _status(http.post(f"/v1/{collection}/operations/x:cancel", json={"extra": 1})) == (
            400,
            "INVALID_ARGUMENT",
        )
        assert _status(http.post(f"/v1/{collection}/operations/x:explode", json={})) == (404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path", "call"),
    [
        ("GET", "/v1/projects/p/operations/o", Call("get", "projects/p/operations/o")),
        ("GET", "/v1/operations/o", Call("get", "operations/o")),
        ("GET", "/v1/operations/o:x", Call("get", "operations/o:x")),
        ("GET", "/v1/projects/p/operations", Call("list", "projects/p")),
        ("GET", "/v1/operations", Call("list", "")),
        ("GET", "/v1/a/operations/x/operations", Call("list", "a/operations/x")),
        ("GET", "/v1/a/operations/operations", Call("get", "a/operations/operations")),
        ("DELETE", "/v1/operations/o", Call("delete", "operations/o")),
        ("POST", "/v1/p/operations/o:cancel", Call("cancel", "p/operations/o")),
        ("POST", "/v1/operations/o:1:wait", Call("wait", "operations/o:1")),
        ("POST", "/v1/projects/p:getIamPolicy", Call("getIamPolicy", "projects/p")),
        ("POST", "/v1/:setIamPolicy", Call("setIamPolicy", "")),
        ("POST", "/v1/events", Call("events", "")),
        ("GET", "/v1/events", None),
        ("POST", "/v1/p/operations/o", None),
        ("POST", "/v1/projects/p:cancel", None),
        ("DELETE", "/v1/projects/p/operations", None),
        ("GET", "/v1/projects/p/operations/", None),
        ("GET", "/v2/operations/o", None),
        ("GET", "/v1/operations/5263634183516942311", Call("get", "operations/5263634183516942311")),
        ("GET", "/v1/operations/accessPolicies/1/create/2", Call("get", "operations/accessPolicies/1/create/2")),
        (
            "POST",
            "/v1/operations/accessPolicies/1/create/2:cancel",
            Call("cancel", "operations/accessPolicies/1/create/2"),
        ),
        ("GET", "/v1/operations/x/operations", Call("list", "operations/x")),
        ("GET", "/v1/projects/p/jobs/j", None),
    ],
)
def test_routes(method: str, path: str, call: Call | None) -> None:
    assert route(method, path) == call
