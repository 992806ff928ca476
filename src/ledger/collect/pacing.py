"""Politeness: a per-source rate limit, and exponential backoff with full jitter that honours Retry-After.

Every wait is on the collector's stop event, so SIGINT/SIGTERM ends a wait at once.
"""

from __future__ import annotations

import random
import threading
import time


class RateLimiter:
    """At most `rate` requests a second, evenly spaced (no bursts: a burst is what APIs punish)."""

    def __init__(self, rate: float, stop: threading.Event) -> None:
        self.spacing = 1.0 / rate
        self.stop = stop
        self._next = time.monotonic()

    def acquire(self) -> bool:
        """Wait for the next slot; False when the collector is stopping."""
        delay = self._next - time.monotonic()
        if delay > 0 and self.stop.wait(delay):
            return False
        self._next = max(self._next, time.monotonic()) + self.spacing
        return not self.stop.is_set()


class Backoff:
    """Delays after consecutive retryable failures: a random time up to base x 2^n, capped (AWS's
    "full jitter", so that many collectors do not retry in step), and never less than the server's
    Retry-After."""

    def __init__(
        self, base: float = 1.0, cap: float = 60.0, attempts: int = 6, rng: random.Random | None = None
    ) -> None:
        self.base, self.cap, self.attempts = base, cap, attempts
        self.rng = rng or random.Random()  # noqa: S311  (jitter spreads retries; it guards no secret)

    def delay(self, failures: int, retry_after: float | None) -> float:
        ceiling = min(self.cap, self.base * 2 ** max(0, failures - 1))
        jittered = self.rng.uniform(0, ceiling)
        return max(jittered, retry_after or 0.0)
