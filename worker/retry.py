"""Retry policy: which failures retry, and how long to wait before the next attempt."""

from __future__ import annotations

import random

from worker.errors import NonRetryable

MAX_BACKOFF_SECONDS = 3600.0


def backoff_seconds(base: float, attempt: int, rng: random.Random | None = None) -> float:
    """Exponential in the attempt number, capped, with full jitter on the upper half.

    attempt 1 -> ~base, 2 -> ~2*base, 3 -> ~4*base ...; the jitter spreads retries of a
    burst of failures so they do not come back all at once.
    """
    # 2.0 ** 1024 is past a float (OverflowError); the cap is reached long before
    doublings = min(max(0, attempt - 1), 1023)
    ceiling = min(MAX_BACKOFF_SECONDS, base * 2.0**doublings)
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def should_retry(error: BaseException, attempt: int, max_attempts: int) -> bool:
    return not isinstance(error, NonRetryable) and attempt < max_attempts
