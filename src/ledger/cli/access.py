"""Commands for serving the ledger over HTTP and deciding who may use it: serve, token, iam."""

from __future__ import annotations

import getpass
import logging
import socket
from pathlib import Path
from typing import Any

import click

from ..domain.values import parse_json
from .boundary import emit, emit_lines, open_ledger
from .operations import JSON


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="LEDGER_TOKENS_FILE",
    help="JSON file of principal -> sha256 token hash (`ledger token new`). Env: LEDGER_TOKENS_FILE.",
)
@click.option("--allow-anonymous", is_flag=True, help="Let calls without a token in, as principal allUsers.")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64), help="Ledger worker threads.")
@click.option("--max-wait", default=60.0, show_default=True, type=click.FloatRange(0), help="Cap on :wait, seconds.")
@click.option(
    "--access-log",
    type=click.Choice(["none", "json"]),
    default="none",
    show_default=True,
    help="json: one JSON object a request on stderr (time, principal, method, path, status, bytes, durationMs).",
)
@click.option(
    "--grpc-port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Also serve gRPC (Operations, IAMPolicy, health, reflection) on this port; 0: off. Needs ledger[grpc].",
)
@click.option(
    "--descriptor-set",
    "descriptor_sets",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="protoc descriptor set (--include_imports) defining Any types no installed package does. Repeatable.",
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="PEM certificate chain.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="PEM private key.")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    tokens_file: Path | None,
    allow_anonymous: bool,
    threads: int,
    max_wait: float,
    access_log: str,
    grpc_port: int,
    descriptor_sets: tuple[Path, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Serve google.longrunning Operations over HTTP (OpenAPI at /openapi.json), the explorer at /ui/,
    Prometheus metrics at /metrics, /healthz and /readyz probes, and the same operations over gRPC.

    Needs the server extra: pip install 'ledger[server]'. Calls need a bearer token from the tokens
    file unless --allow-anonymous; what each principal may do is set by policies (`ledger iam set`).
    --grpc-port adds the gRPC services on the same ledger, tokens and policies (pip install
    'ledger[grpc]'); --tls-cert and --tls-key put both ports on TLS.

    \b
    Examples:
      ledger token new user:ops@example.com --tokens tokens.json
      ledger iam set projects/p --policy @policy.json
      ledger serve --port 8080 --tokens tokens.json
      ledger serve --port 8080 --grpc-port 8081 --tokens tokens.json --descriptor-set acme.pb
    """
    try:
        import uvicorn

        from ..server.access import Authenticator
        from ..server.app import create_app
    except ImportError as e:
        raise click.ClickException(f"the server needs its extra: pip install 'ledger[server]' ({e})") from None
    if tokens_file is None and not allow_anonymous:
        raise click.UsageError("give --tokens FILE, or --allow-anonymous to serve without tokens")
    authenticator = Authenticator(tokens_file, allow_anonymous)  # a bad tokens file fails here, before serving
    open_ledger(ctx).close()  # create the store and views before the first request, and fail early
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if access_log == "json":  # bare JSON lines on stderr, without the time and name the other logs carry
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("ledger.access").addHandler(handler)
        logging.getLogger("ledger.access").propagate = False
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("give --tls-cert and --tls-key together")
    tls = None if tls_cert is None or tls_key is None else (tls_key, tls_cert)
    companions = [grpc_service(host, grpc_port, descriptor_sets, tls)] if grpc_port else []
    app = create_app(
        ctx.find_root().obj,
        authenticator,
        pool_size=threads,
        max_wait=max_wait,
        access_log=access_log == "json",
        companions=companions,
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,
        log_level="info",
        loop="asyncio" if companions else "auto",  # grpc.aio runs on asyncio's own loop
        ssl_keyfile=None if tls is None else str(tls[0]),
        ssl_certfile=None if tls is None else str(tls[1]),
    )


def grpc_service(host: str, port: int, descriptor_sets: tuple[Path, ...], tls: tuple[Path, Path] | None) -> Any:
    """The gRPC companion of `serve`; its descriptor sets are read now, so a bad one fails before serving."""
    try:
        from ..server.grpc.anys import TypeRegistry
        from ..server.grpc.server import GrpcSettings, grpc_companion
    except ImportError as e:
        raise click.ClickException(f"gRPC needs its extra: pip install 'ledger[grpc]' ({e})") from None
    try:  # a port already taken fails here, in one line, rather than in the server's start-up
        socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET).close()
    except OSError as e:
        raise click.ClickException(f"cannot listen for gRPC on {host} port {port}: {e.strerror}") from None
    registry = TypeRegistry(descriptor_sets)
    pem = None if tls is None else (tls[0].read_bytes(), tls[1].read_bytes())
    return grpc_companion(GrpcSettings(host, port, registry, pem))


@click.group()
def token() -> None:
    """Bearer tokens for `ledger serve`."""


@token.command("new")
@click.argument("principal")
@click.option(
    "--tokens",
    "tokens_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="LEDGER_TOKENS_FILE",
)
def token_new(principal: str, tokens_file: Path) -> None:
    """Give PRINCIPAL (user:..., serviceAccount:...) a new token; print it once.

    Only its sha256 hash is written to the tokens file; a token the principal had is replaced.
    """
    from ..server.access import add_token

    click.echo(add_token(tokens_file, principal))


@click.group()
def iam() -> None:
    """Access policies (google.iam.v1.Policy) on resource-name prefixes; "" is the root."""


def _operator() -> str:
    return f"local:{getpass.getuser()}"


@iam.command("get")
@click.argument("resource", default="")
@click.pass_context
def iam_get(ctx: click.Context, resource: str) -> None:
    """Print the policy set on exactly RESOURCE (default: the root), with its etag."""
    emit(open_ledger(ctx, create=False).get_policy(resource))


@iam.command("set")
@click.argument("resource", default="")
@click.option("--policy", "policy", required=True, type=JSON, help="google.iam.v1.Policy JSON or @FILE.")
@click.pass_context
def iam_set(ctx: click.Context, resource: str, policy: str) -> None:
    """Replace RESOURCE's policy; an etag in it must be the current one. Recorded as made by local:USER."""
    emit(open_ledger(ctx).set_policy(resource, parse_json(policy, "policy"), principal=_operator()))


@iam.command("history")
@click.argument("resource", default="")
@click.pass_context
def iam_history(ctx: click.Context, resource: str) -> None:
    """Print every recorded change of RESOURCE's policy as JSON lines, oldest first."""
    emit_lines(open_ledger(ctx, create=False).policy_history(resource))
