"""Credentials for a source, from google-auth: application default credentials (GOOGLE_APPLICATION_CREDENTIALS,
gcloud's user credentials, the metadata server), a credentials file (a service-account key), a bearer
token kept in a file, or none. google-auth refreshes a token before it expires; a 401 (or gRPC
UNAUTHENTICATED) makes the collector refresh once more and repeat the request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import google.auth
import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.requests
import orjson

from ..domain.errors import Code, LedgerError
from .sources import Auth

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


class TokenFileCredentials(google.auth.credentials.Credentials):
    """A bearer token read from a file (another ledger's `ledger token new` output, say). A refresh
    reads the file again, so a token replaced in the file is used from the next 401 on."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = Path(path)
        self.token = self._read()

    def _read(self) -> str:
        try:
            token = self.path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise google.auth.exceptions.RefreshError(f"cannot read the token file {self.path}: {e}") from None
        if not token:
            raise google.auth.exceptions.RefreshError(f"the token file {self.path} is empty")
        return token

    def refresh(self, request: Any) -> None:
        self.token = self._read()


def load(auth: Auth) -> Any:
    """The google-auth credentials an Auth names; UNAUTHENTICATED with google-auth's reason if none."""
    try:
        if auth.kind == "anonymous":
            return google.auth.credentials.AnonymousCredentials()
        if auth.kind == "token-file":
            return TokenFileCredentials(auth.path)
        if auth.kind == "file":
            return _from_file(auth.path)
        credentials, _ = google.auth.default(scopes=SCOPES)
        return credentials
    except google.auth.exceptions.GoogleAuthError as e:
        raise LedgerError(Code.UNAUTHENTICATED, f"credentials ({auth.describe()}): {e}") from None


def _from_file(path: str) -> Any:
    """A service-account key (or gcloud's authorized-user file), read as its own type says."""
    from google.oauth2 import credentials as user
    from google.oauth2 import service_account

    try:
        kind = orjson.loads(Path(path).read_bytes()).get("type")
    except (OSError, orjson.JSONDecodeError, AttributeError) as e:
        raise LedgerError(Code.INVALID_ARGUMENT, f"credentials: {path} is not a credentials JSON file: {e}") from None
    if kind == "service_account":
        return service_account.Credentials.from_service_account_file(path, scopes=SCOPES)
    if kind == "authorized_user":
        return user.Credentials.from_authorized_user_file(path, scopes=SCOPES)
    raise LedgerError(
        Code.INVALID_ARGUMENT,
        f"credentials: {path} is of type {kind!r}; give a service-account key, or point "
        "GOOGLE_APPLICATION_CREDENTIALS at it for Google's application default credentials",
    )


def authorization(
    credentials: google.auth.credentials.Credentials, request: Any, *, renew: bool = False
) -> dict[str, str]:
    """The headers that authorise one request: a token refreshed first when it has expired (or
    when `renew`, after the server refused the last one)."""
    headers: dict[str, str] = {}
    if isinstance(credentials, google.auth.credentials.AnonymousCredentials):
        return headers
    if renew:
        credentials.refresh(request)
    credentials.before_request(request, "GET", "", headers)
    return headers


def token_request() -> Any:
    """The transport google-auth uses to fetch tokens (token URIs, the metadata server)."""
    return google.auth.transport.requests.Request()
