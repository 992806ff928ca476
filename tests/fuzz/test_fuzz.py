"""Hypothesis against the three ways in, on both backends: command-line arguments, ingest lines, and
HTTP requests beyond what the OpenAPI document describes (bodies, paths, headers).

Each finds no traceback and no 5xx, and every refused input leaves the log as it was. Examples are
few and derandomized (`make test` stays fast, and CI sees the same inputs every run;
LEDGER_FUZZ_EXAMPLES=N searches further with fresh inputs); the strategies
lean on the values that once broke things: numbers past 64 bits, deep nesting, the calendar's ends,
long text, surrogates and invisible characters.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Ledger
from ledger.cli import cli
from ledger.server.access import add_token

from ..server.serving import Server, start
from ..support import backend_url, log_length

# LEDGER_FUZZ_EXAMPLES=2000 searches deeper, with fresh random inputs each run (not in `make test`).
DEEPER = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=DEEPER or 60,
    derandomize=not DEEPER,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ADMIN = "user:admin@example.com"

# -- the values that once broke things ----------------------------------------------------------------

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([2**63, 2**64, 2**64 - 1, -(2**63) - 1, 1e16, 1e30, 1e-300]),
)
texts = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.sampled_from(["\u202e", "\u200b", "..", "x" * 3000, "\x00", "\ud800", "operations/../x"]),
)
times = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "3000-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-21T10:00:00+23:59",
        ]
    ),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    texts,
)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, texts),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
) | st.sampled_from([nested(63), nested(64), nested(253)]).map(lambda v: {"x": v})
metadata = st.one_of(json_values, json_values.map(lambda v: {"@type": "type.googleapis.com/x.M", "v": v}))
names = st.one_of(
    st.sampled_from(["operations/a", "operations/b", "projects/p/operations/c"]),
    texts.map(lambda t: f"operations/{t}"),
    texts,
)


# -- command-line arguments -----------------------------------------------------------------------


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(["create", "get", "list", "export", "history", "succeed", "fail", "progress"]))
    args = [command]
    if command in ("create", "get", "history", "succeed", "fail", "progress"):
        args.append(draw(names))
    options: dict[str, st.SearchStrategy[list[str]]] = {
        "create": st.fixed_dictionaries(
            {},
            optional={
                "--metadata": metadata.map(_json_text),
                "--at": times,
                "--verb": texts,
                "--target": texts,
            },
        ).map(_flatten),
        "get": st.fixed_dictionaries({}, optional={"--as-of": times, "--version": _ints()}).map(_flatten),
        "list": st.fixed_dictionaries(
            {}, optional={"--filter": _filters(), "--page-size": _ints(), "--as-of": times, "--page-token": texts}
        ).map(_flatten),
        "export": st.fixed_dictionaries({}, optional={"--since": _ints()}).map(_flatten),
        "history": st.just([]),
        "succeed": st.fixed_dictionaries({}, optional={"--response": metadata.map(_json_text), "--at": times}).map(
            _flatten
        ),
        "fail": st.fixed_dictionaries({"--code": st.one_of(_ints(), texts)}, optional={"--message": texts}).map(
            _flatten
        ),
        "progress": st.fixed_dictionaries({}, optional={"--percent": _ints(), "--detail": texts}).map(_flatten),
    }
    return args + draw(options[command])


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return str(value)


def _ints() -> st.SearchStrategy[str]:
    return st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([2**63, 10**20])).map(str)


def _filters() -> st.SearchStrategy[str]:
    simple = st.sampled_from(["done = true", 'verb = "x"', "metadata.n > 5", "create_time > 0001-01-01T00:30:00+01:00"])
    return st.one_of(
        simple,
        st.integers(min_value=1, max_value=300).map(lambda n: "(" * n + "done = true" + ")" * n),
        st.integers(min_value=1, max_value=1200).map(lambda n: " OR ".join(["done = true"] * n)),
        st.text(alphabet=string.printable, max_size=40),
        texts,
    )


def _flatten(options: dict[str, str]) -> list[str]:
    return [part for option, value in options.items() for part in (option, value)]


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with backend_url(request.param, tmp_path, prefix="fuzz") as url:
        with Ledger.open(url) as lg:
            lg.create("operations/a", occurred_at="2026-11-21T10:00:00Z")
            lg.create("operations/b", occurred_at="2026-11-21T10:00:01Z")
        yield url


def test_command_lines_never_end_in_a_traceback(seeded_url: str) -> None:
    runner = CliRunner()

    @FUZZ
    @given(command_lines())
    def check(args: list[str]) -> None:
        with Ledger.open(seeded_url) as lg:
            before = log_length(lg)
        result = runner.invoke(cli, ["--db", seeded_url, *args])
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exc_info)
        assert result.exit_code in (0, 1, 2), (args, result.output)
        assert "INTERNAL" not in result.stderr, (args, result.stderr)
        if result.exit_code != 0:
            with Ledger.open(seeded_url) as lg:
                assert log_length(lg) == before, (args, result.stderr)

    check()


# -- ingest lines -------------------------------------------------------------------------------------


@st.composite
def event_lines(draw: st.DrawFn) -> bytes:
    event: dict[str, Any] = {
        "type": draw(st.sampled_from(["Created", "Progressed", "Succeeded", "Failed", "CancelRequested", "Deleted"])),
        "name": draw(names),
        "occurredAt": draw(times),
    }
    optional = {
        "verb": texts,
        "target": texts,
        "metadata": metadata,
        "response": metadata,
        "progressPercent": numbers,
        "error": st.fixed_dictionaries({"code": numbers, "message": texts}),
        "version": numbers,
        "metadataPatch": json_values,
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), max_size=3, unique=True)):
        event[key] = draw(optional[key])
    try:
        return orjson.dumps(event)
    except (TypeError, orjson.JSONEncodeError):  # a lone surrogate or an integer past 64 bits: as text
        text = repr(event).encode("utf-8", "surrogatepass")
        return text if draw(st.booleans()) else b'{"type": "Created", "name": "operations/n", "n": 1e400}'


def test_ingest_lines_are_landed_or_rejected_one_by_one(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as lg:

        @FUZZ
        @given(st.lists(event_lines(), min_size=1, max_size=12))
        def check(lines: list[bytes]) -> None:
            before = log_length(lg)
            rejected: list[tuple[int, str]] = []
            summary = lg.ingest(lines, on_reject=lambda r: rejected.append((r.line, r.reason)))
            assert summary["lines"] == len(lines)
            assert log_length(lg) - before == summary["recorded"]
            for number, reason in rejected:
                assert 1 <= number <= len(lines)
                assert reason.split(":")[0] in (
                    "INVALID_ARGUMENT",
                    "FAILED_PRECONDITION",
                    "NOT_FOUND",
                    "ALREADY_EXISTS",
                ), reason

        check()
        assert lg.audit()["ok"]


# -- HTTP requests beyond the schema ---------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("fuzz-serve")
    with backend_url(request.param, workdir, prefix="fuzz") as url:
        tokens_file = workdir / "tokens.json"
        token = add_token(tokens_file, ADMIN)
        with Ledger.open(url) as lg:
            lg.set_policy("", {"bindings": [{"role": "roles/ledger.admin", "members": [ADMIN]}]}, principal="local:t")
            lg.create("operations/a", occurred_at="2026-11-21T10:00:00Z")
        served = start(url, workdir, "--tokens", str(tokens_file))
        served.tokens = {ADMIN: token}
        yield served
        served.stop()


path_segments = st.one_of(
    st.sampled_from(["v1", "operations", "a", ":cancel", ":wait", "events", "..", "%2e%2e", "%ff", "%00", "%"]),
    st.text(alphabet=string.ascii_letters + string.digits + "%:._-~", max_size=12),
)
bodies = st.one_of(
    st.binary(max_size=64),
    json_values.map(_json_text).map(str.encode),
    st.lists(event_lines(), max_size=5).map(b"\n".join),
    st.lists(event_lines(), max_size=5).map(lambda lines: b"[" + b",".join(lines) + b"]"),
)
headers = st.dictionaries(
    st.sampled_from(["Content-Type", "Authorization", "X-Goog-Request-Params", "Accept", "Content-Encoding"]),
    st.text(alphabet=string.printable.strip("\r\n\x0b\x0c"), max_size=40),
    max_size=2,
)


def test_http_requests_get_no_5xx(server: Server) -> None:
    with Ledger.open(server.url) as lg, httpx.Client(base_url=server.base, timeout=30) as http:

        @FUZZ
        @given(
            st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]),
            st.lists(path_segments, min_size=1, max_size=5),
            st.text(alphabet=string.ascii_letters + "=&%_.-:\ud7ff", max_size=40),
            headers,
            bodies,
            st.booleans(),
        )
        def check(
            method: str, segments: list[str], query: str, extra: dict[str, str], body: bytes, authorized: bool
        ) -> None:
            before = log_length(lg)
            sent = {**({"Authorization": f"Bearer {server.tokens[ADMIN]}"} if authorized else {}), **extra}
            url = "/" + "/".join(segments) + ("?" + query if query else "")
            try:
                answer = http.request(method, url, content=body, headers=sent)
            except (httpx.InvalidURL, httpx.LocalProtocolError):  # the client itself refuses to send it
                return
            assert answer.status_code < 500, (method, url, sent, body, answer.text)
            if answer.status_code >= 400:
                assert log_length(lg) == before, (method, url, answer.text)

        check()


explorer_params = st.dictionaries(
    st.sampled_from(
        ["parent", "pageSize", "filter", "pageToken", "asOf", "view", "from", "to", "limit", "name", "version"]
    ),
    st.one_of(times, texts, _ints(), _filters()),
    max_size=4,
)


def test_the_explorer_api_gets_no_5xx(server: Server) -> None:
    endpoints = ["whoami", "list", "facets", "timeline", "operation", "history", "check", "audit", "digest", "verify"]
    with Ledger.open(server.url) as lg, server.client(ADMIN) as http:

        @FUZZ
        @given(st.sampled_from(endpoints), st.sampled_from(["GET", "POST"]), explorer_params, bodies)
        def check(endpoint: str, method: str, params: dict[str, str], body: bytes) -> None:
            before = log_length(lg)
            try:
                answer = http.request(method, f"/ui/api/{endpoint}", params=params, content=body)
            except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError):
                return
            assert answer.status_code < 500, (endpoint, method, params, body, answer.text)
            assert log_length(lg) == before

        check()
