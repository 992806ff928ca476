"""google.rpc status codes and the one exception type the ledger raises."""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    """google.rpc.Code: the numbers are part of the wire contract."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class LedgerError(Exception):
    """A failure with a google.rpc code; `code` is the number, `code_name` its name."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = int(code)
        self.code_name = code.name
        self.message = message


def invalid(field: str, problem: str) -> LedgerError:
    """INVALID_ARGUMENT that names the offending field first, as every input error does."""
    return LedgerError(Code.INVALID_ARGUMENT, f"{field}: {problem}")


def precondition(message: str) -> LedgerError:
    return LedgerError(Code.FAILED_PRECONDITION, message)


def not_found(name: str) -> LedgerError:
    return LedgerError(Code.NOT_FOUND, f"operation {name!r} not found")


def error_code(value: object, field: str = "error.code") -> Code:
    """An error code given as a number or a name ("CANCELLED", "cancelled", "1"); never OK."""
    if isinstance(value, bool):
        raise invalid(field, f"{value!r} is not a code")
    code: Code | None = None
    if isinstance(value, int):
        code = Code(value) if 0 <= value <= 16 else None
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            number = int(text)
            code = Code(number) if number <= 16 else None
        else:
            code = Code.__members__.get(text.upper())
    if code is None:
        raise invalid(field, f"{value!r} is not a google.rpc.Code (1..16 or a name such as CANCELLED)")
    if code is Code.OK:
        raise invalid(field, "0 (OK) is not an error code")
    return code
