"""The interpreter's settings for long batch jobs (ingest, a rebuild and its shards). Imports
nothing of the ledger, so that every layer may use it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Python's cycle collector runs a pass every 700 new containers, and every hundredth pass walks every
# live object. A batch job makes millions of short-lived containers (parsed lines, events, states,
# rows) beside tens of thousands of states it keeps between batches, so those passes cost 10% of an
# ingest of 100k operations and 12% of a rebuild shard's fold (bench/NOTES.md). Cycles are still
# collected, less often.
_BATCH_THRESHOLDS = (50_000, 20, 100)


class _Jobs:
    """The batch jobs running now. The thresholds belong to the process, and jobs overlap in threads
    (the server's ingest requests, the collector's sources): the first job to start raises them, the
    last to end puts back the ones it found."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.before = gc.get_threshold()


_jobs = _Jobs()


@contextmanager
def batch_job() -> Iterator[None]:
    """Fewer cycle-collector passes while any batch job runs; the settings before them come back
    when the last one ends."""
    with _jobs.lock:
        if _jobs.running == 0:
            _jobs.before = gc.get_threshold()
            gc.set_threshold(*_BATCH_THRESHOLDS)
        _jobs.running += 1
    try:
        yield
    finally:
        with _jobs.lock:
            _jobs.running -= 1
            if _jobs.running == 0:
                gc.set_threshold(*_jobs.before)
