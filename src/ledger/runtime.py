"""The interpreter's settings for long batch jobs (ingest, a rebuild and its shards). Imports
nothing of the ledger, so that every layer may use it."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Python's cycle collector runs a pass every 700 new containers, and every hundredth pass walks every
# live object. A batch job makes millions of short-lived containers (parsed lines, events, states,
# rows) beside tens of thousands of states it keeps between batches, so those passes cost 10% of an
# ingest of 100k operations and 12% of a rebuild shard's fold (bench/NOTES.md). Cycles are still
# collected, less often.
_BATCH_THRESHOLDS = (50_000, 20, 100)


@contextmanager
def batch_job() -> Iterator[None]:
    """Fewer cycle-collector passes while the block runs; the settings before it come back after."""
    before = gc.get_threshold()
    gc.set_threshold(*_BATCH_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
