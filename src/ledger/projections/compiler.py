"""A filter tree compiled to a parameterised SQL condition over the view columns.

Values never enter the SQL text: each becomes a parameter. Semantics, the same on both backends:
a restriction on a value that is absent (an unset time, error or JSON path), or of another JSON type
than the value given, is false, and NOT turns false into true. Unset `verb` and `target` are "" as in
proto3. `:` on text means "contains"; `:*` means "is present"; `*` in an `=` string is a wildcard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..domain.errors import LedgerError, error_code
from ..domain.timestamps import parse_timestamp
from ..storage.base import Dialect
from .filters import And, Node, Not, Or, Restriction, filter_error
from .rows import STATES, sortable_time

TEXT_FIELDS = {
    "name": "name",
    "verb": "verb",
    "target": "target",
    "error.message": "error_message",
    "metadata.@type": "metadata_type",
    "response.@type": "response_type",
}
TIME_FIELDS = {"createTime": "create_time", "endTime": "end_time"}
JSON_PREFIXES = ("metadata", "response")  # paths read from the stored Operation JSON
ORDERING = ("=", "!=", "<", "<=", ">", ">=")
SQL_COMPARATOR = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


@dataclass
class Condition:
    sql: str
    params: list[Any] = field(default_factory=list)
    columns: frozenset[str] = frozenset()  # the view's columns `sql` reads


def _of(column: str, condition: Condition) -> Condition:
    return Condition(condition.sql, condition.params, condition.columns | {column})


def compile_filter(node: Node | None, dialect: Dialect, metadata_column: bool = False) -> Condition:
    """The condition for `node`; `metadata_column`: the rows have their metadata as a JSON column
    (the operations view), faster to read a path of than the stored body."""
    if node is None:
        return Condition("TRUE")
    return _Compiler(dialect, metadata_column).node(node)


class _Compiler:
    def __init__(self, dialect: Dialect, metadata_column: bool) -> None:
        self.d = dialect
        self.metadata_column = metadata_column

    def node(self, node: Node, negated: bool = False) -> Condition:
        """SQL for `node`. A restriction on an absent value is NULL in SQL; WHERE drops NULL as it
        drops FALSE, so only under NOT must it be made FALSE, and only there is it wrapped: a bare
        comparison is one the database can answer from an index."""
        if isinstance(node, And | Or):
            parts = [self.node(part, negated) for part in node.parts]
            joiner = " AND " if isinstance(node, And) else " OR "
            return Condition(
                "(" + joiner.join(p.sql for p in parts) + ")",
                [v for p in parts for v in p.params],
                frozenset().union(*(p.columns for p in parts)),
            )
        if isinstance(node, Not):
            inner = self.node(node.part, True)
            return Condition(f"(NOT {inner.sql})", inner.params, inner.columns)
        condition = self.restriction(node)
        if negated:
            return Condition(f"COALESCE(({condition.sql}), FALSE)", condition.params, condition.columns)
        return Condition(f"({condition.sql})", condition.params, condition.columns)

    def restriction(self, r: Restriction) -> Condition:
        member = r.member
        if member in TEXT_FIELDS:
            return _of(TEXT_FIELDS[member], self.text(TEXT_FIELDS[member], r))
        if member in TIME_FIELDS:
            return _of(TIME_FIELDS[member], self.time(TIME_FIELDS[member], r))
        if member == "done":
            equal = self.boolean(r)
            return _of("state", Condition("state <> 'RUNNING'" if equal else "state = 'RUNNING'"))
        if member == "cancelRequested":
            return _of("cancel_requested", Condition("cancel_requested = ?", [1 if self.boolean(r) else 0]))
        if member == "state":
            return _of("state", self.state(r))
        if member == "error.code":
            return _of("error_code", self.code(r))
        if member in ("error", "response") and r.comparator == ":" and r.value == "*" and not r.quoted:
            if member == "error":
                return _of("error_code", Condition("error_code IS NOT NULL"))
            return _of("response_type", Condition("response_type IS NOT NULL"))
        prefix, _, path = member.partition(".")
        if prefix in JSON_PREFIXES and path:
            segments = tuple(path.split("."))
            if any(segment.isdigit() for segment in segments):
                raise filter_error(r.position, f"{member} indexes into a list, which filters do not support")
            if prefix == "metadata" and self.metadata_column:
                return _of("metadata", self.json("metadata", segments, r))
            return _of("body", self.json(self.d.body_json, (prefix, *segments), r))
        raise filter_error(r.position, f"unknown field {member!r}")

    def _comparators(self, r: Restriction, allowed: tuple[str, ...]) -> None:
        if r.comparator not in allowed:
            raise filter_error(r.position, f"{r.member} does not take {r.comparator!r} (use {' '.join(allowed)})")

    def text(self, column: str, r: Restriction) -> Condition:
        if r.comparator == ":":
            if r.value == "*" and not r.quoted:
                return Condition(f"{column} IS NOT NULL AND {column} <> ''")
            return Condition(self.d.contains(column), [r.value])
        if r.comparator in ("=", "!=") and "*" in r.value:
            match = self.d.wildcard(column)
            return Condition(match if r.comparator == "=" else f"NOT ({match})", [self.d.wildcard_pattern(r.value)])
        return Condition(f"{column} {SQL_COMPARATOR[r.comparator]} ?", [r.value])

    def time(self, column: str, r: Restriction) -> Condition:
        if r.comparator == ":" and r.value == "*" and not r.quoted:
            return Condition(f"{column} IS NOT NULL")
        self._comparators(r, ORDERING)
        try:
            value = sortable_time(parse_timestamp(r.value, r.member))
        except LedgerError:
            raise filter_error(r.position, f"{r.member} needs an RFC 3339 time, not {r.value!r}") from None
        return Condition(f"{column} {SQL_COMPARATOR[r.comparator]} ?", [value])

    def boolean(self, r: Restriction) -> bool:
        """True when the restriction selects the true value."""
        self._comparators(r, ("=", "!="))
        if r.value.lower() not in ("true", "false"):
            raise filter_error(r.position, f"{r.member} is true or false, not {r.value!r}")
        return (r.value.lower() == "true") == (r.comparator == "=")

    def state(self, r: Restriction) -> Condition:
        self._comparators(r, ("=", "!="))
        value = r.value.upper()
        if value not in STATES:
            raise filter_error(r.position, f"state is one of {', '.join(STATES)}, not {r.value!r}")
        return Condition(f"state {SQL_COMPARATOR[r.comparator]} ?", [value])

    def code(self, r: Restriction) -> Condition:
        if r.comparator == ":" and r.value == "*" and not r.quoted:
            return Condition("error_code IS NOT NULL")
        self._comparators(r, ORDERING)
        try:
            code = int(error_code(r.value))
        except LedgerError:
            raise filter_error(r.position, f"error.code is a number 1..16 or a code name, not {r.value!r}") from None
        return Condition(f"error_code {SQL_COMPARATOR[r.comparator]} ?", [code])

    def json(self, column: str, segments: tuple[str, ...], r: Restriction) -> Condition:
        path = self.d.json_path(segments)
        if r.comparator == ":" and r.value == "*" and not r.quoted:
            return Condition(self.d.json_exists(column), [path])
        kind, value = _json_literal(r)
        if kind == "boolean":
            self._comparators(r, ("=", "!="))
            sql = self.d.json_boolean_compare(column, SQL_COMPARATOR[r.comparator])
            return Condition(sql, [path, path, self.d.json_boolean(value)])
        if kind == "number":
            self._comparators(r, ORDERING)
            sql = self.d.json_number_compare(column, SQL_COMPARATOR[r.comparator])
            return Condition(sql, [path, path, value])
        typed = self.d.json_type_is(column, ("string",))
        text = self.d.json_text(column)
        if r.comparator == ":":
            return Condition(f"{typed} AND {self.d.contains(text)}", [path, path, value])
        if r.comparator in ("=", "!=") and "*" in value:
            match = self.d.wildcard(text)
            match = match if r.comparator == "=" else f"NOT ({match})"
            return Condition(f"{typed} AND {match}", [path, path, self.d.wildcard_pattern(value)])
        return Condition(f"{typed} AND {text} {SQL_COMPARATOR[r.comparator]} ?", [path, path, value])


def _json_literal(r: Restriction) -> tuple[str, Any]:
    """Quoted: text. Bare: a boolean, a number (64-bit integers; others as doubles, which is how
    SQLite holds JSON numbers), or else text."""
    if r.quoted:
        return "string", r.value
    if r.value in ("true", "false"):
        return "boolean", r.value == "true"
    if _NUMBER.fullmatch(r.value):
        if any(c in r.value for c in ".eE"):
            number = float(r.value)
            if number in (float("inf"), float("-inf")):
                raise filter_error(r.position, f"{r.value} is beyond the range of numbers filters compare")
            return "number", number
        integer = int(r.value)
        if not -(2**63) <= integer < 2**63:
            raise filter_error(r.position, f"{r.value} is beyond the 64-bit integers filters compare")
        return "number", integer
    return "string", r.value
