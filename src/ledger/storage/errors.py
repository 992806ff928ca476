"""Storage failures as google.rpc codes, in one place.

A driver's errors become eventsourcing's persistence errors as they leave a transaction
(`driver_errors`, used by each backend's `Database`), so eventsourcing's own and the ledger's
statements fail alike; `translated_errors` then maps those to codes at the facade's edge.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import (
    DataError,
    IntegrityError,
    InterfaceError,
    MapperDeserialisationError,
    OperationalError,
    PersistenceError,
    RecordConflictError,
)

from ..domain.errors import Code, LedgerError
from .base import Backend


@contextmanager
def driver_errors(driver: Any) -> Iterator[None]:
    """A DB-API driver's errors (sqlite3's, psycopg's) as eventsourcing's."""
    try:
        yield
    except driver.IntegrityError as e:
        raise IntegrityError(e) from e
    except driver.OperationalError as e:
        raise OperationalError(e) from e
    except driver.Error as e:
        raise PersistenceError(e) from e
    except OverflowError as e:  # sqlite3's for an integer past 64 bits, outside its Error hierarchy
        raise DataError(e) from e


# What a driver's error says about retrying, read from the error itself: PostgreSQL's SQLSTATE
# (psycopg's `sqlstate`), SQLite's result code name (sqlite3's `sqlite_errorname`).
_REFUSED_SQLSTATE_CLASSES = ("22", "54")  # data exception; program limit exceeded (an index row too large)
_REFUSED_SQLITE = ("SQLITE_TOOBIG", "SQLITE_MISMATCH", "SQLITE_RANGE")
_FULL_SQLSTATES = ("53100", "53200", "53300")  # disk full, out of memory, too many connections
_FULL_SQLITE = ("SQLITE_FULL", "SQLITE_NOMEM")
_SCHEMA_SQLSTATES = ("42P01", "42703", "42804", "42P07")  # no such table / column, a type that differs
_SCHEMA_SQLITE_TEXT = ("no such table", "no such column", "has no column named")
_TOO_LARGE_SQLITE_TEXT = ("too many SQL variables", "Expression tree is too large", "parser stack overflow")
_CORRUPT_SQLITE = ("SQLITE_CORRUPT",)


def _driver_error(error: BaseException) -> BaseException:
    """The driver's own exception under eventsourcing's wrapper."""
    seen: BaseException | None = error
    while seen is not None:
        if hasattr(seen, "sqlstate") or hasattr(seen, "sqlite_errorname") or isinstance(seen, OverflowError):
            return seen
        seen = seen.__cause__ or (seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None)
    return error


def _kind(error: BaseException) -> str:
    """`refused` (the data or statement, for ever), `full`, `schema`, `corrupt`, or `` (maybe passing)."""
    driver = _driver_error(error)
    state = getattr(driver, "sqlstate", None) or ""
    name = getattr(driver, "sqlite_errorname", None) or ""
    text = str(driver)
    if state[:2] in _REFUSED_SQLSTATE_CLASSES or name in _REFUSED_SQLITE or isinstance(driver, OverflowError):
        return "refused"
    if state in _FULL_SQLSTATES[:1] or name in _FULL_SQLITE:
        return "full"
    if state in _SCHEMA_SQLSTATES or (name == "SQLITE_ERROR" and any(t in text for t in _SCHEMA_SQLITE_TEXT)):
        return "schema"
    if name == "SQLITE_ERROR" and any(t in text for t in _TOO_LARGE_SQLITE_TEXT):
        return "too-large"  # a statement past the database's limits: the filter that made it
    if name in _CORRUPT_SQLITE or state in ("XX001", "XX002"):  # a damaged page or index
        return "corrupt"
    if name == "SQLITE_NOTADB":
        return "not-a-database"
    return ""


def refused_data(error: BaseException) -> bool:
    """Whether the database refused the data itself (a value out of its range, a row too large for an
    index): sending it again cannot succeed, unlike a database that is down or busy."""
    return _kind(error) == "refused"


_PERMANENT = {
    "refused": (Code.INVALID_ARGUMENT, "the database refused the data"),
    "full": (Code.RESOURCE_EXHAUSTED, "the database is out of space"),
    "schema": (
        Code.FAILED_PRECONDITION,
        "the database's tables are not the ledger's (run `ledger init`?) or the query is too large",
    ),
    "corrupt": (Code.DATA_LOSS, "the database file is damaged"),
    # As for a database without the ledger's tables (reading opens), the reason says it is no ledger.
    "not-a-database": (Code.UNAVAILABLE, "not a ledger (not a SQLite database file)"),
}


def _permanent(error: BaseException, backend: Backend) -> LedgerError | None:
    kind = _kind(error)
    if not kind:
        return None
    code, what = _PERMANENT[kind]
    return LedgerError(code, f"{what} at {backend.redacted_url}: {_scrub(error, backend)}")


@contextmanager
def translated_errors(backend: Backend) -> Iterator[None]:
    """Storage failures as google.rpc codes; a password never appears in a message."""
    try:
        yield
    except RecordConflictError as e:
        raise LedgerError(
            Code.ABORTED, f"another writer changed the operation first; retry ({_scrub(e, backend)})"
        ) from None
    except (OperationalError, InterfaceError) as e:
        if isinstance(e, IntegrityError):  # pragma: no cover - caught above as a conflict
            raise
        raise _connection_failure(e, backend, "reach") from None
    except PersistenceError as e:  # not a connection problem: the statement or the data was refused
        permanent = _permanent(e, backend)
        if permanent is not None:
            raise permanent from None
        raise LedgerError(Code.INTERNAL, f"storage error at {backend.redacted_url}: {_scrub(e, backend)}") from None
    except MapperDeserialisationError as e:
        raise LedgerError(Code.DATA_LOSS, str(e)) from None
    except backend.unwrapped_errors as e:  # raised by the driver where eventsourcing does not wrap it
        raise _connection_failure(e, backend, "use") from None


def _connection_failure(error: BaseException, backend: Backend, doing: str) -> LedgerError:
    """A driver failure that is not the statement's fault: permanent when the database says so, a
    lost race (ABORTED) when another writer holds the lock, else the database out of reach."""
    permanent = _permanent(error, backend)
    if permanent is not None:
        return permanent
    text = _scrub(error, backend)
    if "locked" in text or "busy" in text:
        return LedgerError(Code.ABORTED, f"the store is busy with another writer; retry ({text})")
    return LedgerError(Code.UNAVAILABLE, f"cannot {doing} {backend.redacted_url}: {text}")


def _scrub(error: BaseException, backend: Backend) -> str:
    text = str(error).strip() or type(error).__name__
    if backend.secret:
        text = text.replace(backend.secret, "***")
    return text
