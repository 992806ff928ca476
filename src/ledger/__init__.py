"""ledger: an event-sourced ledger of google.longrunning operations."""

from __future__ import annotations

from .application import Ledger
from .domain.errors import Code, LedgerError

__version__ = "0.1.0"
__all__ = ["Code", "Ledger", "LedgerError", "__version__"]
