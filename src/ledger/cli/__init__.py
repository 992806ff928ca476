"""The `ledger` command: a click group whose commands parse, call `Ledger`, and print JSON."""

from __future__ import annotations

import click

from .. import __version__
from ..store import DEFAULT_URL
from .access import iam, serve, token
from .audit import audit, digest, verify
from .boundary import LedgerGroup
from .operations import register
from .transfer import export, follow, ingest, simulate
from .views import list_, replay


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


register(cli)
cli.add_command(list_)
cli.add_command(replay)
for command in (audit, digest, verify, simulate, ingest, export, follow, serve, token, iam):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="ledger")
