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
        text = _scrub(e, backend)
        if "locked" in text or "busy" in text:
            raise LedgerError(Code.ABORTED, f"the store is busy with another writer; retry ({text})") from None
        raise LedgerError(Code.UNAVAILABLE, f"cannot reach {backend.redacted_url}: {text}") from None
    except PersistenceError as e:  # not a connection problem: the statement or the data was refused
        raise LedgerError(Code.INTERNAL, f"storage error at {backend.redacted_url}: {_scrub(e, backend)}") from None
    except MapperDeserialisationError as e:
        raise LedgerError(Code.DATA_LOSS, str(e)) from None
    except backend.unwrapped_errors as e:  # raised by the driver where eventsourcing does not wrap it
        text = _scrub(e, backend)
        if "locked" in text or "busy" in text:
            raise LedgerError(Code.ABORTED, f"the store is busy with another writer; retry ({text})") from None
        raise LedgerError(Code.UNAVAILABLE, f"cannot use {backend.redacted_url}: {text}") from None


def _scrub(error: BaseException, backend: Backend) -> str:
    text = str(error).strip() or type(error).__name__
    if backend.secret:
        text = text.replace(backend.secret, "***")
    return text
