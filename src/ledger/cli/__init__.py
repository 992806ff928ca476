"""The `ledger` command: a click group whose commands parse, call `Ledger`, and print JSON."""

from __future__ import annotations

import click

from .. import __version__
from ..storage.urls import DEFAULT_URL
from .boundary import LedgerGroup

# Each command's module is imported only when the command is used (start-up time of single commands).
COMMANDS = {
    **{
        name: f"ledger.cli.operations:{name}"
        for name in ("init", "create", "progress", "cancel", "succeed", "fail", "delete", "get", "wait", "history")
    },
    "list": "ledger.cli.views:list_",
    "replay": "ledger.cli.views:replay",
    **{name: f"ledger.cli.audit:{name}" for name in ("audit", "digest", "verify")},
    **{name: f"ledger.cli.transfer:{name}" for name in ("simulate", "ingest", "export", "follow")},
    **{name: f"ledger.cli.access:{name}" for name in ("serve", "token", "iam")},
    "collect": "ledger.cli.collect:collect",
    "types": "ledger.cli.types:types",
}


@click.group(cls=LedgerGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "database_url",
    envvar="LEDGER_DATABASE_URL",
    default=DEFAULT_URL,
    show_default=True,
    metavar="URL",
    help="sqlite:///relative.db, sqlite:////absolute.db or postgresql://user:pass@host:port/db "
    "(?host=/socket/dir, ?schema=NAME). Env: LEDGER_DATABASE_URL.",
)
@click.version_option(__version__, "--version", prog_name="ledger")
@click.pass_context
def cli(ctx: click.Context, database_url: str) -> None:
    """An event-sourced ledger of long-running operations (google.longrunning.Operation).

    Every write records an event; reads print the exact Operation JSON. Errors print
    `Error: CODE_NAME: message` on stderr and exit 1; usage errors exit 2.
    """
    ctx.obj = database_url


def main() -> None:
    cli(prog_name="ledger")
