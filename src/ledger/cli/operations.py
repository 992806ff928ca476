"""Commands that record and read single operations: init, create … delete, get, wait, history."""

from __future__ import annotations

from pathlib import Path

import click

from ..domain.operation import LIFECYCLE_FIELDS
from .boundary import emit, emit_bytes, emit_lines, open_ledger


class JsonArgument(click.ParamType):  # type: ignore[type-arg]
    """JSON text given inline or as @FILE; the library parses it so errors name the field."""

    name = "JSON|@FILE"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text.startswith("@"):
            return text
        try:
            return Path(text[1:]).read_text()
        except OSError as e:
            self.fail(f"cannot read {text[1:]}: {e.strerror}", param, ctx)


JSON = JsonArgument()
at_option = click.option("--at", "occurred_at", metavar="TIME", help="When it happened (RFC 3339); default now.")


@click.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the store (idempotent).

    \b
    Example:
      ledger --db sqlite:///ops.db init
    """
    ledger = open_ledger(ctx)
    click.echo(f"ledger ready at {ledger.url}", err=True)


@click.command()
@click.argument("name")
@click.option("--verb", help="What the operation does, e.g. create.")
@click.option("--target", help="The resource it acts on.")
@click.option("--api-version", help="The API version that started it.")
@click.option("--metadata", type=JSON, help="Metadata Any with its own @type.")
@click.option("--lifecycle-fields", type=click.Choice(LIFECYCLE_FIELDS), help="Lifecycle fields kept in metadata.")
@click.option("--request-id", help="Makes a retried create return the existing operation.")
@at_option
@click.pass_context
def create(
    ctx: click.Context,
    name: str,
    verb: str | None,
    target: str | None,
    api_version: str | None,
    metadata: str | None,
    lifecycle_fields: str | None,
    request_id: str | None,
    occurred_at: str | None,
) -> None:
    """Record Created and print the Operation.

    \b
    Examples:
      ledger create projects/p/locations/us-east1/operations/op-1 --verb create --target projects/p/clusters/c1
      ledger create operations/build-7 --metadata '{"@type": "type.googleapis.com/acme.BuildMetadata"}'
    """
    emit(
        open_ledger(ctx).create(
            name,
            verb=verb,
            target=target,
            api_version=api_version,
            metadata=metadata,
            lifecycle_fields=lifecycle_fields,
            request_id=request_id,
            occurred_at=occurred_at,
        )
    )


@click.command()
@click.argument("name")
@click.option("--detail", "status_detail", metavar="TEXT", help="Human-readable status.")
@click.option("--percent", "progress_percent", type=int, metavar="N", help="Progress, 0..100.")
@click.option("--metadata-patch", type=JSON, help="RFC 7396 merge patch for custom metadata.")
@at_option
@click.pass_context
def progress(
    ctx: click.Context,
    name: str,
    status_detail: str | None,
    progress_percent: int | None,
    metadata_patch: str | None,
    occurred_at: str | None,
) -> None:
    """Record Progressed and print the Operation.

    \b
    Example:
      ledger progress operations/build-7 --detail "compiling" --percent 40
    """
    emit(
        open_ledger(ctx).progress(
            name,
            status_detail=status_detail,
            progress_percent=progress_percent,
            metadata_patch=metadata_patch,
            occurred_at=occurred_at,
        )
    )


@click.command()
@click.argument("name")
@at_option
@click.pass_context
def cancel(ctx: click.Context, name: str, occurred_at: str | None) -> None:
    """Record CancelRequested (a second request records nothing) and print the Operation.

    The operation ends when its service records `fail --code CANCELLED`.

    \b
    Example:
      ledger cancel operations/build-7
    """
    emit(open_ledger(ctx).cancel(name, occurred_at=occurred_at))


@click.command()
@click.argument("name")
@click.option("--response", type=JSON, help="Response Any; default google.protobuf.Empty.")
@at_option
@click.pass_context
def succeed(ctx: click.Context, name: str, response: str | None, occurred_at: str | None) -> None:
    """Record Succeeded and print the Operation.

    \b
    Example:
      ledger succeed operations/build-7 --response '{"@type": "type.googleapis.com/acme.Build", "id": "7"}'
    """
    emit(open_ledger(ctx).succeed(name, response=response, occurred_at=occurred_at))


@click.command()
@click.argument("name")
@click.option("--code", required=True, help="google.rpc.Code: a number 1..16 or a name such as CANCELLED.")
@click.option("--message", default="", help="Developer-facing error message.")
@click.option("--details", type=JSON, help="JSON list of Any error details.")
@at_option
@click.pass_context
def fail(ctx: click.Context, name: str, code: str, message: str, details: str | None, occurred_at: str | None) -> None:
    """Record Failed and print the Operation.

    \b
    Examples:
      ledger fail operations/build-7 --code DEADLINE_EXCEEDED --message "build timed out"
      ledger fail operations/build-8 --code CANCELLED
    """
    emit(open_ledger(ctx).fail(name, code=code, message=message, details=details or (), occurred_at=occurred_at))


@click.command()
@click.argument("name")
@at_option
@click.pass_context
def delete(ctx: click.Context, name: str, occurred_at: str | None) -> None:
    """Record Deleted and print {}. The history stays for audit.

    \b
    Example:
      ledger delete operations/build-7
    """
    open_ledger(ctx).delete(name, occurred_at=occurred_at)
    emit({})


@click.command()
@click.argument("name")
@click.option("--as-of", metavar="TIME", help="State after every event that occurred at or before TIME.")
@click.option("--version", "version", type=int, metavar="N", help="State after the operation's N-th event.")
@click.pass_context
def get(ctx: click.Context, name: str, as_of: str | None, version: int | None) -> None:
    """Print the Operation JSON, now or as it was.

    \b
    Examples:
      ledger get operations/build-7
      ledger get operations/build-7 --version 2
      ledger get operations/build-7 --as-of 2026-11-21T10:00:00Z
    """
    if as_of is not None and version is not None:
        raise click.UsageError("give --as-of or --version, not both")
    body = open_ledger(ctx, create=False).get_json(name, as_of=version if version is not None else as_of)
    emit_bytes(body)  # the view's stored bytes, as they are


@click.command()
@click.argument("name")
@click.option("--timeout", type=float, metavar="SECONDS", help="Give up after this long; default: wait forever.")
@click.pass_context
def wait(ctx: click.Context, name: str, timeout: float | None) -> None:
    """Poll until the operation is done or the timeout passes; print its latest state.

    \b
    Example:
      ledger wait operations/build-7 --timeout 60
    """
    emit(open_ledger(ctx, create=False).wait(name, timeout=timeout))


@click.command()
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["json", "jsonl"]), default="json", show_default=True)
@click.pass_context
def history(ctx: click.Context, name: str, fmt: str) -> None:
    """Print the operation's events, oldest first, with version, position, recordedAt and hash.

    \b
    Example:
      ledger history operations/build-7 --format jsonl
    """
    events = open_ledger(ctx, create=False).history(name)
    if fmt == "jsonl":
        emit_lines(events)
    else:
        emit(events)
