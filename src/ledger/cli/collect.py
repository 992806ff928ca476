"""`ledger collect`: poll ListOperations collections and record every change they show."""

from __future__ import annotations

import click

from .boundary import emit, open_ledger


@click.command()
@click.argument("sources", nargs=-1, metavar="SOURCE...")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False), help="A TOML file of sources.")
@click.option("--once", is_flag=True, help="One full sweep of every source, then exit (for cron).")
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), help="Seconds between polls [30].")
@click.option(
    "--sweep-every", type=click.IntRange(min=1), help="A full sweep every N intervals; hot polls between [10]."
)
@click.option("--filter", "filter_", metavar="EXPR", help="The API's list filter, sent with every list request.")
@click.option("--rate-limit", type=click.FloatRange(min=0, min_open=True), help="Requests a second, per source [5].")
@click.option("--page-size", type=click.IntRange(min=0), help="pageSize of list requests [the API's default].")
@click.option("--anonymous", is_flag=True, help="Send no credentials.")
@click.option("--credentials", type=click.Path(exists=True, dir_okay=False), help="A service-account key file.")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False), help="A file holding a bearer token.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), help="TLS: trust these certificates.")
@click.option("--status", "show_status", is_flag=True, help="Print each source's checkpoint as JSON, and exit.")
@click.pass_context
def collect(
    ctx: click.Context,
    sources: tuple[str, ...],
    config: str | None,
    once: bool,
    interval: float | None,
    sweep_every: int | None,
    filter_: str | None,
    rate_limit: float | None,
    page_size: int | None,
    anonymous: bool,
    credentials: str | None,
    token_file: str | None,
    ca_file: str | None,
    show_status: bool,
) -> None:
    """Poll SOURCE... (ListOperations collections) and record every change of every operation.

    A SOURCE is a REST collection URL (https://dataproc.googleapis.com/v1/projects/P/regions/R/operations;
    http:// for a local server), or grpcs://HOST:PORT/PARENT (grpc:// for plaintext). Each poll's
    operations are recorded as `ingest --snapshots` records them: exactly as the API returned them,
    nothing for an unchanged one. A full sweep runs every few polls; between sweeps only running
    operations are polled. Credentials: Google's application default credentials unless one of
    --anonymous, --credentials, --token-file is given. Runs until SIGINT/SIGTERM; --once makes one
    full sweep and exits 1 if a source failed. Progress and one JSON log line per sweep on stderr.

    \b
    Examples:
      ledger collect https://dataproc.googleapis.com/v1/projects/acme/regions/us-central1/operations
      ledger collect --config collect.toml --once
      ledger collect http://127.0.0.1:8080/v1/projects/acme/operations --token-file ops.token
      ledger collect --status
    """
    try:
        from ..collect import collect as run_collect
        from ..collect import status
    except ImportError as e:  # google-auth, requests or grpcio missing
        raise click.ClickException(f"ledger collect needs pip install 'ledger[collect]' ({e})") from None
    from ..collect.sources import auth_from, load_config, parse_source

    if show_status:
        emit(status(open_ledger(ctx, create=False), sources))
        return
    settings: dict[str, object] = {
        key: value
        for key, value in (
            ("interval", interval),
            ("sweep_every", sweep_every),
            ("filter", filter_),
            ("rate_limit", rate_limit),
            ("page_size", page_size),
            ("ca_file", ca_file),
        )
        if value is not None
    }
    auth = auth_from(credentials=credentials, token_file=token_file, anonymous=anonymous)
    if auth is not None:
        settings["auth"] = auth
    chosen = load_config(config, settings) if config else []
    chosen += [parse_source(url, **settings) for url in sources]
    if not chosen:
        raise click.UsageError("give at least one SOURCE or --config FILE (or --status)")
    if not run_collect(ctx.find_root().obj, chosen, once=once):
        ctx.exit(1)
