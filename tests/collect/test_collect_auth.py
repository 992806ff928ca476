"""Credentials: GOOGLE_APPLICATION_CREDENTIALS pointing at a service-account key made here, whose
token_uri is the fake's token endpoint. google-auth signs a JWT with the key, the endpoint checks it
against the key's public half and grants short-lived tokens; the fake API accepts only those, and the
collector refreshes them before they expire."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ledger import Ledger
from ledger.collect import collect
from ledger.collect.reporting import Reporter
from ledger.collect.sources import Auth, parse_source

from .fake_google import FakeApi, Script, evolutions, serve

# google-auth treats a token as expired 225 s before its expiry: 227 s leaves it about 2 s of use.
EXPIRES_IN = 227


def _service_account_key(path: Path, token_uri: str) -> bytes:
    """A service-account key file as the IAM console makes one; returns the public key (PEM)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key = {
        "type": "service_account",
        "project_id": "demo",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "collector@demo.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    path.write_bytes(orjson.dumps(key))
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("how", ["application-default", "credentials-option"])
def test_service_account_tokens_are_valid_and_refreshed_on_expiry(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    script = Script(evolutions(7))
    # The fake honours a token 7 s: google-auth renews it after about 2, so no request meets a 401
    # even on a slow machine.
    api = FakeApi(script, token_expires_in=EXPIRES_IN, token_lifetime=EXPIRES_IN - 220)
    with serve(api) as running:
        key_file = tmp_path / "key.json"
        api.public_key = _service_account_key(key_file, f"{running.base}/token")
        if how == "application-default":
            monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
            auth = Auth()
        else:
            monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
            auth = Auth("file", str(key_file))
        source = parse_source(running.collection, interval=0.1, sweep_every=3, auth=auth, rate_limit=100)
        stop = threading.Event()
        reporter = Reporter(io.StringIO(), progress=False)
        thread = threading.Thread(target=collect, args=(url, [source]), kwargs={"stop": stop, "reporter": reporter})
        thread.start()
        finished = script.finished.wait(60)
        deadline = time.monotonic() + 30
        while len(api.token_grants) < 3 and time.monotonic() < deadline:  # keep polling across two expiries
            time.sleep(0.1)
        stop.set()
        thread.join(30)
    assert finished
    assert len(api.token_grants) >= 3, "tokens were not refreshed"
    requests = api.api_requests
    assert requests and all(r.status == 200 for r in requests), [r.status for r in requests if r.status != 200]
    assert all(r.authorization.removeprefix("Bearer ") in api.issued for r in requests)
    assert len({r.authorization for r in requests}) >= 3  # each refresh brought a new token into use
    with Ledger.open(url) as lg:
        for name in script.names:
            assert lg.get(name)["name"] == name


def test_a_key_the_token_endpoint_refuses_is_an_error_of_that_source(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    api = FakeApi(Script(evolutions(3)))
    stream = io.StringIO()
    with serve(api) as running:
        key_file = tmp_path / "key.json"
        _service_account_key(key_file, f"{running.base}/token")
        api.public_key = _service_account_key(tmp_path / "other.json", f"{running.base}/token")  # not this key
        source = parse_source(running.collection, auth=Auth("file", str(key_file)), rate_limit=100)
        collector = collect(url, [source], once=True, reporter=Reporter(stream, progress=False))
    assert collector is False
    assert not api.api_requests  # no request went out without a token
    errors = [orjson.loads(line) for line in stream.getvalue().splitlines() if '"error"' in line]
    assert "UNAUTHENTICATED" in errors[0]["error"] and "invalid_grant" in errors[0]["error"]
