"""AIP-160 list filters: parsed into a small tree, then checked against the filterable fields.

Grammar (AIP-160, with OR binding tighter than AND):

    expression  = sequence { "AND" sequence }
    sequence    = factor { factor }                 (implicit AND)
    factor      = term { "OR" term }
    term        = [ "NOT" | "-" ] simple
    simple      = "(" expression ")" | restriction
    restriction = member [ comparator argument ]    (comparator: = != < <= > >= :)

Every error is INVALID_ARGUMENT and says where (1-based character position) the problem is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..domain.errors import LedgerError, invalid

COMPARATORS = ("<=", ">=", "!=", "=", "<", ">", ":")
_MEMBER = re.compile(r"[A-Za-z_@][A-Za-z0-9_@\-]*(?:\.[A-Za-z0-9_@\-]+)*")
_BARE_ARGUMENT = re.compile(r"[^\s()]+")
_KEYWORDS = ("AND", "OR", "NOT")


@dataclass(frozen=True)
class Restriction:
    member: str
    comparator: str
    value: str
    quoted: bool  # "..." strings are always text; bare values may be numbers, booleans, names, times
    position: int


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Restriction | And | Or | Not


def filter_error(position: int, problem: str) -> LedgerError:
    return invalid("filter", f"{problem} at position {position + 1}")


def parse_filter(text: str) -> Node | None:
    """The filter's tree, or None for an empty filter."""
    if "\x00" in text:
        raise filter_error(text.index("\x00"), "a NUL character is not allowed")
    parser = _Parser(text)
    parser.skip_space()
    if parser.at_end():
        return None
    node = parser.expression()
    parser.skip_space()
    if not parser.at_end():
        raise filter_error(parser.pos, f"unexpected {parser.text[parser.pos]!r}")
    return node


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def skip_space(self) -> None:
        while not self.at_end() and self.text[self.pos].isspace():
            self.pos += 1

    def keyword(self, word: str) -> bool:
        """Consume `word` when it stands alone here (followed by space, a parenthesis or the end)."""
        self.skip_space()
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and (
            end == len(self.text) or self.text[end].isspace() or self.text[end] in "()"
        ):
            self.pos = end
            return True
        return False

    def expression(self) -> Node:
        parts = [self.sequence()]
        while self.keyword("AND"):
            parts.append(self.sequence())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def sequence(self) -> Node:
        parts = [self.factor()]
        while True:
            self.skip_space()
            if self.at_end() or self.text[self.pos] == ")" or self._peek_keyword("AND"):
                break
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def factor(self) -> Node:
        parts = [self.term()]
        while self.keyword("OR"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def term(self) -> Node:
        self.skip_space()
        if self.keyword("NOT"):
            return Not(self.simple())
        if not self.at_end() and self.text[self.pos] == "-":
            self.pos += 1
            if self.at_end() or self.text[self.pos].isspace():
                raise filter_error(self.pos, "'-' must stand right before what it negates")
            return Not(self.simple())
        return self.simple()

    def simple(self) -> Node:
        self.skip_space()
        if self.at_end():
            raise filter_error(self.pos, "expected a field name or '('")
        if self.text[self.pos] == "(":
            self.pos += 1
            node = self.expression()
            self.skip_space()
            if self.at_end() or self.text[self.pos] != ")":
                raise filter_error(self.pos, "expected ')'")
            self.pos += 1
            return node
        return self.restriction()

    def restriction(self) -> Restriction:
        start = self.pos
        for word in _KEYWORDS:
            if self._peek_keyword(word):
                raise filter_error(start, f"expected a field name, found the operator {word}")
        match = _MEMBER.match(self.text, self.pos)
        if not match:
            raise filter_error(start, f"expected a field name, found {self.text[start]!r}")
        self.pos = match.end()
        self.skip_space()
        comparator = next((c for c in COMPARATORS if self.text.startswith(c, self.pos)), None)
        if comparator is None:
            raise filter_error(
                self.pos if not self.at_end() else start,
                f"expected a comparator (= != < <= > >= :) after {match.group()!r}",
            )
        self.pos += len(comparator)
        self.skip_space()
        value, quoted = self.argument()
        return Restriction(match.group(), comparator, value, quoted, start)

    def argument(self) -> tuple[str, bool]:
        if self.at_end():
            raise filter_error(self.pos, "expected a value")
        if self.text[self.pos] == '"':
            return self.string(), True
        match = _BARE_ARGUMENT.match(self.text, self.pos)
        if not match:
            raise filter_error(self.pos, "expected a value")
        self.pos = match.end()
        return match.group(), False

    def string(self) -> str:
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while not self.at_end():
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
            elif char == '"':
                self.pos += 1
                return "".join(out)
            else:
                out.append(char)
                self.pos += 1
        raise filter_error(start, "unterminated string")

    def _peek_keyword(self, word: str) -> bool:
        saved = self.pos
        found = self.keyword(word)
        self.pos = saved
        return found
