"""Commands that move events in and out: simulate, ingest, export, follow."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
import orjson

from ..ingest import Rejection
from ..simulate import simulate_lines
from .boundary import emit, open_ledger

SOME_REJECTIONS = 20


@click.command()
@click.argument("count", type=click.IntRange(min=0))
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same events.")
def simulate(count: int, seed: int) -> None:
    """Print COUNT simulated operations as event JSON lines.

    Dataproc-, Cloud Storage-, Batch- and Vertex-like names and metadata; about 70% succeed, 12% fail
    with error details, 8% are cancelled, 10% are still running.

    \b
    Example:
      ledger simulate 10000 --seed 7 | ledger ingest
    """
    out = sys.stdout.buffer
    for line in simulate_lines(count, seed):
        out.write(line)


@click.command()
@click.argument(
    "source",
    required=False,
    default="-",
    metavar="[FILE|-]",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
)
@click.option("--snapshots", is_flag=True, help="Lines are Operation JSON (or ListOperationsResponse) snapshots.")
@click.option("--reject-file", type=click.Path(dir_okay=False, writable=True), help="Write rejected lines here.")
@click.pass_context
def ingest(ctx: click.Context, source: str, snapshots: bool, reject_file: str | None) -> None:
    """Load event JSON lines (or Operation snapshots) into the ledger, in batches.

    Duplicates are skipped, so loading a file twice changes nothing. With --snapshots the input may
    be JSON lines, a JSON array, pretty-printed JSON documents or gcloud's YAML, found from the
    content; a snapshot of the current state (unchanged) or of one already passed (stale) records
    nothing. A bad line is rejected with its line number and reason (in the reject file and on
    stderr); every other line lands. Exits 1 when any line was rejected. Prints a summary as JSON.

    \b
    Examples:
      ledger simulate 1000 | ledger ingest
      ledger ingest events.jsonl --reject-file rejects.jsonl
      gcloud dataproc operations list --region us-central1 --format=json | ledger ingest --snapshots
      gcloud dataproc operations describe OPERATION --region us-central1 | ledger ingest --snapshots
    """
    ledger = open_ledger(ctx)
    stream: IO[bytes] = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115 - closed below
    rejects: IO[bytes] | None = open(reject_file, "wb") if reject_file else None  # noqa: SIM115
    shown: list[Rejection] = []

    def on_reject(rejection: Rejection) -> None:
        if rejects is not None:
            rejects.write(orjson.dumps(rejection.to_json()) + b"\n")
        if len(shown) < SOME_REJECTIONS:
            shown.append(rejection)

    try:
        if source == "-":  # no length to show: the bar counts lines
            bar: Any = click.progressbar(stream, label="ingesting lines", file=sys.stderr)
            with bar:
                summary = ledger.ingest(bar, snapshots=snapshots, on_reject=on_reject)
        else:
            bar = click.progressbar(length=Path(source).stat().st_size, label="ingesting", file=sys.stderr)
            with bar:
                summary = ledger.ingest(_counted(stream, bar), snapshots=snapshots, on_reject=on_reject)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
        if rejects is not None:
            rejects.close()
    _report(summary, shown, reject_file)
    emit(summary)
    if summary["rejected"]:
        ctx.exit(1)


def _counted(stream: IO[bytes], bar: Any) -> Iterator[bytes]:
    for line in stream:
        yield line
        bar.update(len(line))


def _report(summary: dict[str, Any], shown: list[Rejection], reject_file: str | None) -> None:
    click.echo(
        f"ingested {summary['lines']} lines: {summary['recorded']} events recorded for {summary['operations']} "
        f"operations, {summary['duplicates']} duplicates skipped, {summary['rejected']} lines rejected",
        err=True,
    )
    for rejection in shown:
        click.echo(f"  line {rejection.line}: {rejection.reason}", err=True)
    if summary["rejected"] > len(shown):
        where = f" (all of them in {reject_file})" if reject_file else " (--reject-file keeps them all)"
        click.echo(f"  … and {summary['rejected'] - len(shown)} more{where}", err=True)


@click.command()
@click.option("--what", type=click.Choice(["events", "operations", "intervals"]), default="events", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]), default="jsonl", show_default=True)
@click.option("--since", type=click.IntRange(min=0), metavar="POSITION", help="Only what came after this position.")
@click.option("--out", metavar="PATH", help="A directory (new file + manifest per run; resumes) or a file.")
@click.pass_context
def export(ctx: click.Context, what: str, fmt: str, since: int | None, out: str | None) -> None:
    """Write an analytics feed: events, operations (one flat row each) or intervals (state intervals).

    With --out DIR, each run writes a new file for the positions since the last run, and records
    the range in DIR/manifest.json: scheduled, the files hold every event exactly once. Parquet needs
    the `parquet` extra (pip install 'ledger[parquet]').

    \b
    Examples:
      ledger export --what events --out exports/           # incremental, resumable
      ledger export --what operations --format csv > operations.csv
      ledger export --what intervals --format parquet --out intervals.parquet
    """
    ledger = open_ledger(ctx, create=False)
    if out is None:
        if fmt == "parquet":
            raise click.UsageError("--format parquet writes a file: give --out PATH")
        summary = ledger.export(what, format=fmt, since=since, out=sys.stdout.buffer)
        click.echo(orjson.dumps(summary).decode(), err=True)
        return
    emit(ledger.export(what, format=fmt, since=since, out=out))


@click.command()
@click.option("--since", type=click.IntRange(min=0), metavar="POSITION", help="Start after this position.")
@click.pass_context
def follow(ctx: click.Context, since: int | None) -> None:
    """Print events as JSON lines as they are recorded (from the current end, or after --since).

    Polls within a fraction of a second; if the database goes away it waits, reconnects and goes on
    from where it was. Stop it with Ctrl-C.

    \b
    Example:
      ledger follow --since 0 | jq -c 'select(.type == "Failed")'
    """
    ledger = open_ledger(ctx, create=False)
    out = sys.stdout.buffer
    try:
        for event in ledger.follow(since):
            out.write(orjson.dumps(event) + b"\n")
            out.flush()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        sys.stderr.close()
