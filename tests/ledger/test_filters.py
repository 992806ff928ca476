"""Acceptance 3.1 and 3.2: AIP-160 filters against a fixture whose expected results are computed
by plain Python predicates; malformed filters are INVALID_ARGUMENT; values never reach SQL text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Code, Ledger, LedgerError
from ledger.projections.compiler import compile_filter
from ledger.projections.filters import parse_filter
from ledger.storage.postgres import PostgresDialect
from ledger.storage.sqlite import SQLiteDialect

from ..support import NO_POSTGRES

BUILD = "type.googleapis.com/acme.v1.BuildMetadata"
COMMON = "type.googleapis.com/google.cloud.common.OperationMetadata"
RESULT = "type.googleapis.com/acme.v1.Build"


@dataclass
class Op:
    """The truth about one fixture operation, written down independently of the ledger."""

    name: str
    created: str  # seconds past 10:00:00Z on 2026-11-21
    verb: str = ""
    target: str = ""
    outcome: str = "RUNNING"  # SUCCEEDED FAILED CANCELLED DELETED
    code: int | None = None
    message: str = ""
    cancel: bool = False
    metadata: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    ended: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def parent(self) -> str:
        return self.name.rsplit("/operations/", 1)[0] if "/operations/" in self.name else ""

    @property
    def done(self) -> bool:
        return self.outcome != "RUNNING"

    @property
    def meta(self) -> dict[str, Any]:
        """Metadata as rendered: without its own, the ledger's OperationMetadata with lifecycle fields."""
        if self.metadata is not None:
            return self.metadata
        rendered: dict[str, Any] = {"@type": COMMON, "createTime": self.created}
        if self.ended:
            rendered["endTime"] = self.ended
        rendered.update({k: v for k, v in (("target", self.target), ("verb", self.verb)) if v})
        if self.cancel:
            rendered["cancelRequested"] = True
        return rendered


def t(seconds: int) -> str:
    return f"2026-11-21T10:{seconds // 60:02d}:{seconds % 60:02d}Z"


FIXTURE = [
    Op("projects/a/operations/a1", t(0), "create", "projects/a/clusters/c1", "SUCCEEDED", ended=t(30)),
    Op(
        "projects/a/operations/a2",
        t(10),
        "create",
        "projects/a/clusters/c2",
        "FAILED",
        code=8,
        message="quota CPUS exceeded",
        ended=t(40),
    ),
    Op(
        "projects/a/operations/a3",
        t(20),
        "delete",
        "projects/a/clusters/c1",
        "CANCELLED",
        code=1,
        message="by user",
        cancel=True,
        ended=t(50),
    ),
    Op("projects/a/operations/a4", t(30), "update", "projects/a/clusters/c2", cancel=True),
    Op("projects/a/operations/a5", t(40), "create", "projects/a/clusters/c3"),
    Op(
        "projects/b/locations/us/operations/b1",
        t(50),
        "train",
        "projects/b/jobs/j1",
        "SUCCEEDED",
        response={"@type": RESULT, "id": "m-1", "score": 0.93, "final": True},
        ended=t(120),
    ),
    Op(
        "projects/b/locations/us/operations/b2",
        t(60),
        "train",
        "projects/b/jobs/j2",
        "FAILED",
        code=13,
        message="worker 'x'; crashed -- see logs",
        ended=t(61),
    ),
    Op(
        "projects/b/locations/us/operations/b3",
        t(70),
        "train",
        "projects/b/jobs/j3",
        metadata={
            "@type": BUILD,
            "step": "compile",
            "stage": {"name": "compile", "done": 3},
            "retries": 0,
            "flaky": False,
        },
    ),
    Op(
        "projects/b/locations/us/operations/b4",
        t(80),
        "build",
        "projects/b/builds/4",
        "SUCCEEDED",
        metadata={"@type": BUILD, "step": "done", "stage": {"name": "push", "done": 7}, "retries": 2, "flaky": True},
        response={"@type": RESULT, "id": "img-4", "score": 1},
        ended=t(200),
    ),
    Op("projects/b/locations/us/operations/b5", t(90), "build", "projects/b/builds/5", "DELETED"),
    Op(
        "projects/b/locations/eu/operations/e1",
        t(100),
        "create",
        "projects/b/buckets/media",
        metadata={"@type": BUILD, "step": 'fetch "quoted"', "retries": 5},
    ),
    Op("projects/b/locations/eu/operations/e2", t(110), "", "", "FAILED", code=5, message="", ended=t(111)),
    Op("operations/root-1", t(120), "export", "datasets/d1"),
    Op("operations/root-2", t(130), "export", "datasets/d2", "CANCELLED", code=1, message="", ended=t(131)),
    Op(
        "projects/_/buckets/b/operations/C894F35J", t(140), "restore", "projects/_/buckets/b", "SUCCEEDED", ended=t(141)
    ),
    Op(
        "projects/a/operations/a6",
        t(150),
        "create",
        "projects/a/clusters/c*",
        "FAILED",
        code=4,
        message="deadline",
        cancel=True,
        ended=t(170),
    ),
]


