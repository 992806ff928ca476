"""Files the ledger writes beside the user's: staged under a temporary name, then renamed over the
real one, so that a reader never sees half a file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def staged(path: Path, staging: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """A new file at `staging`, renamed to `path` when the block ends without an error (removed
    otherwise).

    Whatever is already at `staging` (left by a run that was killed, or a symlink someone planted to
    have the ledger overwrite its target) is removed, never followed: the file is made with
    O_EXCL | O_NOFOLLOW, so a link planted in between makes it fail instead.
    """
    staging.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(staging, flags, mode)
    try:
        with os.fdopen(descriptor, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
