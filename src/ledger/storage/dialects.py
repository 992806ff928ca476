"""What differs between SQLite and PostgreSQL on the read side: placeholders, types, JSON, patterns.

SQL in this package is written with `?` placeholders; `Dialect.sql` turns them into the driver's.
"""

from __future__ import annotations

from typing import Any


class Dialect:
    name: str
    blob: str
    json: str
    text: str  # a text column whose comparisons and ordering are by code point, as in Python
    for_update: str = ""  # row locks where the database has them; SQLite's writer lock covers it

    def serialize_writers(self, cursor: Any) -> None:
        """Make concurrent schema changes (first use, rebuild swaps) take turns."""

    def sql(self, statement: str) -> str:
        return statement

    def table(self, name: str) -> str:
        return f'"{name}"'

    def json_path(self, segments: tuple[str, ...]) -> Any:
        raise NotImplementedError

    def json_type_is(self, column: str, kinds: tuple[str, ...]) -> str:
        """SQL true when the JSON at path `?` is one of `kinds` (string, number, boolean)."""
        raise NotImplementedError

    def json_text(self, column: str) -> str:
        """SQL for the JSON string at path `?` as text."""
        raise NotImplementedError

    def json_number_compare(self, column: str, comparator: str) -> str:
        """SQL comparing the JSON number at path `?` with the number `?`; never NULL, never a cast error."""
        raise NotImplementedError

    def json_boolean_compare(self, column: str, comparator: str) -> str:
        """SQL comparing the JSON boolean at path `?` with `?` (see `json_boolean`)."""
        raise NotImplementedError

    def json_boolean(self, value: bool) -> Any:
        raise NotImplementedError

    def json_exists(self, column: str) -> str:
        raise NotImplementedError

    def wildcard(self, expression: str) -> str:
        """SQL matching `expression` against pattern `?` (see `wildcard_pattern`)."""
        raise NotImplementedError

    def wildcard_pattern(self, value: str) -> str:
        raise NotImplementedError

    def contains(self, expression: str) -> str:
        raise NotImplementedError

    def in_list(self, column: str, count: int) -> tuple[str, bool]:
        """SQL for `column` in a list of `count` parameters; True when the list goes as one array parameter."""
        raise NotImplementedError

    def table_exists(self, cursor: Any, name: str) -> bool:
        raise NotImplementedError


class SQLiteDialect(Dialect):
    name = "sqlite"
    blob = "BLOB"
    json = "TEXT"
    text = "TEXT"

    def json_path(self, segments: tuple[str, ...]) -> Any:
        return "$" + "".join(f'."{segment}"' for segment in segments)

    def json_type_is(self, column: str, kinds: tuple[str, ...]) -> str:
        sqlite_kinds = {"string": ("'text'",), "number": ("'integer'", "'real'"), "boolean": ("'true'", "'false'")}
        listed = ", ".join(k for kind in kinds for k in sqlite_kinds[kind])
        return f"json_type({column}, ?) IN ({listed})"

    def json_text(self, column: str) -> str:
        return f"json_extract({column}, ?)"

    def json_number_compare(self, column: str, comparator: str) -> str:
        return f"(json_type({column}, ?) IN ('integer', 'real') AND json_extract({column}, ?) {comparator} ?)"

    def json_boolean_compare(self, column: str, comparator: str) -> str:
        return f"(json_type({column}, ?) IN ('true', 'false') AND json_extract({column}, ?) {comparator} ?)"

    def json_boolean(self, value: bool) -> Any:
        return 1 if value else 0  # json_extract gives JSON true and false as 1 and 0

    def json_exists(self, column: str) -> str:
        return f"json_type({column}, ?) IS NOT NULL"

    def wildcard(self, expression: str) -> str:
        return f"{expression} GLOB ?"

    def wildcard_pattern(self, value: str) -> str:
        # GLOB's own specials other than * are matched literally by putting them in a class.
        return value.replace("[", "[[]").replace("?", "[?]")

    def contains(self, expression: str) -> str:
        return f"instr({expression}, ?) > 0"

    def in_list(self, column: str, count: int) -> tuple[str, bool]:
        return f"{column} IN ({', '.join('?' * count)})", False

    def table_exists(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return cursor.fetchone() is not None


class PostgresDialect(Dialect):
    name = "postgresql"
    blob = "BYTEA"
    json = "JSONB"
    text = 'TEXT COLLATE "C"'

    for_update = " FOR UPDATE"

    def __init__(self, schema: str) -> None:
        self.schema = schema or "public"

    def serialize_writers(self, cursor: Any) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ledger-views:{self.schema}",))

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def table(self, name: str) -> str:
        return f'"{self.schema}"."{name}"'

    def table_exists(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (self.table(name),))
        return bool(cursor.fetchone()[0])

    def json_path(self, segments: tuple[str, ...]) -> Any:
        return list(segments)

    def json_type_is(self, column: str, kinds: tuple[str, ...]) -> str:
        listed = ", ".join(f"'{kind}'" for kind in kinds)
        return f"jsonb_typeof({column} #> ?) IN ({listed})"

    def json_text(self, column: str) -> str:
        return f'({column} #>> ?) COLLATE "C"'

    def json_number_compare(self, column: str, comparator: str) -> str:
        # CASE, not AND: PostgreSQL may evaluate either side of AND first, and the cast must not
        # see a non-number.
        return (
            f"CASE WHEN jsonb_typeof({column} #> ?) = 'number' "
            f"THEN ({column} #>> ?)::numeric {comparator} ? ELSE FALSE END"
        )

    def json_boolean_compare(self, column: str, comparator: str) -> str:
        return f"(jsonb_typeof({column} #> ?) = 'boolean' AND ({column} #>> ?) {comparator} ?)"

    def json_boolean(self, value: bool) -> Any:
        return "true" if value else "false"

    def json_exists(self, column: str) -> str:
        return f"({column} #> ?) IS NOT NULL"

    def wildcard(self, expression: str) -> str:
        return f"{expression} LIKE ? ESCAPE '\\'"

    def wildcard_pattern(self, value: str) -> str:
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return escaped.replace("*", "%")

    def contains(self, expression: str) -> str:
        return f"strpos({expression}, ?) > 0"

    def in_list(self, column: str, count: int) -> tuple[str, bool]:
        return f"{column} = ANY(?)", True
