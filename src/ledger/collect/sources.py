"""What to collect from: ListOperations collections given as URLs on the command line or in a TOML file.

A source is a REST collection URL (`https://dataproc.googleapis.com/v1/projects/P/regions/R/operations`,
`http://` for local servers) or a gRPC target with the `name` its ListOperations requests carry
(`grpcs://HOST:PORT/PARENT`, `grpc://HOST:PORT/PARENT` for plaintext; PARENT is sent as written).
Each source has its own interval, filter, credentials and rate limit; the TOML file's top level gives
defaults for all of its sources.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..domain.errors import invalid

HOT_MODES = ("auto", "filter", "get")


@dataclass(frozen=True)
class Auth:
    """How a source's requests are authorised: `adc` (Google's application default credentials),
    `file` (a service-account key or any google-auth credentials file), `token-file` (a bearer token
    kept in a file, for another ledger's server) or `anonymous`."""

    kind: str = "adc"
    path: str = ""

    def describe(self) -> str:
        return f"{self.kind}:{self.path}" if self.path else self.kind


@dataclass(frozen=True)
class Source:
    url: str  # as the user wrote it; also the source's key in the checkpoints
    kind: str  # "rest" or "grpc"
    target: str  # REST: the collection URL; gRPC: HOST:PORT
    parent: str  # gRPC: ListOperations' `name`, as given; REST: "" (the URL holds it)
    tls: bool
    interval: float = 30.0  # seconds between polls
    sweep_every: int = 10  # a full sweep every this many intervals; hot polls between
    filter: str = ""
    auth: Auth = field(default_factory=Auth)
    rate_limit: float = 5.0  # requests per second, at most
    page_size: int = 0  # 0: the API's default
    hot: str = "auto"  # how running operations are polled between sweeps (see HOT_MODES)
    timeout: float = 30.0  # seconds for one request
    proto_modules: tuple[str, ...] = ()  # gRPC: modules whose import registers the APIs' message types
    ca_file: str = ""  # TLS: the certificates to trust instead of the system's (a private CA)


def parse_source(url: str, **settings: Any) -> Source:
    """A source from its URL, with any settings (interval, filter, auth, ...) given."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.netloc or not parts.path.rstrip("/").endswith("/operations"):
            raise invalid("source", f"{url!r}: a REST source is a collection URL ending in /operations")
        source = Source(url, "rest", url.rstrip("/"), "", scheme == "https")
    elif scheme in ("grpc", "grpcs"):
        if not parts.hostname or not parts.port:
            raise invalid("source", f"{url!r}: a gRPC source is {scheme}://HOST:PORT/PARENT")
        # ListOperations' `name`, as written: Dataproc wants its collection in it
        # (projects/P/regions/R/operations), as its HTTP binding has it; a ledger takes either form.
        parent = parts.path.strip("/")
        source = Source(url, "grpc", parts.netloc, parent, scheme == "grpcs")
    else:
        raise invalid("source", f"{url!r}: use https:// or http:// (REST), grpcs:// or grpc:// (gRPC)")
    return _checked(replace(source, **settings))


def _checked(source: Source) -> Source:
    if source.interval <= 0:
        raise invalid("interval", f"{source.interval} is not a positive number of seconds")
    if source.sweep_every < 1:
        raise invalid("sweep_every", f"{source.sweep_every} is not a positive number of polls")
    if source.rate_limit <= 0:
        raise invalid("rate_limit", f"{source.rate_limit} is not a positive number of requests a second")
    if source.page_size < 0:
        raise invalid("page_size", f"{source.page_size} is negative")
    if source.hot not in HOT_MODES:
        raise invalid("hot", f"{source.hot!r} is not one of {', '.join(HOT_MODES)}")
    return source


# TOML keys and the Source fields they set.
_SETTINGS = {
    "interval": ("interval", float),
    "sweep_every": ("sweep_every", int),
    "filter": ("filter", str),
    "rate_limit": ("rate_limit", float),
    "page_size": ("page_size", int),
    "hot": ("hot", str),
    "timeout": ("timeout", float),
    "ca_file": ("ca_file", str),
}
_AUTH_KEYS = ("credentials", "token_file", "anonymous")


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> list[Source]:
    """The sources of a TOML file: top-level keys are defaults, each `[[source]]` table one source.

    `overrides` (from command-line options) apply to every source, over both.
    """
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise invalid("config", f"cannot read {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise invalid("config", f"{path}: {e}") from None
    tables = document.pop("source", [])
    if not isinstance(tables, list) or not tables:
        raise invalid("config", f"{path}: no [[source]] tables")
    sources = []
    for number, table in enumerate(tables, start=1):
        defaults = dict(document)
        if any(key in table for key in _AUTH_KEYS):  # a source's own credentials replace the defaults'
            defaults = {k: v for k, v in defaults.items() if k not in _AUTH_KEYS}
        merged = {**defaults, **table}
        url = merged.pop("url", None)
        if not isinstance(url, str):
            raise invalid("config", f"{path}: source {number} has no url")
        settings = _settings(merged, f"{path}: source {number}")
        sources.append(parse_source(url, **{**settings, **(overrides or {})}))
    return sources


def _settings(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for key, value in table.items():
        if key in _SETTINGS:
            attribute, kind = _SETTINGS[key]
            if isinstance(value, bool) or not isinstance(value, (kind, int) if kind is float else kind):
                raise invalid("config", f"{where}: {key} = {value!r} is not a {kind.__name__}")
            settings[attribute] = kind(value)
        elif key == "proto_modules":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise invalid("config", f"{where}: proto_modules must be a list of module names")
            settings["proto_modules"] = tuple(value)
        elif key not in _AUTH_KEYS:
            raise invalid("config", f"{where}: unknown key {key!r}")
    auth = auth_from(
        credentials=table.get("credentials"), token_file=table.get("token_file"), anonymous=table.get("anonymous")
    )
    if auth is not None:
        settings["auth"] = auth
    return settings


def auth_from(*, credentials: object = None, token_file: object = None, anonymous: object = None) -> Auth | None:
    """The Auth chosen by at most one of the three options (None: application default credentials)."""
    chosen = [
        kind
        for kind, value in (("credentials", credentials), ("token_file", token_file), ("anonymous", anonymous))
        if value
    ]
    if len(chosen) > 1:
        raise invalid(chosen[1], f"give only one of credentials, token_file and anonymous (got {', '.join(chosen)})")
    if credentials:
        return Auth("file", str(credentials))
    if token_file:
        return Auth("token-file", str(token_file))
    if anonymous is True:
        return Auth("anonymous")
    if anonymous not in (None, False):
        raise invalid("anonymous", f"{anonymous!r} is not true or false")
    return None
