"""Bounded retries with exponential backoff and full jitter, and an attempt counter callers can inspect.

Kept separate from the S3 code so the policy is one small, testable thing: the S3 client's own retries are
switched off and this is the only retry loop that acts.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from mm_platform.errors import MMPlatformError, TransientSourceError

__all__ = ["AttemptCounter", "RetryPolicy", "call_with_retry"]

log = logging.getLogger("mm_platform.sources")

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure."""

    max_attempts: int = 5
    """Total attempts including the first; 1 disables retrying."""
    base_delay_s: float = 0.2
    """Upper bound of the first backoff; doubles on each further attempt."""
    max_delay_s: float = 10.0
    """Cap on any single backoff."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay_s(self, failed_attempt: int, rng: random.Random | None = None) -> float:
        """Backoff after attempt number ``failed_attempt`` (1-based): uniform in [0, capped exponential].

        Full jitter spreads clients that failed together (a throttle) so they do not retry in lockstep.
        """
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (failed_attempt - 1))
        return (rng or random).uniform(0.0, ceiling)


class AttemptCounter:
    """Counts attempts per operation name (e.g. ``GetObject``); thread-safe, for tests and metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def record(self, operation: str) -> None:
        with self._lock:
            self._counts[operation] += 1

    def __getitem__(self, operation: str) -> int:
        with self._lock:
            return self._counts[operation]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def call_with_retry(
    operation: str,
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    translate: Callable[[Exception], MMPlatformError | None],
    what: str,
    counter: AttemptCounter | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``fn`` until it succeeds, a non-retryable error occurs, or ``policy.max_attempts`` are used.

    ``translate`` maps a raised exception to a platform error (``None``: not ours to handle, re-raised as is);
    errors with ``retryable`` set are retried. When attempts run out a :class:`TransientSourceError` saying
    how many were made is raised. ``what`` names the target in messages (e.g. ``s3://bucket/key``).
    """
    for attempt in range(1, policy.max_attempts + 1):
        if counter is not None:
            counter.record(operation)
        try:
            return fn()
        except Exception as exc:
            error = exc if isinstance(exc, MMPlatformError) else translate(exc)
            if error is None:
                raise
            if not error.retryable:
                if error is exc:
                    raise
                raise error from exc
            if attempt == policy.max_attempts:
                raise TransientSourceError(
                    f"{operation} on {what} failed after {attempt} attempts: {error.message}",
                    hint="the source kept throttling or failing; try again later or raise the retry limit",
                ) from exc
            delay = policy.delay_s(attempt)
            log.warning(
                "retrying op=%s target=%s attempt=%d delay_s=%.3f error=%s",
                operation,
                what,
                attempt,
                delay,
                error.message,
            )
            sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")
