"""The eventsourcing Application that stores operations, and the `Ledger` facade users call."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, TypeVar

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import OperationalError, RecordConflictError
from eventsourcing.utils import Environment, EnvType

from . import commands, log
from .domain import (
    CancelRequested,
    Deleted,
    Failed,
    Operation,
    OperationEvent,
    Progressed,
    Succeeded,
    fold,
    repeats_cancel,
    repeats_create,
)
from .errors import Code, LedgerError, invalid, not_found
from .names import validate_name
from .projections import queries
from .projections.engine import Progress, ProjectionEngine
from .projections.views import VIEWS
from .rendering import render_event, render_operation
from .store import (
    APPLICATION_NAME,
    DEFAULT_URL,
    Backend,
    OrjsonTranscoder,
    decode_stored,
    open_backend,
    translated_errors,
)
from .timestamps import Timestamp, format_timestamp, now, parse_timestamp
from .values import JSONObject, parse_json

# ingest, export, audit and policies are imported in the methods that use them, so that a command
# such as `ledger get` does not load them (start-up time of single commands).
if TYPE_CHECKING:
    from .ingest import Rejection
    from .policies import Policies

_log = logging.getLogger("ledger")
_T = TypeVar("_T")
History = list[JSONObject]  # named here: inside Ledger, `list` is the list method


class LedgerApplication(Application[str]):
    """eventsourcing's Application, configured only by the ledger's own settings."""

    name = APPLICATION_NAME

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        # Not os.environ: an unrelated PERSISTENCE_MODULE in the shell must not redirect the ledger.
        return Environment(name, dict(env or {}))


class Ledger:
    """Records operation lifecycles as events and reads them back as Operation JSON.

    >>> with Ledger.open("sqlite:///ledger.db") as lg:
    ...     lg.create("operations/build-1", verb="build")
    """

    def __init__(self, backend: Backend, app: LedgerApplication | None, engine: ProjectionEngine) -> None:
        self._backend = backend
        self._application = app  # None: made on first use, by `_app`
        self._application_lock = threading.Lock()
        self._engine = engine
        self._policies: Policies | None = None

    @classmethod
    def open(cls, url: str | None = None, *, create: bool = True) -> Ledger:
        """Open the ledger at `url` (default: $LEDGER_DATABASE_URL, else sqlite:///ledger.db).

        With `create=False` a SQLite file that does not exist is UNAVAILABLE instead of made.
        """
        backend = open_backend(url or os.environ.get("LEDGER_DATABASE_URL") or DEFAULT_URL)
        if not create and not backend.exists():
            raise LedgerError(Code.UNAVAILABLE, f"no ledger at {backend.redacted_url}; run `ledger init` first")
        engine = ProjectionEngine(backend.view_database(), OrjsonTranscoder())
        if not create:
            # Reads are answered by the views: when they are all there (ensure() would do nothing), a
            # ledger opened to read skips setting up (a connection, a lock, table statements) and
            # eventsourcing's Application until something needs them (start-up time of single
            # commands). A server that cannot be reached fails here, once, with its reason.
            with translated_errors(backend):
                engine.db.connect()
            if engine.ready():
                return cls(backend, None, engine)
        with translated_errors(backend), backend.setting_up():
            app = LedgerApplication(env=backend.environment())
            engine.ensure()
        return cls(backend, app, engine)

    @property
    def _app(self) -> LedgerApplication:
        """eventsourcing's Application, made here on first use when `open` did not make it."""
        if self._application is None:
            with self._application_lock:
                if self._application is None:
                    with translated_errors(self._backend), self._backend.setting_up():
                        self._application = LedgerApplication(env=self._backend.environment())
        return self._application

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self._backend.redacted_url

    # -- commands -------------------------------------------------------------------------------

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
            verb=verb,
            target=target,
            api_version=api_version,
            metadata=metadata,
            lifecycle_fields=lifecycle_fields,
            request_id=request_id,
        )
        when = _when(occurred_at)
        with translated_errors(self._backend):
            for attempt in range(2):
                existing = self._find(name)
                if existing is not None and repeats_create(existing, values):
                    return render_operation(existing)
                op = Operation.create(name, when, values)
                try:
                    self._save([op])
                except RecordConflictError:  # a concurrent create won; answer as a repeat would
                    if attempt:
                        raise
                    continue
                return render_operation(op)
        raise AssertionError("unreachable")  # pragma: no cover

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
        with translated_errors(self._backend):
            op = self._load(name)
            values = commands.progressed_values(
                op, status_detail=status_detail, progress_percent=progress_percent, metadata_patch=metadata_patch
            )
            return self._record(op, Progressed, when, values)

    def cancel(self, name: str, *, occurred_at: datetime | str | None = None) -> JSONObject:
        """Record CancelRequested; asking again while it stands records nothing."""
        name = validate_name(name)
        when = _when(occurred_at)
        with translated_errors(self._backend):
            op = self._load(name)
            if repeats_cancel(op):
                return render_operation(op)
            return self._record(op, CancelRequested, when, {})

    def succeed(
        self, name: str, *, response: JSONObject | str | None = None, occurred_at: datetime | str | None = None
    ) -> JSONObject:
        """Record Succeeded with `response` (an Any; google.protobuf.Empty when not given)."""
        name = validate_name(name)
        values = commands.succeeded_values(response)
        when = _when(occurred_at)
        with translated_errors(self._backend):
            return self._record(self._load(name), Succeeded, when, values)

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
        with translated_errors(self._backend):
            return self._record(self._load(name), Failed, when, values)

    def delete(self, name: str, *, occurred_at: datetime | str | None = None) -> None:
        """Record Deleted: the operation leaves get and list; its history stays for audit."""
        name = validate_name(name)
        when = _when(occurred_at)
        with translated_errors(self._backend):
            self._record(self._load(name), Deleted, when, {})

    # -- queries --------------------------------------------------------------------------------

    def get(self, name: str, *, as_of: datetime | str | int | None = None) -> JSONObject:
        """The Operation JSON now, or as of a version (int) or an occurredAt time (datetime or RFC 3339)."""
        return orjson.loads(self.get_json(name, as_of=as_of))  # type: ignore[no-any-return]

    def get_json(self, name: str, *, as_of: datetime | str | int | None = None) -> bytes:
        """`get`, as the exact JSON bytes the view stores."""
        name = validate_name(name)
        if isinstance(as_of, bool):
            raise invalid("as_of", "give a version number or a time")
        if isinstance(as_of, int) and as_of < 1:
            raise invalid("version", f"{as_of} is not a version; versions start at 1")
        version = as_of if isinstance(as_of, int) else None
        when = None if as_of is None or version is not None else parse_timestamp(as_of, "as_of")
        with translated_errors(self._backend):
            self._engine.catch_up()
            with self._engine.db.quick() as cursor:
                d = self._engine.d
                if version is not None:
                    body = queries.version_body(cursor, d, name, version)
                elif when is not None:
                    body = queries.body_as_of(cursor, d, name, when)
                else:
                    body = queries.operation_body(cursor, d, name)
            if body is None and version is not None:
                latest = self._latest_version(name)
                if 0 < latest < version:
                    raise LedgerError(Code.NOT_FOUND, f"operation {name!r} has no version {version} (latest: {latest})")
        if body is None:
            raise not_found(name)
        return body

    def list(
        self,
        parent: str | None = None,
        *,
        filter: str = "",
        page_size: int = 0,
        page_token: str = "",
        as_of: datetime | str | None = None,
    ) -> JSONObject:
        """One page of ListOperationsResponse JSON: newest createTime first, then by name."""
        return orjson.loads(  # type: ignore[no-any-return]
            self.list_json(parent, filter=filter, page_size=page_size, page_token=page_token, as_of=as_of)
        )

    def list_json(
        self,
        parent: str | None = None,
        *,
        filter: str = "",
        page_size: int = 0,
        page_token: str = "",
        as_of: datetime | str | None = None,
    ) -> bytes:
        """`list`, as JSON bytes assembled from the stored operation bytes."""
        return self._page(parent, filter, page_size, page_token, as_of).json()

    def list_flat(
        self,
        parent: str | None = None,
        *,
        filter: str = "",
        page_size: int = 0,
        page_token: str = "",
        as_of: datetime | str | None = None,
    ) -> tuple[History, str]:
        """One page as flat rows of the view's columns (for csv and tables), and the next page token."""
        page = self._page(parent, filter, page_size, page_token, as_of)
        return [_flat_row(row) for row in page.flat], page.next_token

    def _page(
        self, parent: str | None, filter_: str, page_size: int, page_token: str, as_of: datetime | str | None
    ) -> queries.Page:
        if not isinstance(filter_, str):
            raise invalid("filter", "must be a string")
        request = queries.ListRequest(
            parent=queries.normalize_parent(parent),
            filter=filter_,
            page_size=page_size,
            page_token=page_token or "",
            as_of=None if as_of is None else parse_timestamp(as_of, "as_of"),
        )
        with translated_errors(self._backend):
            self._engine.catch_up()
            with self._engine.db.read() as cursor:
                position = self._engine.positions_in(cursor)["operations"]
                return queries.list_page(cursor, self._engine.d, request, position)

    def history(self, name: str) -> History:
        """Every event of the operation, oldest first, with version, position, recordedAt and hash."""
        name = validate_name(name)
        transcoder = self._engine.transcoder
        with translated_errors(self._backend), self._engine.db.quick() as cursor:
            rendered = [
                render_event(decode_stored(n, v, topic, state, transcoder), int(position))
                for position, n, v, topic, state in log.histories(cursor, self._engine.db, [name])
            ]
        if not rendered:
            raise not_found(name)
        return rendered

    def wait(self, name: str, *, timeout: float | None = None, poll_interval: float = 0.2) -> JSONObject:
        """Poll until the operation is done or `timeout` seconds pass; return its latest state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            op = self.get(name)
            if op.get("done") or (deadline is not None and time.monotonic() >= deadline):
                return op
            pause = poll_interval if deadline is None else min(poll_interval, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)

    # -- views --------------------------------------------------------------------------------

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
        with translated_errors(self._backend), self._engine.db.bulk():
            self._engine.rebuild(chosen, progress, total, batch_size)

    # -- moving events in and out ----------------------------------------------------------------

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

        ingester = Ingester(self._engine.db, self._app.mapper.transcoder, save=self._save)
        encoded = (line.encode() if isinstance(line, str) else line for line in lines)
        with translated_errors(self._backend), self._engine.db.bulk():
            summary = ingester.run(
                encoded, snapshots=snapshots, on_reject=on_reject, on_accept=on_accept, progress=progress
            )
        return summary.to_json()

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

        if what not in export.WHATS:
            raise invalid("what", f"{what!r} is not one of {', '.join(export.WHATS)}")
        if format not in export.FORMATS:
            raise invalid("format", f"{format!r} is not one of {', '.join(export.FORMATS)}")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
            raise invalid("since", f"{since!r} is not a log position")
        directory = (
            Path(out) if isinstance(out, (str, Path)) and (str(out).endswith("/") or Path(out).is_dir()) else None
        )
        with translated_errors(self._backend), _out_errors(out):
            if what != "events":
                self._engine.catch_up()
            with self._engine.db.snapshot() as cursor:
                positions = self._engine.positions_in(cursor)
                to = self._engine.log_end(cursor) if what == "events" else min(positions.values())
                start = since if since is not None else (export.resume_position(directory, what) if directory else 0)
                db, transcoder = self._engine.db, self._engine.transcoder

                def records() -> Iterator[JSONObject]:
                    return export.rows(cursor, db, transcoder, what, start, to)

                if directory is not None:
                    return export.write_into_directory(directory, what, format, start, to, records).to_json()
                if isinstance(out, (str, Path)):
                    return self._export_file(Path(out), what, format, start, to, records)
                if out is None:
                    raise invalid("out", "give a directory, a file or a stream")
                count = export.write(what, format, records(), out)
        return export.Export(what, format, start, to, count, None).to_json()

    def _export_file(
        self, path: Path, what: str, fmt: str, start: int, to: int, records: Callable[[], Iterator[JSONObject]]
    ) -> JSONObject:
        from . import export

        partial = path.with_name(f".{path.name}.partial")
        try:
            with open(partial, "wb") as out:
                count = export.write(what, fmt, records(), out)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return export.Export(what, fmt, start, to, count, str(path)).to_json()

    def follow(
        self, since: int | None = None, *, poll_interval: float = 0.2, stop: Callable[[], bool] | None = None
    ) -> Iterator[JSONObject]:
        """Event JSON as events are recorded, from `since` (default: the current end) on.

        Survives the database going away: it waits, reconnects and goes on from its position.
        """
        position = since if since is not None else self.log_end()
        waited = poll_interval
        while not (stop and stop()):
            try:
                with translated_errors(self._backend), self._engine.db.read() as cursor:
                    rows = log.read_after(cursor, self._engine.db, position, 500)
            except LedgerError as e:
                if e.code not in (Code.UNAVAILABLE, Code.ABORTED):
                    raise
                _log.warning("follow: %s; retrying", e.message)
                self._engine.db.close()  # reconnect on the next read
                time.sleep(waited)
                waited = min(waited * 2, 5.0)
                continue
            waited = poll_interval
            for row_position, name, version, topic, state in rows:
                position = int(row_position)
                try:
                    event = decode_stored(name, version, topic, state, self._engine.transcoder)
                except ValueError as e:  # audit reports it; a follower must not stop at it for ever
                    _log.warning("follow: skipped the event at position %d: %s", position, e)
                    continue
                yield render_event(event, position)
            if len(rows) < 500:
                time.sleep(poll_interval)

    # -- audit --------------------------------------------------------------------------------

    def audit(self, names: Iterable[str] | None = None, *, progress: Progress | None = None) -> JSONObject:
        """Check every history (or those named) and the views against them; change nothing.

        Returns SPEC §6's report: `{"ok", "checked": {"operations", "events"}, "findings": [...]}`.
        """
        from .audit import Auditor
        from .policies import Policies

        chosen = None if names is None else sorted({validate_name(n) for n in names})
        with translated_errors(self._backend), self._engine.db.snapshot() as cursor:
            positions = self._engine.positions_in(cursor)
            report = Auditor(self._engine.db, self._engine.transcoder, positions, progress).run(cursor, chosen)
        if chosen and report.operations < len(chosen):
            present = {f.name for f in report.findings}
            missing = [n for n in chosen if n not in present and not self._latest_version(n)]
            if missing:
                raise not_found(missing[0])
        result = report.to_json()
        if chosen is None:
            with translated_errors(self._backend):
                changes, findings = Policies(self._engine.db).audit()
            if changes:  # a ledger without policies reports exactly SPEC §6's shape
                result["checked"]["policyChanges"] = changes
                result["findings"] += [finding.to_json() for finding in findings]
                result["ok"] = result["ok"] and not findings
        return result

    def digest(self) -> JSONObject:
        """`{"position": N, "digest": "sha256:..."}` for the whole log up to its end, N."""
        from .audit import digest_log

        with translated_errors(self._backend), self._engine.db.snapshot() as cursor:
            digest = digest_log(cursor, self._engine.db)
        return {"position": digest.position, "digest": digest.digest}

    def verify(self, digest: JSONObject | str) -> JSONObject:
        """Check that the log up to a saved digest's position is exactly as it was when it was taken."""
        from .audit import digest_log

        saved = parse_json(digest, "digest") if isinstance(digest, (str, bytes)) else digest
        if not isinstance(saved, dict):
            raise invalid("digest", 'expected {"position": N, "digest": "sha256:..."}')
        position, expected = saved.get("position"), saved.get("digest")
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise invalid("digest.position", f"{position!r} is not a log position")
        if not isinstance(expected, str) or not expected.startswith("sha256:"):
            raise invalid("digest.digest", f"{expected!r} is not a sha256: digest")
        with translated_errors(self._backend), self._engine.db.snapshot() as cursor:
            end = self._engine.log_end(cursor)
            actual = digest_log(cursor, self._engine.db, position)
        result: JSONObject = {"ok": actual.digest == expected and end >= position, "position": position}
        result["digest"], result["actual"] = expected, actual.digest
        if end < position:
            result["detail"] = f"the log ends at position {end}, before the digest's position {position}"
        elif not result["ok"]:
            result["detail"] = f"the log up to position {position} is not what it was when the digest was taken"
        return result

    # -- access policies ------------------------------------------------------------------------

    def get_policy(self, resource: str) -> JSONObject:
        """The google.iam.v1.Policy set on exactly this resource name, with its etag."""
        with translated_errors(self._backend):
            return self._policy_store().get(resource)

    def set_policy(
        self, resource: str, policy: JSONObject, *, principal: str, occurred_at: datetime | str | None = None
    ) -> JSONObject:
        """Record a new policy for the resource (and its prefix's names), made by `principal`."""
        with translated_errors(self._backend):
            return self._policy_store(for_writing=True).set(
                resource, policy, principal=principal, occurred_at=occurred_at
            )

    def policy_history(self, resource: str) -> History:
        """Every recorded change of the resource's policy, oldest first."""
        with translated_errors(self._backend):
            return self._policy_store().history(resource)

    def permissions(self, principal: str | None, resource: str) -> frozenset[str]:
        """What `principal` (None: anonymous) may do on the resource, by every policy covering it."""
        with translated_errors(self._backend):
            return self._policy_store().permissions(principal, resource)

    def _policy_store(self, *, for_writing: bool = False) -> Policies:
        """The policies, whose table is made by the first write: reads of a ledger without policies
        write nothing."""
        from .policies import Policies

        if self._policies is None:
            self._policies = Policies(self._engine.db)
        if for_writing and not self._policies.ready:
            with self._backend.setting_up():
                self._policies.ensure()
        return self._policies

    def log_end(self) -> int:
        """The position of the last event recorded."""
        with translated_errors(self._backend), self._engine.db.read() as cursor:
            return self._engine.log_end(cursor)

    def view_lag(self) -> dict[str, int]:
        """How many log positions each view is behind."""
        with translated_errors(self._backend):
            return self._engine.lag()

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        self._engine.db.close()
        if self._application is not None:
            self._application.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _save(self, ops: Sequence[Operation]) -> None:
        """Record the operations' pending events; the views show them before this returns.

        The events go into eventsourcing's table under its writers' lock, and in the same transaction
        into the views, projected from the states they followed: no read back, no decoding, and no
        moment when the log holds an event the views lack. When the views lag (another writer's
        catch-up failed, or a plain eventsourcing save), they catch up after the commit instead.
        """
        projected = None
        if ops:
            stored = [self._app.mapper.to_stored_event(event) for op in ops for event in op.pending]
            db = self._engine.db

            def record() -> dict[str, Operation] | None:
                with db.recording(len(stored)) as cursor:
                    db.lock_log(cursor)
                    end, views = self._engine.lock_current(cursor)
                    positions = log.append(cursor, db, stored, after=end)
                    return self._engine.project_written(cursor, end, views, ops, positions)

            projected = self._reconnecting(record)
            for op in ops:
                op.collect_events()
        if projected is None:
            self._after_save()
        else:
            self._engine.remember(projected)

    def _reconnecting(self, action: Callable[[], _T]) -> _T:
        """`action()`, and once more on a new connection when the ledger's own turned out dead (a
        server restart, an idle connection killed), as eventsourcing's recorders retry. A commit
        whose answer was lost comes back the second time as a version conflict, never twice."""
        try:
            return action()
        except OperationalError:
            if not self._engine.db.lost():
                raise
            return action()

    def _after_save(self) -> None:
        """Read-your-writes when the write could not project its own events. They are stored by now,
        so a failure here must not fail the write (a retry would record them twice): it is logged,
        and the next read or write catches the views up."""
        try:
            self._engine.catch_up()
        except Exception as e:
            _log.warning("views not caught up after a write (the next read will): %s", e)

    def _latest_version(self, name: str) -> int:
        latest = self._app.recorder.select_events(name, desc=True, limit=1)
        return latest[0].originator_version if latest else 0

    def _find(self, name: str) -> Operation | None:
        """The operation as its events fold, read in one statement on the ledger's own connection (as
        eventsourcing's repository would fold them, without its pool and transaction: a round trip
        saved on every command)."""
        transcoder = self._engine.transcoder

        def read() -> list[log.Row]:
            with self._engine.db.quick() as cursor:
                return log.histories(cursor, self._engine.db, [name])

        rows = self._reconnecting(read)
        return fold([decode_stored(n, v, t, s, transcoder) for _, n, v, t, s in rows])

    def _load(self, name: str) -> Operation:
        op = self._find(name)
        if op is None:
            raise not_found(name)
        return op

    def _record(
        self, op: Operation, event_class: type[OperationEvent], when: Timestamp, values: JSONObject
    ) -> JSONObject:
        op.trigger(event_class, when, **values)
        self._save([op])
        return render_operation(op)


@contextmanager
def _out_errors(out: object) -> Iterator[None]:
    """A file that cannot be written is the caller's `out`, named as given."""
    try:
        yield
    except OSError as e:
        raise invalid("out", f"cannot write {out}: {e.strerror or e}") from None


def _flat_row(row: dict[str, Any]) -> JSONObject:
    """View columns under the names the Operation JSON uses, times printed as protobuf prints them."""

    def time_text(value: str | None) -> str:
        return format_timestamp(parse_timestamp(value, "time")) if value else ""

    return {
        "name": row["name"],
        "state": row["state"],
        "verb": row["verb"],
        "target": row["target"],
        "createTime": time_text(row["create_time"]),
        "endTime": time_text(row["end_time"]),
        "errorCode": row["error_code"] if row["error_code"] is not None else "",
        "metadataType": row["metadata_type"],
    }


def _when(occurred_at: datetime | str | None) -> Timestamp:
    return now() if occurred_at is None else parse_timestamp(occurred_at, "occurredAt")
