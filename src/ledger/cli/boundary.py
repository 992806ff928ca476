"""Where library errors become CLI errors, and how commands reach the ledger and print data."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import click
import orjson

from ..application import Ledger
from ..errors import LedgerError


class LedgerGroup(click.Group):
    """Turns a LedgerError from any command into `Error: CODE_NAME: message` and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LedgerError as e:
            raise click.ClickException(f"{e.code_name}: {e.message}") from None


def open_ledger(ctx: click.Context, *, create: bool = True) -> Ledger:
    """The ledger at the root `--db`, closed when the command ends."""
    root = ctx.find_root()
    ledger = Ledger.open(root.obj, create=create)
    root.call_on_close(ledger.close)
    return ledger


def emit(value: Any) -> None:
    """One JSON document on stdout: data only, compact, keys in the order the contract gives."""
    sys.stdout.buffer.write(orjson.dumps(value) + b"\n")


def emit_bytes(document: bytes) -> None:
    """A JSON document that is already encoded (stored view bytes)."""
    sys.stdout.buffer.write(document + b"\n")


def emit_lines(values: Iterable[Any]) -> None:
    out = sys.stdout.buffer
    for value in values:
        out.write(orjson.dumps(value) + b"\n")
