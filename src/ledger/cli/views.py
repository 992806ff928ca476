"""Commands that read across operations or rebuild views: list, replay."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from typing import Any

import click

from ..application import Ledger
from ..projections.views import VIEWS
from .boundary import emit, emit_bytes, emit_lines, open_ledger

FLAT_COLUMNS = ("name", "state", "verb", "target", "createTime", "endTime", "errorCode", "metadataType")


def _pages(ledger: Ledger, parent: str | None, first_token: str, every: bool, **query: Any) -> Iterator[dict[str, Any]]:
    token = first_token
    while True:
        page: dict[str, Any] = ledger.list(parent, page_token=token, **query)
        yield page
        token = page.get("nextPageToken", "")
        if not every or not token:
            return


def _flat_rows(
    ledger: Ledger, parent: str | None, first_token: str, every: bool, **query: Any
) -> Iterator[dict[str, Any]]:
    token = first_token
    while True:
        rows, token = ledger.list_flat(parent, page_token=token, **query)
        yield from rows
        if not every or not token:
            return


@click.command("list")
@click.argument("parent", required=False)
@click.option("--filter", "filter_", default="", metavar="EXPR", help="AIP-160 filter, e.g. 'done = false'.")
@click.option("--page-size", type=int, default=0, show_default=True, metavar="N", help="0 means 50; at most 1000.")
@click.option("--page-token", default="", metavar="T", help="nextPageToken of the previous page.")
@click.option("--all", "every", is_flag=True, help="Follow nextPageToken through every page.")
@click.option("--as-of", metavar="TIME", help="The operations as they were at TIME (occurredAt).")
@click.option(
    "--format", "fmt", type=click.Choice(["json", "jsonl", "csv", "table"]), default="json", show_default=True
)
@click.pass_context
def list_(
    ctx: click.Context,
    parent: str | None,
    filter_: str,
    page_size: int,
    page_token: str,
    every: bool,
    as_of: str | None,
    fmt: str,
) -> None:
    """List operations, newest createTime first (ListOperationsResponse JSON).

    Without PARENT, every collection; PARENT may be written `projects/p` or `projects/p/operations`.

    \b
    Examples:
      ledger list projects/acme/locations/us-east1 --filter 'done = false AND verb = "create"'
      ledger list --filter 'error.code = CANCELLED AND createTime > "2026-11-01T00:00:00Z"' --all --format table
      ledger list --filter 'metadata.@type = "type.googleapis.com/acme.v1.BuildMetadata" metadata.step:*'
      ledger list --as-of 2026-11-21T10:00:00Z --filter 'state = RUNNING'
    """
    ledger = open_ledger(ctx, create=False)
    if fmt == "json" and not every:
        emit_bytes(ledger.list_json(parent, filter=filter_, page_size=page_size, page_token=page_token, as_of=as_of))
        return
    query = {"filter": filter_, "page_size": page_size, "as_of": as_of}
    if fmt in ("csv", "table"):
        _write_rows(list(_flat_rows(ledger, parent, page_token, every, **query)), fmt)
        return
    pages = _pages(ledger, parent, page_token, every, **query)
    if fmt == "json":  # --all: one response holding every page
        emit({"operations": [op for page in pages for op in page.get("operations", [])]})
    else:
        emit_lines(op for page in pages for op in page.get("operations", []))


def _write_rows(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=FLAT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    widths = {c: max([len(c), *(len(str(r[c])) for r in rows)]) for c in FLAT_COLUMNS}
    click.echo("  ".join(c.ljust(widths[c]) for c in FLAT_COLUMNS).rstrip())
    for row in rows:
        click.echo("  ".join(str(row[c]).ljust(widths[c]) for c in FLAT_COLUMNS).rstrip())


@click.command()
@click.option(
    "--projection",
    "projections",
    multiple=True,
    type=click.Choice(list(VIEWS)),
    help="Rebuild only this view (repeatable); default: every view.",
)
@click.option(
    "--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True, help="Events per transaction."
)
@click.pass_context
def replay(ctx: click.Context, projections: tuple[str, ...], batch_size: int) -> None:
    """Rebuild views from the event log into new tables, then swap them in atomically.

    Readers keep the old views until the swap. Interrupted, run it again: it resumes.

    \b
    Example:
      ledger replay
    """
    ledger = open_ledger(ctx, create=False)
    bar: Any = None

    def total(count: int) -> None:
        nonlocal bar
        bar = click.progressbar(length=count, label="replaying events", file=sys.stderr)
        bar.__enter__()

    def advance(count: int) -> None:
        if bar is not None:
            bar.update(count)

    try:
        ledger.replay(projections or None, progress=advance, total=total, batch_size=batch_size)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    emit({"replayed": list(projections) or list(VIEWS), "lag": ledger.view_lag()})