def _record(lg: Ledger, op: Op) -> None:
    lg.create(op.name, verb=op.verb or None, target=op.target or None, metadata=op.metadata, occurred_at=op.created)
    if op.cancel:
        lg.cancel(op.name, occurred_at=op.created)
    if op.outcome == "SUCCEEDED":
        lg.succeed(op.name, response=op.response, occurred_at=op.ended)
    elif op.outcome in ("FAILED", "CANCELLED"):
        assert op.code is not None
        lg.fail(op.name, code=op.code, message=op.message, occurred_at=op.ended)
    elif op.outcome == "DELETED":
        lg.delete(op.name, occurred_at=op.created)


def path(op: Op, root: str, *keys: str) -> Any:
    value: Any = op.meta if root == "metadata" else op.response
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


CASES: list[tuple[str, Callable[[Op], bool]]] = [
    ("", lambda o: True),
    ('name = "projects/a/operations/a1"', lambda o: o.name == "projects/a/operations/a1"),
    ('name = "projects/b/*"', lambda o: o.name.startswith("projects/b/")),
    ('name = "*/operations/*1"', lambda o: "/operations/" in o.name and o.name.endswith("1")),
    ('name != "projects/a/*"', lambda o: not o.name.startswith("projects/a/")),
    ('name:"eu"', lambda o: "eu" in o.name),
    ('name > "projects/b"', lambda o: o.name > "projects/b"),
    ("done = true", lambda o: o.done),
    ("done = false", lambda o: not o.done),
    ("done != true", lambda o: not o.done),
    ("state = RUNNING", lambda o: o.outcome == "RUNNING"),
    ('state = "SUCCEEDED"', lambda o: o.outcome == "SUCCEEDED"),
    ("state != FAILED", lambda o: o.outcome != "FAILED"),
    ("state = cancelled", lambda o: o.outcome == "CANCELLED"),
    ("state = DELETED", lambda o: False),
    ('verb = "create"', lambda o: o.verb == "create"),
    ("verb = train", lambda o: o.verb == "train"),
    ('verb = ""', lambda o: o.verb == ""),
    ('verb != "create"', lambda o: o.verb != "create"),
    ('verb < "d"', lambda o: o.verb < "d"),
    ('verb >= "train"', lambda o: o.verb >= "train"),
    ('target = "projects/a/clusters/c*"', lambda o: o.target.startswith("projects/a/clusters/c")),
    ('target:"c*"', lambda o: "c*" in o.target),
    ("target:*", lambda o: o.target != ""),
    ('createTime > "2026-11-21T10:01:00Z"', lambda o: o.created > t(60)),
    ("createTime >= 2026-11-21T10:01:00Z", lambda o: o.created >= t(60)),
    ('createTime < "2026-11-21T11:01:00+01:00"', lambda o: o.created < t(0) or o.created < "2026-11-21T10:01:00Z"),
    ('createTime <= "2026-11-21T10:00:10.000000001Z"', lambda o: o.created <= t(10)),
    ('createTime = "2026-11-21T10:00:20Z"', lambda o: o.created == t(20)),
    ('endTime > "2026-11-21T10:01:00Z"', lambda o: o.ended is not None and o.ended > t(60)),
    ("endTime:*", lambda o: o.ended is not None),
    ("cancelRequested = true", lambda o: o.cancel),
    ("cancelRequested = false", lambda o: not o.cancel),
    ("error.code = 1", lambda o: o.code == 1 and o.outcome != "DELETED"),
    ("error.code = CANCELLED", lambda o: o.code == 1),
    ("error.code = resource_exhausted", lambda o: o.code == 8),
    ("error.code > 4", lambda o: o.code is not None and o.code > 4),
    ("error.code != 1", lambda o: o.code is not None and o.code != 1),
    ('error.message = "quota*"', lambda o: o.code is not None and o.message.startswith("quota")),
    ('error.message:"crashed"', lambda o: "crashed" in o.message),
    ('error.message = ""', lambda o: o.code is not None and o.message == ""),
    ("error:*", lambda o: o.code is not None),
    ("response:*", lambda o: o.outcome == "SUCCEEDED"),
    ("-error:*", lambda o: o.code is None),
    ("NOT response:*", lambda o: o.outcome != "SUCCEEDED"),
    ('metadata.@type = "type.googleapis.com/acme.v1.BuildMetadata"', lambda o: o.meta["@type"] == BUILD),
    ('metadata.@type = "*OperationMetadata"', lambda o: o.meta["@type"] == COMMON),
    ('metadata.step = "compile"', lambda o: path(o, "metadata", "step") == "compile"),
    ('metadata.step = "fetch \\"quoted\\""', lambda o: path(o, "metadata", "step") == 'fetch "quoted"'),
    ("metadata.step:*", lambda o: path(o, "metadata", "step") is not None),
    (
        'metadata.step:"o"',
        lambda o: isinstance(path(o, "metadata", "step"), str) and "o" in path(o, "metadata", "step"),
    ),
    ('metadata.stage.name = "push"', lambda o: path(o, "metadata", "stage", "name") == "push"),
    (
        "metadata.stage.done >= 3",
        lambda o: num(path(o, "metadata", "stage", "done")) and path(o, "metadata", "stage", "done") >= 3,
    ),
    ("metadata.retries > 1", lambda o: num(path(o, "metadata", "retries")) and path(o, "metadata", "retries") > 1),
    ("metadata.retries = 0", lambda o: num(path(o, "metadata", "retries")) and path(o, "metadata", "retries") == 0),
    ('metadata.retries = "0"', lambda o: path(o, "metadata", "retries") == "0"),
    ("metadata.flaky = true", lambda o: path(o, "metadata", "flaky") is True),
    ("metadata.flaky != true", lambda o: path(o, "metadata", "flaky") is False),
    ('metadata.verb = "create"', lambda o: path(o, "metadata", "verb") == "create"),
    ('metadata.createTime < "2026-11-21T10:00:30Z"', lambda o: o.metadata is None and o.created < t(30)),
    ("metadata.cancelRequested = true", lambda o: o.metadata is None and o.cancel),
    ('response.@type = "type.googleapis.com/acme.v1.Build"', lambda o: path(o, "response", "@type") == RESULT),
    ('response.@type = "*Empty"', lambda o: o.outcome == "SUCCEEDED" and o.response is None),
    ("response.score > 0.9", lambda o: num(path(o, "response", "score")) and path(o, "response", "score") > 0.9),
    ("response.final = true", lambda o: path(o, "response", "final") is True),
    ('response.id = "img-*"', lambda o: str(path(o, "response", "id") or "").startswith("img-")),
    ('verb = "create" AND done = false', lambda o: o.verb == "create" and not o.done),
    ('verb = "create" done = false', lambda o: o.verb == "create" and not o.done),
    ("state = FAILED OR state = CANCELLED", lambda o: o.outcome in ("FAILED", "CANCELLED")),
    ('verb = "train" OR verb = "build" AND done = true', lambda o: o.verb in ("train", "build") and o.done),
    ('(verb = "train" OR verb = "build") AND NOT done = true', lambda o: o.verb in ("train", "build") and not o.done),
    ("done = true AND (error.code = 1 OR error.code = 5)", lambda o: o.code in (1, 5)),
    ('NOT (verb = "create" OR verb = "train")', lambda o: o.verb not in ("create", "train")),
    ('-verb = "create" -verb = "train"', lambda o: o.verb not in ("create", "train")),
    (
        "NOT metadata.retries > 1",
        lambda o: not (num(path(o, "metadata", "retries")) and path(o, "metadata", "retries") > 1),
    ),
    (
        'name = "projects/a/*" AND (cancelRequested = true OR error:*) AND createTime > "2026-11-21T10:00:05Z"',
        lambda o: o.name.startswith("projects/a/") and (o.cancel or o.code is not None) and o.created > t(5),
    ),
]


