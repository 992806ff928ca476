"""Where library errors become CLI errors, and how commands reach the ledger and print data."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import click
import orjson

from ..application import Ledger
from ..domain.errors import LedgerError


class LedgerGroup(click.Group):
    """Turns a LedgerError from any command into `Error: CODE_NAME: message` and exit 1.

    Commands given as `lazy_commands` (name -> "module:attribute") are imported when first looked
    up, so `ledger get` does not load the modules of export, audit or the server (start-up time of
    single commands); `--help` looks up, and so imports, them all.
    """

    def __init__(self, *args: Any, lazy_commands: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            module, _, attribute = self.lazy_commands[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and args[0] not in self.lazy_commands:
            for name in self.lazy_commands:  # click suggests close names from the commands it holds
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)

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
