"""The layout holds: read from the source's own syntax trees, without running it.

Layers, lowest first: domain (pure) < storage (drivers, eventsourcing's schema) < projections (views)
< use cases (recording, reading, ingest, export, follow, audit, policies, simulate) < the Ledger
facade < cli, server and collect. A module imports only from its own layer or below; SQL is written only in
storage/ and projections/; a driver and eventsourcing's table and columns are named only in storage/.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import ledger

SOURCE = Path(ledger.__file__).parent
LAYERS = {
    "runtime": 0,  # interpreter settings for batch jobs, importing nothing of the ledger
    "domain": 0,
    "storage": 1,
    "projections": 2,
    **dict.fromkeys(
        ("recording", "reading", "ingest", "export", "follow", "audit", "policies", "simulate", "files"), 3
    ),
    "application": 4,
    "": 5,  # the package itself (`from ledger import Ledger`), which imports the facade
    "cli": 6,
    "server": 6,
    "collect": 6,
}
DRIVERS = ("sqlite3", "psycopg", "psycopg_pool")
SCHEMA_NAMES = re.compile(r"\b(stored_events|ledger_events|originator_id|originator_version|notification_id)\b")
SQL = re.compile(
    r"\b(SELECT\s+[\w*({]|INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|VIEW|SCHEMA)|"
    r"DROP\s+(TABLE|VIEW|SCHEMA)|ALTER\s+TABLE|LOCK\s+TABLE|PRAGMA\s|ROLLBACK\b|COMMIT\b)"
)
TRANSACTIONS = {"write", "read", "quick", "snapshot", "recording"}  # the Database methods that open one


@dataclass(frozen=True)
class Module:
    name: str  # ledger.storage.log
    path: str  # storage/log.py
    tree: ast.Module

    @property
    def area(self) -> str:
        """The top folder or module under ledger/ ("" for the package's own __init__)."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else ""

    @property
    def package(self) -> str:
        return self.name if self.path.endswith("__init__.py") else self.name.rpartition(".")[0]


def parse(name: str, path: str, text: str) -> Module:
    return Module(name, path, ast.parse(text))


def modules() -> list[Module]:
    found = []
    for file in sorted(SOURCE.rglob("*.py")):
        relative = file.relative_to(SOURCE)
        parts = ["ledger", *relative.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found.append(parse(".".join(parts), relative.as_posix(), file.read_text()))
    return found


def imported(module: Module) -> list[tuple[int, str]]:
    """Every module this one imports (at the top, in a function, or for typing alone), with its line."""
    out = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import log` imports ledger.storage.log, not ledger.storage
                submodule = _is_module(target, alias.name)
                out.append((node.lineno, f"{target}.{alias.name}" if submodule else target))
    return out


def _is_module(package: str, name: str) -> bool:
    if not package.startswith("ledger"):
        return False
    folder = SOURCE.joinpath(*package.split(".")[1:])
    return (folder / f"{name}.py").exists() or (folder / name / "__init__.py").exists()


def layer_of(name: str) -> int:
    parts = name.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else ""]


def upward_imports(module: Module) -> list[str]:
    mine = LAYERS[module.area]
    return [
        f"{module.path}:{line} imports {target}"
        for line, target in imported(module)
        if target.split(".")[0] == "ledger" and layer_of(target) > mine
    ]


def driver_imports(module: Module) -> list[str]:
    return [
        f"{module.path}:{line} imports {target}" for line, target in imported(module) if target.split(".")[0] in DRIVERS
    ]


def texts(module: Module) -> list[tuple[int, str]]:
    """Every string the module holds but its docstrings; an f-string's literal parts joined."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(module.tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
            docstrings |= {id(part) for part in parts}  # read here, as one text, not again below
            found.append((node.lineno, "{}".join(str(part.value) for part in parts)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.append((node.lineno, node.value))
    return found


def matching(module: Module, pattern: re.Pattern[str]) -> list[str]:
    return [f"{module.path}:{line}: {text[:60]!r}" for line, text in texts(module) if pattern.search(text)]


def facade_faults(module: Module) -> list[str]:
    """The Ledger class's length, and every `with` in it that opens a transaction."""
    (ledger_class,) = [n for n in module.tree.body if isinstance(n, ast.ClassDef) and n.name == "Ledger"]
    assert ledger_class.end_lineno is not None
    faults = []
    length = ledger_class.end_lineno - ledger_class.lineno + 1
    if length >= 350:
        faults.append(f"Ledger is {length} lines long")
    for node in ast.walk(ledger_class):
        if isinstance(node, ast.With):
            for item in node.items:
                opened = _method_called(item.context_expr)
                if opened in TRANSACTIONS:
                    faults.append(f"line {node.lineno} opens a transaction ({opened})")
    return faults


def _method_called(expression: ast.expr) -> str | None:
    if isinstance(expression, ast.Call) and isinstance(expression.func, ast.Attribute):
        return expression.func.attr
    return None


ALL = modules()


def _by_area(*areas: str, inside: bool) -> list[Module]:
    return [m for m in ALL if (m.area in areas) == inside]


def test_the_layout_is_what_this_test_reads() -> None:
    areas = {m.area for m in ALL}
    assert areas <= set(LAYERS), f"a module outside every layer: {areas - set(LAYERS)}"
    assert {"domain", "storage", "projections", "recording", "application"} <= areas


def test_no_import_runs_back_up_the_layers() -> None:
    assert [fault for m in ALL for fault in upward_imports(m)] == []


def test_domain_imports_nothing_of_the_ledger_outside_domain() -> None:
    outside = [
        f"{m.path}:{line} imports {target}"
        for m in _by_area("domain", inside=True)
        for line, target in imported(m)
        if target.split(".")[0] == "ledger" and not target.startswith("ledger.domain")
    ]
    assert outside == []


def test_no_driver_outside_storage() -> None:
    assert [fault for m in _by_area("storage", inside=False) for fault in driver_imports(m)] == []


def test_eventsourcing_table_and_columns_are_named_only_in_storage() -> None:
    assert [fault for m in _by_area("storage", inside=False) for fault in matching(m, SCHEMA_NAMES)] == []


def test_sql_is_written_only_in_storage_and_projections() -> None:
    assert [fault for m in _by_area("storage", "projections", inside=False) for fault in matching(m, SQL)] == []


def test_the_facade_is_short_and_opens_no_transaction() -> None:
    (application,) = [m for m in ALL if m.area == "application"]
    assert facade_faults(application) == []


# -- the checks themselves catch what they are for -------------------------------------------------

BAD = '''
"""A docstring may say SELECT * FROM stored_events; code may not."""
import sqlite3
from ..application import Ledger
from .. import recording

def f(cursor):
    cursor.execute(f"SELECT originator_id FROM {table} WHERE notification_id > ?")
'''


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (upward_imports, ["domain/bad.py:4 imports ledger.application", "domain/bad.py:5 imports ledger.recording"]),
        (driver_imports, ["domain/bad.py:3 imports sqlite3"]),
        (
            lambda m: matching(m, SCHEMA_NAMES),
            ["domain/bad.py:8: 'SELECT originator_id FROM {} WHERE notification_id > ?'"],
        ),
        (lambda m: matching(m, SQL), ["domain/bad.py:8: 'SELECT originator_id FROM {} WHERE notification_id > ?'"]),
    ],
    ids=["upward", "driver", "schema", "sql"],
)
def test_each_check_finds_its_fault(check: object, expected: list[str]) -> None:
    bad = parse("ledger.domain.bad", "domain/bad.py", BAD)
    assert callable(check)
    assert check(bad) == expected


def test_the_facade_check_finds_a_transaction_and_a_long_class() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(350))
    text = (
        f"class Ledger:\n{body}\n    def get(self):\n        with self.parts.db.read() as cursor:\n            pass\n"
    )
    faults = facade_faults(parse("ledger.application", "application.py", text))
    assert faults == ["Ledger is 354 lines long", "line 353 opens a transaction (read)"]