def _expected(predicate: Callable[[Op], bool], parent: str | None = None) -> list[str]:
    live = [o for o in FIXTURE if o.outcome != "DELETED" and (parent is None or o.parent == parent)]
    chosen = [o for o in live if predicate(o)]
    chosen.sort(key=lambda o: o.name)
    chosen.sort(key=lambda o: o.created, reverse=True)
    return [o.name for o in chosen]


@pytest.fixture(scope="module")
def fixture_ledgers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Ledger]]:
    from ..support import PG_DSN, drop_schema, with_schema

    ledgers = {"sqlite": Ledger.open(f"sqlite:///{tmp_path_factory.mktemp('filters')}/l.db")}
    schema = "test_filters_fixture"
    if PG_DSN:
        drop_schema(PG_DSN, schema)
        ledgers["postgresql"] = Ledger.open(with_schema(PG_DSN, schema))
    for lg in ledgers.values():
        for op in FIXTURE:
            _record(lg, op)
    yield ledgers
    for lg in ledgers.values():
        lg.close()
    if PG_DSN:
        drop_schema(PG_DSN, schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def fixture_ledger(request: pytest.FixtureRequest, fixture_ledgers: dict[str, Ledger]) -> Ledger:
    if request.param not in fixture_ledgers:
        pytest.skip(NO_POSTGRES)
    return fixture_ledgers[request.param]


def _names(lg: Ledger, expression: str, parent: str | None = None) -> list[str]:
    response = lg.list(parent, filter=expression, page_size=1000)
    assert "nextPageToken" not in response
    return [op["name"] for op in response["operations"]]


def test_enough_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(("expression", "predicate"), CASES, ids=[c[0] or "(empty)" for c in CASES])
def test_filter_matches_python(fixture_ledger: Ledger, expression: str, predicate: Callable[[Op], bool]) -> None:
    assert _names(fixture_ledger, expression) == _expected(predicate)


@pytest.mark.parametrize(
    "parent", ["projects/a", "projects/b/locations/us", "projects/b/locations/us/operations", "", "operations"]
)
def test_parent_selects_one_collection(fixture_ledger: Ledger, parent: str) -> None:
    collection = "" if parent == "operations" else parent.removesuffix("/operations")
    assert _names(fixture_ledger, "", parent) == _expected(lambda o: True, collection)
    assert _names(fixture_ledger, "done = true", parent) == _expected(lambda o: o.done, collection)


BAD_FILTERS = [
    ("color = red", 1, "unknown field"),
    ("verb = ", 8, "expected a value"),
    ('verb = "create', 8, "unterminated"),
    ("(verb = create", 15, "expected ')'"),
    ("verb = create)", 14, "unexpected"),
    ("verb create", 6, "comparator"),
    ("AND verb = x", 1, "operator AND"),
    ("verb = x AND", 13, "expected a field name"),
    ("done = maybe", 1, "true or false"),
    ("done > true", 1, "does not take"),
    ("state = PAUSED", 1, "state is one of"),
    ("createTime > yesterday", 1, "RFC 3339"),
    ("error.code = 99", 1, "error.code"),
    ("error.code = NOPE", 1, "error.code"),
    ("metadata.flaky > true", 1, "does not take"),
    ("verb = x OR", 12, "expected a field name"),
    ("- verb = x", 2, "'-' must stand"),
    ("verb = x AND 'y'", 14, "expected a field name"),
    ("error:", 7, "expected a value"),
    ("error = 1", 1, "unknown field"),
    ('metadata.tags.0 = "gpu"', 1, "indexes into a list"),
    ("metadata.n < 99999999999999999999", 1, "64-bit"),
    ("metadata.n < 1e999", 1, "beyond the range"),
]


@pytest.mark.parametrize(("expression", "position", "says"), BAD_FILTERS)
def test_malformed_filters_say_where(fixture_ledger: Ledger, expression: str, position: int, says: str) -> None:
    with pytest.raises(LedgerError) as e:
        fixture_ledger.list(filter=expression)
    assert e.value.code == Code.INVALID_ARGUMENT
    assert e.value.message.startswith("filter: ")
    assert says in e.value.message
    assert e.value.message.endswith(f"at position {position}"), e.value.message


INERT = [
    "x'; DROP TABLE stored_events; --",
    'x"; DELETE FROM ledger_operations; --',
    "/* comment */ OR 1=1",
    "'); DROP TABLE ledger_events; --",
    "%_\\*?[a]",
]


@pytest.mark.parametrize("value", INERT)
def test_quotes_semicolons_and_comments_are_inert(fixture_ledger: Ledger, value: str) -> None:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    for expression in (f'verb = "{escaped}"', f'metadata.step = "{escaped}"', f'error.message:"{escaped}"'):
        assert _names(fixture_ledger, expression) == []
    assert len(_names(fixture_ledger, "")) == len(_expected(lambda o: True))


# The only quoted literals the compiler itself writes into SQL.
FIXED_LITERALS = {
    "'RUNNING'",
    "''",
    "'text'",
    "'integer'",
    "'real'",
    "'true'",
    "'false'",
    "'string'",
    "'number'",
    "'boolean'",
    "'\\'",
    "'UTF8'",  # PostgreSQL reads JSON paths from the stored body bytes decoded as UTF-8
}

MEMBERS = st.sampled_from(
    [
        "name",
        "verb",
        "target",
        "done",
        "state",
        "createTime",
        "endTime",
        "cancelRequested",
        "error.code",
        "error.message",
        "metadata.@type",
        "metadata.step",
        "metadata.a.b",
        "response.id",
        "response",
        "error",
        "bogus",
    ]
)
VALUES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["true", "false", "1", "-2.5", "CANCELLED", "RUNNING", "*", "2026-11-21T10:00:00Z", "x*y"]),
)


