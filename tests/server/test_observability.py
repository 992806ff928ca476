"""/metrics, /healthz, /readyz, the JSON access log and the explorer's JSON endpoints, against a real
`ledger serve` on each backend."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledger import Ledger
from ledger.server.access import add_token
from ledger.server.metrics import route_name
from ledger.simulate import simulate_lines

from ..pgproxy import Proxy
from ..support import PG_DSN, drop_schema, with_schema
from .serving import LEDGER, Server, start

ADMIN = "user:sre@example.com"
TENANT = "user:tenant@example.com"
METRICS = (
    "ledger_operations",
    "ledger_events_recorded",
    "ledger_operation_duration_seconds",
    "ledger_view_lag_events",
    "ledger_audit_last_ok",
    "ledger_audit_last_findings",
    "ledger_audit_last_timestamp_seconds",
    "ledger_requests",
    "ledger_request_duration_seconds",
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("observe")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite:///{workdir}/ledger.db"
    elif not PG_DSN:
        pytest.skip("LEDGER_TEST_PG_DSN is not set: PostgreSQL tests need a live database")
    else:
        url = with_schema(PG_DSN, schema)
    tokens_file = workdir / "tokens.json"
    tokens = {p: add_token(tokens_file, p) for p in (ADMIN, TENANT)}
    with Ledger.open(url) as lg:
        lg.set_policy("", {"bindings": [{"role": "roles/ledger.admin", "members": [ADMIN]}]}, principal="local:test")
        viewer = {"bindings": [{"role": "roles/ledger.viewer", "members": [TENANT]}]}
        lg.set_policy("tenants/mine", viewer, principal="local:test")
    server = start(url, workdir, "--tokens", str(tokens_file), "--access-log", "json")
    server.tokens = tokens
    yield server
    server.stop()
    if request.param == "postgresql":
        drop_schema(PG_DSN, schema)


def scrape(server: Server) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of /metrics, parsed by prometheus-client's own parser: sample name -> labels -> value."""
    response = httpx.get(f"{server.base}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    families = list(text_string_to_metric_families(response.text))
    for family in families:
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    samples["__families__"] = {((f.name, f.type),): 0 for f in families}
    return samples


def value(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def test_every_metric_is_there_and_follows_what_is_recorded(server: Server) -> None:
    before = scrape(server)
    families = {name for ((name, _kind),) in before["__families__"]}
    assert set(METRICS) <= families
    collection = f"projects/m{uuid.uuid4().hex[:8]}/locations/l"
    with Ledger.open(server.url) as lg:
        lg.create(f"{collection}/operations/a", verb="metrics-test", occurred_at="2026-03-01T10:00:00Z")
        lg.create(f"{collection}/operations/b", verb="metrics-test", occurred_at="2026-03-01T10:00:00Z")
        lg.progress(f"{collection}/operations/a", progress_percent=50, occurred_at="2026-03-01T10:00:30Z")
        lg.succeed(f"{collection}/operations/a", occurred_at="2026-03-01T10:01:30Z")
        lg.fail(f"{collection}/operations/b", code="CANCELLED", occurred_at="2026-03-01T10:02:00Z")
    with server.client(ADMIN) as client:
        assert client.get("/v1/operations/none-such").status_code == 404
        audit = client.post("/ui/api/audit")
        assert audit.status_code == 200
    after = scrape(server)

    assert (
        value(after, "ledger_events_recorded_total", type="Created")
        == value(before, "ledger_events_recorded_total", type="Created") + 2
    )
    assert value(after, "ledger_events_recorded_total", type="Progressed") >= 1
    assert value(after, "ledger_events_recorded_total", type="Failed") >= 1
    for state in ("SUCCEEDED", "CANCELLED"):
        assert value(after, "ledger_operations", state=state) == value(before, "ledger_operations", state=state) + 1
    count = value(after, "ledger_operation_duration_seconds_count", verb="metrics-test")
    total = value(after, "ledger_operation_duration_seconds_sum", verb="metrics-test")
    assert count == 2 and total == 90 + 120  # a: 90 s create to succeed; b: 120 s to fail
    assert value(after, "ledger_operation_duration_seconds_bucket", verb="metrics-test", le="60.0") == 0
    assert value(after, "ledger_operation_duration_seconds_bucket", verb="metrics-test", le="120.0") == 2
    assert value(after, "ledger_view_lag_events", view="operations") == 0
    assert value(after, "ledger_audit_last_ok") == 1
    assert value(after, "ledger_audit_last_timestamp_seconds") > time.time() - 60
    assert value(after, "ledger_audit_last_findings", severity="error", kind="any") == 0
    assert value(after, "ledger_audit_last_checked", what="operations") >= 2
    notfound = value(after, "ledger_requests_total", protocol="http", route="v1.get", code="404")
    assert notfound == value(before, "ledger_requests_total", protocol="http", route="v1.get", code="404") + 1
    assert value(after, "ledger_request_duration_seconds_count", protocol="http", route="ui.api.audit") >= 1


def test_health_and_readiness(server: Server) -> None:
    assert httpx.get(f"{server.base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.base}/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["viewLag"] == {"operations": 0}


def test_the_access_log_is_one_json_object_a_request(server: Server) -> None:
    marker = f"/v1/projects/log{uuid.uuid4().hex[:8]}/operations/x"
    with server.client(ADMIN) as client:
        assert client.get(marker).status_code == 404
    assert server.log is not None
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in server.log.read_text().splitlines() if marker in line and line.startswith("{")]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    entry = orjson.loads(lines[0])
    assert entry["principal"] == ADMIN and entry["method"] == "GET" and entry["path"] == marker
    assert entry["status"] == 404 and entry["route"] == "v1.get" and entry["durationMs"] >= 0
    assert entry["time"].endswith("Z") and entry["remote"] == "127.0.0.1" and entry["bytes"] > 0


def test_downloads_are_the_cli_output_byte_for_byte(server: Server) -> None:
    name = f"projects/d{uuid.uuid4().hex[:8]}/operations/op-1"
    with Ledger.open(server.url) as lg:
        metadata = {"@type": "type.googleapis.com/google.protobuf.Struct", "step": "copy"}
        lg.create(name, verb="create", metadata=metadata, occurred_at="2026-03-01T10:00:00.5Z")
        lg.progress(name, status_detail="half", progress_percent=50, metadata_patch={"step": "verify"})
        lg.succeed(name, response={"@type": "type.googleapis.com/google.protobuf.Empty"})

    def cli(*args: str) -> bytes:
        return subprocess.run([LEDGER, "--db", server.url, *args], capture_output=True, check=True).stdout

    with server.client(ADMIN) as client:
        assert client.get("/ui/api/operation", params={"name": name}).content == cli("get", name)
        assert client.get("/ui/api/operation", params={"name": name, "version": "2"}).content == cli(
            "get", name, "--version", "2"
        )
        at = "2026-03-01T10:00:01Z"
        assert client.get("/ui/api/operation", params={"name": name, "asOf": at}).content == cli(
            "get", name, "--as-of", at
        )
        assert client.get("/ui/api/history", params={"name": name}).content == cli("history", name)
        parent = name.rsplit("/operations/", 1)[0]
        assert client.get("/ui/api/list", params={"parent": parent}).content == cli("list", parent)
        assert client.get("/ui/api/digest").content == cli("digest")
        digest = client.get("/ui/api/digest").content
        assert client.post("/ui/api/verify", content=digest).json()["ok"] is True
        too_big = client.post("/ui/api/verify", content=b" " * (65 * 1024))
        assert too_big.status_code == 400 and "larger than" in too_big.json()["error"]["message"]
        check = client.get("/ui/api/check", params={"name": name}).json()
        assert check["ok"] is True and check["checked"] == {"operations": 1, "events": 3}


def test_the_explorer_keeps_to_the_callers_policies(server: Server) -> None:
    mine, theirs = "tenants/mine/operations/t1", f"tenants/other{uuid.uuid4().hex[:6]}/operations/t2"
    with Ledger.open(server.url) as lg:
        for name in (mine, theirs):
            if name == mine and lg.list("tenants/mine", filter=f'name = "{mine}"').get("operations"):
                continue
            lg.create(name, verb="tenant-test", occurred_at="2026-03-01T10:00:00Z")
    with httpx.Client(base_url=server.base) as anonymous:
        refused = anonymous.get("/ui/api/timeline")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    with server.client(TENANT) as client:
        timeline = client.get("/ui/api/timeline", params={"from": "0", "to": str(2**50)}).json()
        assert mine in timeline["name"] and theirs not in timeline["name"]
        facets = client.get("/ui/api/facets").json()
        assert set(facets["parent"]) == {"tenants/mine"}
        assert client.get("/ui/api/history", params={"name": mine}).status_code == 200
        assert client.get("/ui/api/history", params={"name": theirs}).status_code == 403
        assert client.get("/ui/api/list").status_code == 403  # every collection needs list on the root
        assert client.post("/ui/api/audit").status_code == 403
    with server.client(ADMIN) as client:
        names = client.get("/ui/api/timeline", params={"from": "0", "to": str(2**50)}).json()["name"]
        assert {mine, theirs} <= set(names)


def test_a_bad_filter_is_invalid_argument_with_its_position(server: Server) -> None:
    with server.client(ADMIN) as client:
        response = client.get("/ui/api/list", params={"filter": 'state = "FAILED" AND colour = "red"'})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and "position 22" in error["message"]


def test_static_pages_load_nothing_from_elsewhere(server: Server) -> None:
    page = httpx.get(f"{server.base}/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for asset in ("app.js", "views.js", "timeline.js", "style.css"):
        body = httpx.get(f"{server.base}/ui/{asset}").text
        assert "http://" not in body and "https://" not in body, asset
    assert httpx.get(f"{server.base}/ui", follow_redirects=False).headers["location"] == "/ui/"
    assert httpx.get(f"{server.base}/ui/nothing.js").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "label"),
    [
        ("GET", "/v1/projects/p/operations/secret-name", "v1.get"),
        ("GET", "/v1/projects/p/operations", "v1.list"),
        ("POST", "/v1/projects/p/operations/x:cancel", "v1.cancel"),
        ("GET", "/v1/nonsense", "v1.unrouted"),
        ("GET", "/ui/api/history", "ui.api.history"),
        ("GET", "/ui/api/made-up-endpoint-123", "ui.api.unrouted"),
        ("GET", "/ui/app.js", "ui.static"),
        ("GET", "/metrics", "metrics"),
        ("GET", "/wp-admin/anything", "unrouted"),
    ],
)
def test_route_labels_never_carry_a_name(method: str, path: str, label: str) -> None:
    assert route_name(method, path, frozenset({"history"})) == label


@pytest.mark.skipif(not PG_DSN, reason="LEDGER_TEST_PG_DSN is not set: PostgreSQL tests need a live database")
def test_readyz_is_503_while_postgresql_is_unreachable_and_200_after(tmp_path: Path) -> None:
    """PostgreSQL seen through a TCP proxy that this test stops and starts again: to the server this is
    PostgreSQL going down and coming back (its connections cut, new ones refused), while the shared
    database server itself keeps running."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(PG_DSN)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    user = f"{parts.username}@" if parts.username else ""
    url = with_schema(urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}")), schema)
    server = start(url, tmp_path, "--allow-anonymous")
    try:
        assert httpx.get(f"{server.base}/readyz").status_code == 200
        proxy.stop()
        down = httpx.get(f"{server.base}/readyz", timeout=30)
        assert down.status_code == 503
        assert down.json()["status"] == "unavailable" and "UNAVAILABLE" in down.json()["detail"]
        assert httpx.get(f"{server.base}/healthz").status_code == 200  # alive all the same
        assert "ledger_database_up 0.0" in httpx.get(f"{server.base}/metrics").text
        proxy.start()
        deadline = time.monotonic() + 20
        while (status := httpx.get(f"{server.base}/readyz", timeout=30).status_code) != 200:
            assert time.monotonic() < deadline, f"/readyz still {status} after PostgreSQL came back"
            time.sleep(0.2)
    finally:
        server.stop()
        proxy.stop()
        drop_schema(PG_DSN, schema)


def test_facets_as_of_agree_with_the_list_as_of(server: Server) -> None:
    with Ledger.open(server.url) as lg:
        lg.ingest(simulate_lines(200))  # the same workload again is all duplicates: nothing changes
        times = ("2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z")
        expected = {
            at: {
                state: len(_every(lg, at, f'state = "{state}"'))
                for state in ("RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
            }
            for at in times
        }
    with server.client(ADMIN) as client:
        settled(lambda: client.get("/ui/api/facets", params={"asOf": times[-1]}).json()["total"] > 0)
        for at in times:
            facets = client.get("/ui/api/facets", params={"asOf": at}).json()
            assert facets["state"] == expected[at], at
            assert facets["total"] == sum(expected[at].values())


def settled(condition: Callable[[], bool]) -> None:
    """Waits for the explorer's fleet index, which rereads the log at most twice a second."""
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "the explorer did not catch up within 5 s"
        time.sleep(0.1)


def _every(lg: Ledger, at: str, filter_: str) -> list[str]:
    names, token = [], ""
    while True:
        page = lg.list(filter=filter_, as_of=at, page_size=1000, page_token=token)
        names += [op["name"] for op in page.get("operations", [])]
        token = page.get("nextPageToken", "")
        if not token:
            return names


def test_a_deleted_operation_leaves_the_timeline_and_is_counted(server: Server) -> None:
    name = f"projects/del{uuid.uuid4().hex[:8]}/operations/gone"
    with Ledger.open(server.url) as lg:
        lg.create(name, verb="delete-test", occurred_at="2026-04-01T10:00:00Z")
    window = {"from": str(1775037600000 - 1000), "to": str(1775037600000 + 1000)}  # 2026-04-01T10:00:00Z
    with server.client(ADMIN) as client:
        settled(lambda: name in client.get("/ui/api/timeline", params=window).json()["name"])
        before = scrape(server)
        with Ledger.open(server.url) as lg:
            lg.delete(name, occurred_at="2026-04-01T10:05:00Z")
        after = scrape(server)  # a scrape reads the log up to now, so the timeline is current after it
        assert name not in client.get("/ui/api/timeline", params=window).json()["name"]
    assert value(after, "ledger_events_recorded_total", type="Deleted") == (
        value(before, "ledger_events_recorded_total", type="Deleted") + 1
    )
    assert value(after, "ledger_operations", state="RUNNING") == value(before, "ledger_operations", state="RUNNING") - 1
