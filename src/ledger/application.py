"""The `Ledger` facade users call: it checks arguments, then hands each call to the module that owns
it (recording, reading, projections, ingest, export, follow, audit, policies) and maps storage
failures to google.rpc codes. It opens no transaction itself."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Concatenate, ParamSpec, TypedDict, TypeVar, Unpack

import orjson

from .domain import commands
from .domain.errors import Code, LedgerError, invalid
from .domain.names import validate_name
from .domain.operation import CancelRequested, Deleted, Failed, OperationEvent, Progressed, Succeeded, repeats_cancel
from .domain.rendering import render_operation
from .domain.timestamps import Timestamp, now, parse_timestamp
from .domain.values import MAX_POSITION, JSONObject, check_position
from .projections import queries
from .projections.engine import Progress, ProjectionEngine
from .projections.rows import flat_row
from .projections.views import VIEWS
from .reading import Reader, wait_until_done
from .recording import Recorder
from .runtime import batch_job
from .storage.base import Backend, Database
from .storage.errors import translated_errors
from .storage.store import LedgerApplication, Store
from .storage.urls import DEFAULT_URL, open_backend

# ingest, export, audit and policies are imported in the methods that use them, so that a command
# such as `ledger get` does not load them (start-up time of single commands).
if TYPE_CHECKING:
    from .ingest import Rejection
    from .policies import Policies

History = list[JSONObject]  # named here: inside Ledger, `list` is the list method


class ListQuery(TypedDict, total=False):
    """What `list`, `list_json` and `list_flat` take besides the parent collection."""

    filter: str  # AIP-160
    page_size: int  # 0: the default page size
    page_token: str  # the next_page_token of the page before
    as_of: datetime | str | None  # the collection as it was then


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _storage_errors(method: Callable[Concatenate[Ledger, _P], _T]) -> Callable[Concatenate[Ledger, _P], _T]:
    """Storage failures inside the call leave it as google.rpc codes (storage/errors.py)."""

    @functools.wraps(method)
    def wrapped(self: Ledger, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        with translated_errors(self.parts.backend):
            return method(self, *args, **kwargs)

    return wrapped


def _readable(store: Store, engine: ProjectionEngine) -> bool:
    """Whether a ledger opened to read can be read as it is. It makes no eventsourcing Application
    and writes nothing: not the ledger's tables into another application's database, nor into an
    empty file (start-up time of single commands too); a server that cannot be reached fails here,
    once, with its reason. False: it is a ledger whose views a set-up must complete."""
    store.db.connect()
    if engine.ready():
        return True
    reason = engine.not_a_ledger()
    if reason is not None:
        store.close()
        raise LedgerError(Code.UNAVAILABLE, f"cannot read {store.backend.redacted_url} as a ledger: {reason}")
    return store.db.read_only  # leftovers of a rebuild, which a writer clears


@dataclass(frozen=True)
class Parts:
    """What a ledger is made of, one layer each: for tests, benchmarks and tools that must reach
    below the facade (to tamper with the log, to save as plain eventsourcing would, ...)."""

    store: Store
    engine: ProjectionEngine
    recorder: Recorder
    reader: Reader

    @property
    def backend(self) -> Backend:
        return self.store.backend

    @property
    def db(self) -> Database:
        return self.store.db

    @property
    def app(self) -> LedgerApplication:
        return self.store.application


class Ledger:
    """Records operation lifecycles as events and reads them back as Operation JSON.

    >>> with Ledger.open("sqlite:///ledger.db") as lg:
    ...     lg.create("operations/build-1", verb="build")
    """

    def __init__(self, store: Store, engine: ProjectionEngine) -> None:
        self.parts = Parts(store, engine, Recorder(store, engine), Reader(store, engine))
        self._policies: Policies | None = None
        self._policies_lock = threading.Lock()

    @classmethod
    def open(cls, url: str | None = None, *, create: bool = True) -> Ledger:
        """Open the ledger at `url` (default: $LEDGER_DATABASE_URL, else sqlite:///ledger.db).

        With `create=False` a SQLite file that does not exist is UNAVAILABLE instead of made.
        """
        backend = open_backend(url or os.environ.get("LEDGER_DATABASE_URL") or DEFAULT_URL)
        if not create and not backend.exists():
            raise LedgerError(Code.UNAVAILABLE, f"no ledger at {backend.redacted_url}; run `ledger init` first")
        store = Store(backend)
        engine = ProjectionEngine(store.db, store.transcoder, url=backend.url)
        with translated_errors(backend):
            if not create and _readable(store, engine):
                return cls(store, engine)
            store.set_up(engine.ensure)
        return cls(store, engine)

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self.parts.backend.redacted_url

    # -- commands -------------------------------------------------------------------------------

    @_storage_errors
    def create(
        self,
        name: str,
        *,
        verb: str | None = None,
        target: str | None = None,
        api_version: str | None = None,
        metadata: JSONObject | str | None = None,
        lifecycle_fields: str | None = None,
        request_id: str | None = None,
        occurred_at: datetime | str | None = None,
    ) -> JSONObject:
        """Record Created. Repeated with the same content or request id, returns the existing operation."""
        name = validate_name(name)
        values = commands.created_values(
            verb=verb, target=target, api_version=api_version, metadata=metadata,
            lifecycle_fields=lifecycle_fields, request_id=request_id,
        )  # fmt: skip
        return self.parts.recorder.create(name, _when(occurred_at), values)

    @_storage_errors
    def progress(
        self,
        name: str,
        *,
        status_detail: str | None = None,
        progress_percent: int | None = None,
        metadata_patch: JSONObject | str | None = None,
        occurred_at: datetime | str | None = None,
    ) -> JSONObject:
        """Record Progressed: a status detail, a percentage, and/or an RFC 7396 metadata patch."""
        name = validate_name(name)
        when = _when(occurred_at)
        op = self.parts.recorder.load(name)
        values = commands.progressed_values(
            op, status_detail=status_detail, progress_percent=progress_percent, metadata_patch=metadata_patch
        )
        return self.parts.recorder.record(op, Progressed, when, values)

    @_storage_errors
    def cancel(self, name: str, *, occurred_at: datetime | str | None = None) -> JSONObject:
        """Record CancelRequested; asking again while it stands records nothing."""
        name = validate_name(name)
        when = _when(occurred_at)
        op = self.parts.recorder.load(name)
        if repeats_cancel(op):
            return render_operation(op)
        return self.parts.recorder.record(op, CancelRequested, when, {})

    @_storage_errors
    def succeed(
        self, name: str, *, response: JSONObject | str | None = None, occurred_at: datetime | str | None = None
    ) -> JSONObject:
        """Record Succeeded with `response` (an Any; google.protobuf.Empty when not given)."""
        name = validate_name(name)
        values = commands.succeeded_values(response)
        when = _when(occurred_at)
        return self._record(name, Succeeded, when, values)

    @_storage_errors
    def fail(
        self,
        name: str,
        *,
        code: int | str,
        message: str = "",
        details: Iterable[JSONObject] | str = (),
        occurred_at: datetime | str | None = None,
    ) -> JSONObject:
        """Record Failed with a google.rpc.Status; `code` is a number 1..16 or a name such as CANCELLED."""
        name = validate_name(name)
        values = commands.failed_values(code, message, details)
        when = _when(occurred_at)
        return self._record(name, Failed, when, values)

    @_storage_errors
    def delete(self, name: str, *, occurred_at: datetime | str | None = None) -> None:
        """Record Deleted: the operation leaves get and list; its history stays for audit."""
        name = validate_name(name)
        when = _when(occurred_at)
        self._record(name, Deleted, when, {})

    def _record(self, name: str, event: type[OperationEvent], when: Timestamp, values: JSONObject) -> JSONObject:
        return self.parts.recorder.record(self.parts.recorder.load(name), event, when, values)

    # -- queries --------------------------------------------------------------------------------

    def get(self, name: str, *, as_of: datetime | str | int | None = None) -> JSONObject:
        """The Operation JSON now, or as of a version (int) or an occurredAt time (datetime or RFC 3339)."""
        return orjson.loads(self.get_json(name, as_of=as_of))  # type: ignore[no-any-return]

    @_storage_errors
    def get_json(self, name: str, *, as_of: datetime | str | int | None = None) -> bytes:
        """`get`, as the exact JSON bytes the view stores."""
        name = validate_name(name)
        if isinstance(as_of, bool):
            raise invalid("as_of", "give a version number or a time")
        if isinstance(as_of, int) and not 1 <= as_of <= MAX_POSITION:
            raise invalid("version", f"{as_of} is not a version (1..{MAX_POSITION})")
        version = as_of if isinstance(as_of, int) else None
        when = None if as_of is None or version is not None else parse_timestamp(as_of, "as_of")
        return self.parts.reader.operation(name, version, when)

    def list(self, parent: str | None = None, **query: Unpack[ListQuery]) -> JSONObject:
        """One page of ListOperationsResponse JSON: newest createTime first, then by name."""
        return orjson.loads(self._page(parent, query).json())  # type: ignore[no-any-return]

    def list_json(self, parent: str | None = None, **query: Unpack[ListQuery]) -> bytes:
        """`list`, as JSON bytes assembled from the stored operation bytes."""
        return self._page(parent, query).json()

    def list_flat(self, parent: str | None = None, **query: Unpack[ListQuery]) -> tuple[History, str]:
        """One page as flat rows of the view's columns (for csv and tables), and the next page token."""
        page = self._page(parent, query)
        return [flat_row(row) for row in page.flat], page.next_token

    @_storage_errors
    def _page(self, parent: str | None, query: ListQuery) -> queries.Page:
        unknown = sorted(set(query) - set(ListQuery.__annotations__))
        if unknown:  # as Python says of any keyword a signature lacks
            raise TypeError(f"got an unexpected keyword argument {unknown[0]!r}")
        filter_, as_of = query.get("filter", ""), query.get("as_of")
        if not isinstance(filter_, str):
            raise invalid("filter", "must be a string")
        request = queries.ListRequest(
            parent=queries.normalize_parent(parent),
            filter=filter_,
            page_size=query.get("page_size", 0),
            page_token=query.get("page_token") or "",
            as_of=None if as_of is None else parse_timestamp(as_of, "as_of"),
        )
        return self.parts.reader.page(request)

    @_storage_errors
    def history(self, name: str) -> History:
        """Every event of the operation, oldest first, with version, position, recordedAt and hash."""
        return self.parts.reader.history(validate_name(name))

    def wait(self, name: str, *, timeout: float | None = None, poll_interval: float = 0.2) -> JSONObject:
        """Poll until the operation is done or `timeout` seconds pass; return its latest state."""
        return wait_until_done(lambda: self.get(name), timeout, poll_interval)

    # -- views --------------------------------------------------------------------------------

    @_storage_errors
    def replay(
        self,
        projections: Iterable[str] | None = None,
        *,
        progress: Progress | None = None,
        total: Progress | None = None,
        batch_size: int | None = None,
    ) -> None:
        """Rebuild views from the log into new tables and swap them in; readers keep the old ones meanwhile.

        `progress(n)` is told of every batch applied, `total(n)` of how many events there are to apply.
        """
        chosen = [*projections] if projections else [*VIEWS]
        unknown = [p for p in chosen if p not in VIEWS]
        if unknown:
            raise invalid("projection", f"{', '.join(unknown)} is not one of {', '.join(VIEWS)}")
        self.parts.engine.rebuild(chosen, progress, total, batch_size)
        self.parts.db.reclaim()

    # -- moving events in and out ----------------------------------------------------------------

    @_storage_errors
    def ingest(
        self,
        lines: Iterable[bytes | str],
        *,
        snapshots: bool = False,
        on_reject: Callable[[Rejection], None] | None = None,
        on_accept: Callable[[int, str], None] | None = None,
        progress: Progress | None = None,
    ) -> JSONObject:
        """Record event JSON lines (or, with `snapshots`, Operation JSON lines) in batches.

        Bad lines go to `on_reject` and every other line lands, told to `on_accept(line, outcome)`
        (RECORDED, DUPLICATE or UNCHANGED); duplicates are skipped. Returns
        `{"lines", "recorded", "duplicates", "rejected", "operations"}`.
        """
        from .ingest import Ingester

        ingester = Ingester(self.parts.db, self.parts.store.mapper.transcoder, save=self.parts.recorder.save)
        encoded = (line.encode() if isinstance(line, str) else line for line in lines)
        with self.parts.db.bulk(), batch_job():
            summary = ingester.run(
                encoded, snapshots=snapshots, on_reject=on_reject, on_accept=on_accept, progress=progress
            )
        return summary.to_json()

    @_storage_errors
    def export(
        self,
        what: str = "events",
        *,
        format: str = "jsonl",
        since: int | None = None,
        out: str | Path | IO[bytes] | None = None,
    ) -> JSONObject:
        """Write a feed (events, operations or intervals) from position `since` on.

        `out` may be a directory (a new file per run and a manifest: the next run goes on where this
        one ended), a file path, or a binary stream. Returns what was written and its range.
        """
        from . import export

        export.check_request(what, format, since)
        return export.run(self.parts.store, self.parts.engine, what, format, since, out)

    def follow(
        self, since: int | None = None, *, poll_interval: float = 0.2, stop: Callable[[], bool] | None = None
    ) -> Iterator[JSONObject]:
        """Event JSON as events are recorded, from `since` (default: the current end) on.

        Survives the database going away: it waits, reconnects and goes on from its position.
        """
        from .follow import follow

        # At the first next(), as a generator: the log's end then, or `since` checked then.
        position = check_position(since, "since") if since is not None else self.log_end()
        yield from follow(self.parts.store, position, poll_interval=poll_interval, stop=stop)

    # -- audit --------------------------------------------------------------------------------

    @_storage_errors
    def audit(self, names: Iterable[str] | None = None, *, progress: Progress | None = None) -> JSONObject:
        """Check every history (or those named) and the views against them; change nothing.

        Returns SPEC §6's report: `{"ok", "checked": {"operations", "events"}, "findings": [...]}`.
        """
        from .audit import audit

        chosen = None if names is None else sorted({validate_name(n) for n in names})
        return audit(self.parts.engine, chosen, progress, lambda: self._policy_store().audit())

    @_storage_errors
    def digest(self) -> JSONObject:
        """`{"position": N, "digest": "sha256:..."}` for the whole log up to its end, N (and the
        policies' changes, `"policies"`, when any were set)."""
        from .audit import digest

        return digest(self.parts.db, self._policy_store().digest)

    @_storage_errors
    def verify(self, digest: JSONObject | str) -> JSONObject:
        """Check that the log (and policies) up to a saved digest are exactly as when it was taken."""
        from .audit import verify

        return verify(self.parts.db, digest, self._policy_store().verify_digest)

    # -- access policies ------------------------------------------------------------------------

    @_storage_errors
    def get_policy(self, resource: str) -> JSONObject:
        """The google.iam.v1.Policy set on exactly this resource name, with its etag."""
        return self._policy_store().get(resource)

    @_storage_errors
    def set_policy(
        self, resource: str, policy: JSONObject, *, principal: str, occurred_at: datetime | str | None = None
    ) -> JSONObject:
        """Record a new policy for the resource (and its prefix's names), made by `principal`."""
        return self._policy_store().set(resource, policy, principal=principal, occurred_at=occurred_at)

    @_storage_errors
    def policy_history(self, resource: str) -> History:
        """Every recorded change of the resource's policy, oldest first."""
        return self._policy_store().history(resource)

    @_storage_errors
    def permissions(self, principal: str | None, resource: str) -> frozenset[str]:
        """What `principal` (None: anonymous) may do on the resource, by every policy covering it."""
        return self._policy_store().permissions(principal, resource)

    def _policy_store(self) -> Policies:
        from .policies import Policies

        with self._policies_lock:
            if self._policies is None:
                self._policies = Policies(self.parts.db, self.parts.backend.setting_up)
        return self._policies

    @_storage_errors
    def log_end(self) -> int:
        """The position of the last event recorded."""
        return self.parts.reader.log_end()

    @_storage_errors
    def view_lag(self) -> dict[str, int]:
        """How many log positions each view is behind."""
        return self.parts.engine.lag()

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        self.parts.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _when(occurred_at: datetime | str | None) -> Timestamp:
    return now() if occurred_at is None else parse_timestamp(occurred_at, "occurredAt")