@st.composite
def filters(draw: st.DrawFn) -> str:
    """Filter strings that are mostly well formed, with random values and some random damage."""
    terms = []
    for _ in range(draw(st.integers(1, 3))):
        value = draw(VALUES)
        quoted = draw(st.booleans())
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' if quoted else value
        term = f"{draw(MEMBERS)} {draw(st.sampled_from(['=', '!=', '<', '<=', '>', '>=', ':']))} {text}"
        terms.append(draw(st.sampled_from(["", "NOT ", "-"])) + term)
    joined = draw(st.sampled_from([" AND ", " OR ", " "])).join(terms)
    if draw(st.booleans()):
        joined = f"({joined})"
    if draw(st.integers(0, 4)) == 0:
        cut = draw(st.integers(0, len(joined)))
        joined = joined[:cut] + draw(st.text(max_size=3)) + joined[cut:]
    return joined


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expression=st.one_of(filters(), st.text(max_size=40)))
def test_generated_filters_never_raise_anything_else(fixture_ledgers: dict[str, Ledger], expression: str) -> None:
    for lg in fixture_ledgers.values():
        try:
            lg.list(filter=expression, page_size=5)
        except LedgerError as e:
            assert e.code == Code.INVALID_ARGUMENT, e
            assert re.search(r"at position \d+$", e.message), e.message


@settings(max_examples=300, deadline=None)
@given(expression=filters())
def test_filter_values_never_reach_sql_text(expression: str) -> None:
    try:
        node = parse_filter(expression)
    except LedgerError:
        return
    for dialect in (SQLiteDialect(), PostgresDialect("s")):
        try:
            condition = compile_filter(node, dialect)
        except LedgerError:
            return
        assert set(re.findall(r"'[^']*'", condition.sql)) <= FIXED_LITERALS, condition.sql
        assert condition.sql.count("?") == len(condition.params)
        assert '"' not in condition.sql.replace('COLLATE "C"', "")
