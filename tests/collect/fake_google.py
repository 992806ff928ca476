"""A small fake of a Google Cloud API's operations collection, for the collector's tests.

It serves a scripted evolution of operations shaped like the real corpus (tests/corpus/operations:
Dataproc clusters and batches, Speech v1, Vertex AI, Resource Manager, Cloud Storage, API Keys) over
Google's HTTP mapping: `GET /v1/{parent}/operations` (pages, `done = false` filter) and
`GET /v1/{parent}/operations/{id}`, with bearer tokens, faults on chosen requests (429 with
Retry-After, 503, 401), and an OAuth token endpoint (`POST /token`, the JWT-bearer grant a
service-account key uses).

The script moves to its next frame once every operation that changed in the current frame has been
served `serves` times, so a collector that polls sees every state whatever its timing, and the tests
can tell what "every state" is.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

CORPUS = Path(__file__).parents[1] / "corpus" / "operations"
PARENT = "projects/demo/locations/us-central1"
BASE_TIME = 1_795_000_000  # 2026-11-18, seconds


def corpus(number: str) -> dict[str, Any]:
    (path,) = CORPUS.glob(f"{number}-*.json")
    value = orjson.loads(path.read_bytes())
    assert isinstance(value, dict)
    return value


def stamp(seconds: int) -> str:
    """An RFC 3339 time with microseconds that protobuf prints as six digits."""
    t = time.gmtime(BASE_TIME + seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{(seconds * 7919) % 1_000_000 or 1:06d}Z"


def _named(doc: dict[str, Any], name: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["name"] = name
    return {"name": name, **{k: v for k, v in doc.items() if k != "name"}}


def _dataproc_cluster(name: str, t: int) -> list[dict[str, Any]]:
    pending, done = corpus("01"), corpus("02")
    first = _named(pending, name)
    first["metadata"]["status"]["stateStartTime"] = stamp(t)
    running = copy.deepcopy(first)
    running["metadata"]["status"] = {"innerState": "RUNNING", "state": "RUNNING", "stateStartTime": stamp(t + 40)}
    running["metadata"]["statusHistory"] = [{"state": "PENDING", "stateStartTime": stamp(t)}]
    last = _named(done, name)
    last["metadata"]["status"]["stateStartTime"] = stamp(t + 95)
    last["metadata"]["statusHistory"] = [
        {"state": "PENDING", "stateStartTime": stamp(t)},
        {"state": "RUNNING", "stateStartTime": stamp(t + 40)},
    ]
    return [first, running, last]


def _dataproc_batch(name: str, t: int) -> list[dict[str, Any]]:
    done = _named(corpus("03"), name)
    done["metadata"]["createTime"] = stamp(t)
    done["metadata"]["doneTime"] = stamp(t + 300)
    running = {k: copy.deepcopy(v) for k, v in done.items() if k not in ("done", "response")}
    del running["metadata"]["doneTime"]
    return [running, done]


def _speech(name: str, t: int) -> list[dict[str, Any]]:
    running = _named(corpus("30"), name)
    running["metadata"].update(startTime=stamp(t), lastUpdateTime=stamp(t + 5), progressPercent=7)
    later = copy.deepcopy(running)
    later["metadata"].update(lastUpdateTime=stamp(t + 30), progressPercent=55)
    done = _named(corpus("29"), name)
    done["metadata"].update(startTime=stamp(t), lastUpdateTime=stamp(t + 61))
    return [running, later, done]


def _vertex(name: str, t: int) -> list[dict[str, Any]]:
    running = _named(corpus("12"), name)
    running["metadata"]["genericMetadata"] = {"createTime": stamp(t), "updateTime": stamp(t)}
    done = copy.deepcopy(running)
    done["metadata"]["genericMetadata"]["updateTime"] = stamp(t + 120)
    done["done"] = True
    done["response"] = {
        "@type": "type.googleapis.com/google.cloud.aiplatform.v1beta1.Endpoint",
        "name": f"{PARENT}/endpoints/{name.rsplit('-', 1)[-1]}",
    }
    return [running, done]


def _tag_key(name: str, t: int) -> list[dict[str, Any]]:
    failed = _named(corpus("18"), name)
    running = {k: v for k, v in failed.items() if k not in ("done", "error")}
    return [running, failed]


def _storage_cache(name: str, t: int) -> list[dict[str, Any]]:
    return [_named(corpus("04"), name)]  # no times at all, and still running when the script ends


def _api_key(name: str, t: int) -> list[dict[str, Any]]:
    return [_named(corpus("34"), name)]  # first seen done, without metadata or result


KINDS = {
    "cluster": _dataproc_cluster,
    "batch": _dataproc_batch,
    "speech": _speech,
    "endpoint": _vertex,
    "tagkey": _tag_key,
    "cache": _storage_cache,
    "apikey": _api_key,
}


def evolutions(count: int, parent: str = PARENT, *, stagger: int = 2) -> dict[str, tuple[int, list[dict[str, Any]]]]:
    """`count` operations of every kind in turn: name -> (the frame it appears in, its states)."""
    result: dict[str, tuple[int, list[dict[str, Any]]]] = {}
    for i, kind in zip(range(count), itertools.cycle(KINDS), strict=False):
        name = f"{parent}/operations/{kind}-{i:05d}"
        result[name] = (i // stagger, KINDS[kind](name, 1000 * i))
    return result


class Script:
    """Frames of the collection: which state of which operation the API shows, frame by frame."""

    def __init__(self, ops: dict[str, tuple[int, list[dict[str, Any]]]], serves: int = 2) -> None:
        self.ops = ops
        self.names = list(ops)  # list order: oldest first, so page offsets stay valid as the list grows
        self.frames = max(start + len(states) for start, states in ops.values())
        self.frame = 0
        self.serves = serves
        self.served: dict[str, int] = {}
        self.finished = threading.Event()
        self._lock = threading.Lock()

    def state(self, name: str, frame: int | None = None) -> dict[str, Any] | None:
        frame = self.frame if frame is None else frame
        start, states = self.ops[name]
        return None if frame < start else states[min(frame - start, len(states) - 1)]

    def visible(self) -> list[dict[str, Any]]:
        return [op for op in (self.state(name) for name in self.names) if op is not None]

    def changed(self) -> list[str]:
        """Operations whose state in the current frame differs from the frame before."""
        if self.frame == 0:
            return [n for n in self.names if self.state(n) is not None]
        return [n for n in self.names if self.state(n) is not self.state(n, self.frame - 1)]

    def final(self, name: str) -> dict[str, Any]:
        return self.ops[name][1][-1]

    def note_served(self, names: list[str]) -> None:
        with self._lock:
            for name in names:
                self.served[name] = self.served.get(name, 0) + 1
            while all(self.served.get(n, 0) >= self.serves for n in self.changed()):
                if self.frame + 1 >= self.frames:
                    self.finished.set()
                    return
                self.frame += 1
                self.served = {}


@dataclass
class Request:
    at: float
    method: str
    path: str
    query: dict[str, str]
    authorization: str
    status: int = 0


@dataclass
class FakeApi:
    script: Script
    page_size: int = 4
    faults: dict[int, tuple[int, dict[str, str]]] = field(default_factory=dict)  # request number -> (status, headers)
    tokens: set[str] = field(default_factory=set)  # accepted bearer tokens (empty: any request)
    issued: dict[str, float] = field(default_factory=dict)  # token endpoint's tokens -> when they expire here
    token_lifetime: float = 3600.0  # what this API allows a token it issued
    token_expires_in: int = 3600  # what the token endpoint tells the client
    public_key: bytes = b""  # the service-account key's, to check JWT assertions
    parent: str = PARENT  # the collection is {parent}/operations
    requests: list[Request] = field(default_factory=list)
    token_grants: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path != "/token"]

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        request = Request(time.monotonic(), method, parts.path, query, headers.get("authorization", ""))
        with self.lock:
            self.requests.append(request)
            number = len(self.api_requests)
        if parts.path == "/token":
            status, extra, payload = self._token(body)
        elif number in self.faults:
            status, extra = self.faults[number]
            payload = _error(status, "scripted fault")
        elif not self._authorized(request.authorization):
            status, extra, payload = 401, {}, _error(401, "Request had invalid authentication credentials.")
        else:
            status, extra, payload = self._operations(method, parts.path, query)
        request.status = status
        return status, extra, payload

    def _authorized(self, header: str) -> bool:
        if not self.tokens and not self.public_key:
            return True
        token = header.removeprefix("Bearer ")
        if token in self.tokens:
            return True
        expires = self.issued.get(token)
        return expires is not None and time.monotonic() < expires

    def _operations(self, method: str, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        collection = f"/v1/{self.parent}/operations"
        if method != "GET" or not path.startswith(collection):
            return 404, {}, _error(404, f"no route {method} {path}")
        if path == collection:
            return self._list(query)
        name = f"{self.parent}/operations/{path[len(collection) + 1 :]}"
        op = self.script.state(name) if name in self.script.ops else None
        if op is None:
            return 404, {}, _error(404, f"operation {name} not found")
        self.script.note_served([name])
        return 200, {}, orjson.dumps(op)

    def _list(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        filter_ = query.get("filter", "")
        if filter_ and filter_ != "done = false":
            return 400, {}, _error(400, f"filter: {filter_!r} is not supported")
        size = int(query.get("pageSize", "0")) or self.page_size
        offset = int(query.get("pageToken", "0") or 0)
        with self.script._lock:
            ops = self.script.visible()
        if filter_:
            ops = [op for op in ops if op.get("done") is not True]
        page = ops[offset : offset + size]
        body: dict[str, Any] = {"operations": page}
        if offset + size < len(ops):
            body["nextPageToken"] = str(offset + size)
        self.script.note_served([op["name"] for op in page])
        return 200, {}, orjson.dumps(body)

    def _token(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        from google.auth import jwt

        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        try:
            claims = jwt.decode(form.get("assertion", ""), certs=self.public_key.decode(), clock_skew_in_seconds=5)
        except Exception as e:  # any bad assertion: refused as Google's token endpoint refuses it
            return 400, {}, orjson.dumps({"error": "invalid_grant", "error_description": str(e)})
        assert claims.get("scope") and form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        token = f"ya29.{secrets.token_urlsafe(16)}"
        with self.lock:
            self.issued[token] = time.monotonic() + self.token_lifetime
            self.token_grants.append(time.monotonic())
        return (
            200,
            {},
            orjson.dumps({"access_token": token, "expires_in": self.token_expires_in, "token_type": "Bearer"}),
        )


def _error(status: int, message: str) -> bytes:
    names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}
    return orjson.dumps({"error": {"code": status, "message": message, "status": names.get(status, "UNAVAILABLE")}})


class _Handler(BaseHTTPRequestHandler):
    api: FakeApi
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, payload = self.server.api.handle(self.command, self.path, headers, body)  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Running:
    api: FakeApi
    base: str  # http://127.0.0.1:PORT

    @property
    def collection(self) -> str:
        return f"{self.base}/v1/{self.api.parent}/operations"


@contextmanager
def serve(api: FakeApi) -> Iterator[Running]:
    """Run the fake on a free loopback port for the length of a `with` (use via contextmanager)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.api = api  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Running(api, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
