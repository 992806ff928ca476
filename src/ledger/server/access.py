"""Who is calling: bearer tokens checked against a tokens file of principal -> token hash.

The file is JSON, `{"user:alice@example.com": "sha256:<hex of the token>", ...}`, so that the tokens
themselves live only with their holders; `ledger token new` makes one. A request without an
`Authorization` header is anonymous, which is refused unless the operator allows it; a header with
a token the file does not know is always refused. No token is ever logged.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from pathlib import Path

import orjson

from ..domain.errors import Code, LedgerError, invalid
from ..domain.iam import validate_member

TOKEN_BYTES = 32
_log = logging.getLogger("ledger.server")


def token_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "ldg_" + secrets.token_urlsafe(TOKEN_BYTES)


def read_tokens(path: Path) -> dict[str, str]:
    """principal -> token hash, as the file holds them, checked."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except orjson.JSONDecodeError as e:
        raise invalid("tokens", f"{path} is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise invalid("tokens", f"{path} must hold an object of principal -> sha256 token hash")
    for principal, hashed in data.items():
        validate_member(principal, f"tokens[{principal!r}]", principals_only=True)
        if not isinstance(hashed, str) or not hashed.startswith("sha256:") or len(hashed) != 71:
            raise invalid(f"tokens[{principal!r}]", "must be sha256:<64 hex digits> of the token")
    return data


def add_token(path: Path, principal: str) -> str:
    """Give `principal` a new token (replacing any it had); returns the token, which is stored only hashed."""
    validate_member(principal, "principal", principals_only=True)
    tokens = read_tokens(path)
    token = new_token()
    tokens[principal] = token_hash(token)
    staged = path.with_name(path.name + ".new")  # a running server never reads a half-written file
    staged.write_bytes(orjson.dumps(tokens, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    staged.chmod(0o600)
    staged.replace(path)
    return token


class Authenticator:
    """Checks bearer tokens against the tokens file, rereading it (at most once a second) when it
    changes, so that `ledger token new` replacing a token takes effect without a restart."""

    def __init__(self, tokens_file: Path | None, allow_anonymous: bool) -> None:
        self.tokens_file = tokens_file
        self.allow_anonymous = allow_anonymous
        self._principals: dict[str, str] = {}
        self._stamp: tuple[int, ...] | None = None
        self._problem = ""
        self._checked = 0.0
        self._reload()

    def _reload(self) -> None:
        self._checked = time.monotonic()
        if self.tokens_file is None:
            return
        try:
            stat = self.tokens_file.stat()
            stamp: tuple[int, ...] = (stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = ()
        except OSError as e:
            raise invalid("tokens", f"cannot read {self.tokens_file}: {e.strerror}") from None
        if stamp != self._stamp:
            if not stamp and self._stamp:
                _log.warning("tokens file %s is gone: no token is accepted until it is back", self.tokens_file)
            try:
                tokens = read_tokens(self.tokens_file)
            except OSError as e:
                raise invalid("tokens", f"cannot read {self.tokens_file}: {e.strerror}") from None
            self._principals = {hashed: principal for principal, hashed in tokens.items()}
            self._stamp = stamp

    def principal(self, authorization: str | None) -> str | None:
        """The principal an `Authorization` header proves, None for an allowed anonymous call."""
        if time.monotonic() - self._checked >= 1.0:
            try:
                self._reload()
                self._problem = ""
            except LedgerError as e:  # an unreadable file: keep the tokens we had, and say so once
                if e.message != self._problem:
                    _log.warning("tokens file not reread, the tokens read before stay: %s", e.message)
                self._problem = e.message
        if authorization is None:
            if self.allow_anonymous:
                return None
            raise LedgerError(Code.UNAUTHENTICATED, "this server needs an Authorization: Bearer <token> header")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise LedgerError(Code.UNAUTHENTICATED, "the Authorization header must be Bearer <token>")
        principal = self._principals.get(token_hash(token.strip()))
        if principal is None:
            raise LedgerError(Code.UNAUTHENTICATED, "the bearer token is not known to this server")
        return principal
