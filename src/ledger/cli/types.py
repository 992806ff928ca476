"""`ledger types`: the Any types the ledger holds and whether the gRPC service can send each."""

from __future__ import annotations

from pathlib import Path

import click

from .boundary import emit, open_ledger


@click.command()
@click.option(
    "--descriptor-set",
    "descriptor_sets",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="protoc descriptor set, as given to `ledger serve`. Repeatable.",
)
@click.option("--format", "output", type=click.Choice(["json", "table"]), default="json", show_default=True)
@click.pass_context
def types(ctx: click.Context, descriptor_sets: tuple[Path, ...], output: str) -> None:
    """List the @type of every metadata, response and error detail in live operations, how many
    operations hold it, and whether `ledger serve --grpc-port` can pack it (and from where), with
    the same descriptor sets. Needs the grpc extra: pip install 'ledger[grpc]'.

    \b
    Examples:
      ledger types --format table
      ledger types --descriptor-set acme.pb
    """
    try:
        from ..server.grpc.anys import TypeRegistry
        from ..server.grpc.inventory import held_types
    except ImportError as e:
        raise click.ClickException(f"ledger types needs the grpc extra: pip install 'ledger[grpc]' ({e})") from None
    registry = TypeRegistry(descriptor_sets)
    found = held_types(open_ledger(ctx, create=False), registry)
    if output == "json":
        emit({"types": found})
        return
    click.echo(f"{'TYPE':<72} {'GRPC':<5} {'OPERATIONS':>10}  FIELDS / SOURCE OR PROBLEM")
    for entry in found:
        where = entry.get("problem") or entry.get("source", "")
        fields = ",".join(str(f) for f in entry["fields"])  # type: ignore[attr-defined]
        grpc = "yes" if entry["grpc"] else "no"
        click.echo(f"{entry['type']!s:<72} {grpc:<5} {entry['operations']:>10}  {fields}  {where}")
