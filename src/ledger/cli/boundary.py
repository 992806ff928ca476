"""Where library errors become CLI errors, and how commands reach the ledger and print data."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import click
import orjson

from ..application import Ledger
from ..domain.errors import LedgerError
from ..storage.urls import open_backend

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command a closed pipe ended


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
        except BrokenPipeError:
            # The reader of stdout went away (`ledger export | head`): end quietly, as `cat` would, and
            # keep Python from reporting the pipe again when it flushes stdout at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(EXIT_BROKEN_PIPE)


def open_ledger(ctx: click.Context, *, create: bool = True) -> Ledger:
    """The ledger at the root `--db`, closed when the command ends."""
    root = ctx.find_root()
    ledger = Ledger.open(root.obj, create=create)
    root.call_on_close(ledger.close)
    return ledger


def keep_password_out_of_ps(ctx: click.Context) -> None:
    """For long-running commands (serve, follow): a `--db` URL with a password on the command line is
    readable by every local user in `ps` for as long as they run. Start again with it in
    LEDGER_DATABASE_URL, which only the same user (and root) can read in /proc/PID/environ."""
    url = ctx.find_root().obj
    if not isinstance(url, str) or not open_backend(url).secret or not sys.argv[0].endswith("ledger"):
        return
    args = sys.argv[1:]
    if url in args and args.index(url) > 0 and args[args.index(url) - 1] == "--db":
        at = args.index(url) - 1
        rest = args[:at] + args[at + 2 :]
    elif f"--db={url}" in args:
        rest = [a for a in args if a != f"--db={url}"]
    else:
        return
    sys.stdout.flush()
    os.execve(sys.argv[0], [sys.argv[0], *rest], {**os.environ, "LEDGER_DATABASE_URL": url})  # noqa: S606 - ourselves


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
