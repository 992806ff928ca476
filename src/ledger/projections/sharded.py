"""A rebuild's fill, sharded by operation across processes.

Folding events into rows is Python work that one interpreter does on one core; writing the rows is
the database's. So a large rebuild starts one process a shard (a Python running `main` below):
each walks the same windows of log positions (up to the log's end when the rebuild began), reads
only its own operations' events in each (the database hashes the name: `Dialect.shard_of`), folds
them and writes the rows to its stdout; this process writes each window's rows from every shard and
the new position in one transaction, in log order, as a serial rebuild does. Killed at any point,
the rebuild resumes from the last position written, like any other.

The shards are plain child processes rather than multiprocessing's: those import the caller's main
module again, which a script that calls `replay()` at its top level does not expect.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Protocol

from ..domain.errors import Code, LedgerError
from ..runtime import batch_job
from ..storage import log
from ..storage.store import Store
from ..storage.urls import open_backend
from .views import VIEWS

# Below this many log positions a rebuild stays in one process, as starting the others (each imports
# the ledger) would cost more than it gains. Measured at 40k events: two shards replayed in 0.79 s
# against 0.87 s in one process on SQLite, 0.93-0.96 s against 0.99 s on PostgreSQL; half that is
# left as a margin.
SHARDED_FROM = 20_000
_FRAME = struct.Struct(">Q")  # the length of each pickled message on a shard's stdout

Batch = tuple[int, int, list[tuple[Any, ...]]]  # the window's last position, the shard's events in it, its rows


class Writer(Protocol):
    batch_size: int

    def write_building(self, view: str, generation: int, rows: list[tuple[Any, ...]], position: int) -> None: ...


@dataclass(frozen=True)
class Shard:
    """What one shard's process is told (on its stdin: the URL may hold a password)."""

    url: str
    view: str
    index: int
    count: int
    start: int
    end: int
    batch_size: int


def usable_cores() -> int:
    """The cores this process may run on: one shard each (sharding is worth it from two)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def fill(
    engine: Writer,
    url: str,
    view: str,
    generation: int,
    start: int,
    end: int,
    progress: Callable[[int], None] | None,
    count: int,
) -> None:
    """Fold the log's events in (start, end] into `view`'s building `generation` with `count`
    processes, writing each window's rows and the view's new position together."""
    workers = []
    try:
        for index in range(count):
            worker = subprocess.Popen(
                [sys.executable, "-c", f"from {__name__} import main; main()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
            )
            workers.append(worker)
            assert worker.stdin is not None
            worker.stdin.write(pickle.dumps(Shard(url, view, index, count, start, end, engine.batch_size)))
            worker.stdin.close()
        while True:
            received = [_receive(worker) for worker in workers]
            batches = [batch for batch in received if batch is not None]
            if not batches:
                return
            if len(batches) < count or len({position for position, _, _ in batches}) != 1:
                raise LedgerError(Code.INTERNAL, "the shards of a rebuild read different windows of the log")
            position = batches[0][0]
            engine.write_building(view, generation, [row for _, _, rows in batches for row in rows], position)
            if progress:
                progress(sum(events for _, events, _ in batches))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()


def _receive(worker: subprocess.Popen[bytes]) -> Batch | None:
    """The next batch a shard folded; None once it has folded its last."""
    assert worker.stdout is not None
    message = _read_frame(worker.stdout)
    if message is None:
        raise LedgerError(Code.INTERNAL, f"a rebuild's shard stopped (exit code {worker.wait()})")
    kind, *rest = message
    if kind == "failed":
        raise LedgerError(Code.INTERNAL, f"a rebuild's shard failed: {rest[0]}")
    if kind == "done":
        return None
    position, events, rows = rest
    return position, events, rows


def _read_frame(stream: IO[bytes]) -> Any:
    """One message, or None at the end of the stream."""
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return pickle.loads(body)  # noqa: S301 - a process of this ledger's own, started just above


def _write_frame(stream: IO[bytes], message: Any) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(body)) + body)
    stream.flush()


def fold_shard(shard: Shard, out: IO[bytes]) -> None:
    """One shard's work: the log in (start, end], a window of `batch_size` events at a time, its own
    operations' events read (the database picks them) and folded, each window's rows written to
    `out` (none when none of its events are the shard's). Every shard walks the same windows."""
    from .engine import CACHE_LIMIT, ProjectionEngine  # the engine imports this module

    store = Store(open_backend(shard.url))
    try:
        # The shards together keep as many states as one process would: they run side by side.
        engine = ProjectionEngine(store.db, store.transcoder, shard.batch_size, cache_limit=CACHE_LIMIT // shard.count)
        after = shard.start
        while after < shard.end:
            with store.db.read() as cursor:
                upto = log.window_end(cursor, store.db, after, shard.batch_size, shard.end)
                mine = log.read_shard(cursor, store.db, after, upto, shard.index, shard.count)
                rows = VIEWS[shard.view].rows(engine.fold(cursor, mine)) if mine else []
            after = upto
            _write_frame(out, ("batch", after, len(mine), rows))
        _write_frame(out, ("done",))
    except Exception as e:  # told to the writer, which stops the rebuild with it
        _write_frame(out, ("failed", f"{type(e).__name__}: {e}"))
    finally:
        store.close()


def main() -> None:
    """A shard process: its Shard on stdin (pickled by the rebuild that started it), batches out."""
    with batch_job():
        fold_shard(pickle.loads(sys.stdin.buffer.read()), sys.stdout.buffer)  # noqa: S301 - from its parent
