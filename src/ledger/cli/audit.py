"""Commands that check the ledger: audit, digest, verify. Exit 3 when a check finds a problem."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..domain.errors import Code, LedgerError
from ..storage.urls import DEFAULT_URL, open_backend
from .boundary import emit, open_ledger
from .operations import JSON

PROBLEM_FOUND = 3


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json", show_default=True)
@click.pass_context
def audit(ctx: click.Context, names: tuple[str, ...], fmt: str) -> None:
    """Check every history (or the named ones) and the views; change nothing.

    Re-applies the lifecycle rules to stored events, checks each operation's versions and hash
    chain, compares the views with a fresh fold of the log (drift) and reports how far they lag.
    Exits 3 when any finding is an error.

    \b
    Examples:
      ledger audit --format text
      ledger audit projects/p/operations/op-1
    """
    try:
        ledger = open_ledger(ctx, create=False)
        bar = click.progressbar(length=max(ledger.log_end(), 1), label="auditing events", file=sys.stderr)
        with bar:
            report = ledger.audit(names or None, progress=bar.update)
        url = ledger.url
    except LedgerError as e:
        if e.code != Code.DATA_LOSS:
            raise
        # A damaged file is what audit is for: a finding and exit 3, not an error that looks passing.
        finding = {"severity": "error", "kind": "integrity", "name": None, "position": None, "detail": e.message}
        report = {"ok": False, "checked": {"operations": 0, "events": 0}, "findings": [finding]}
        url = open_backend(ctx.find_root().obj or DEFAULT_URL).redacted_url
    if fmt == "json":
        emit(report)
    else:
        _print_text(report, url)
    if not report["ok"]:
        ctx.exit(PROBLEM_FOUND)


def _print_text(report: dict[str, Any], url: str) -> None:
    checked = report["checked"]
    click.echo(f"audit of {url}: {checked['operations']} operations, {checked['events']} events")
    for f in report["findings"]:
        where = " ".join(str(part) for part in (f["name"] or "", f"@{f['position']}" if f["position"] else "") if part)
        click.echo(f"{f['severity']:<8}{f['kind']:<9}{where}  {f['detail']}")
    errors = sum(f["severity"] == "error" for f in report["findings"])
    warnings = len(report["findings"]) - errors
    click.echo("ok" if report["ok"] else "FAILED" + f": {errors} error(s), {warnings} warning(s)")


@click.command()
@click.pass_context
def digest(ctx: click.Context) -> None:
    """Print {"position": N, "digest": "sha256:..."} for the whole log up to N.

    Keep it somewhere the ledger's writers cannot reach; `ledger verify` proves later that nothing at
    or before N was changed, removed, reordered or slipped in.

    \b
    Example:
      ledger digest > /secure/ledger-digest-$(date +%F).json
    """
    emit(open_ledger(ctx, create=False).digest())


@click.command()
@click.option("--digest", "saved", type=JSON, required=True, help="A digest printed by `ledger digest`.")
@click.pass_context
def verify(ctx: click.Context, saved: str) -> None:
    """Check that the log up to a saved digest's position is unchanged. Exits 3 when it is not.

    \b
    Example:
      ledger verify --digest @/secure/ledger-digest-2026-11-21.json
    """
    result = open_ledger(ctx, create=False).verify(saved)
    emit(result)
    if not result["ok"]:
        ctx.exit(PROBLEM_FOUND)
