"""Backoff for transient source failures. Sources decide *what* is retryable (by raising
RetryableSourceError); this policy decides *how often and how long to wait*."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import RetryableSourceError

__all__ = ["RetryPolicy"]

T = TypeVar("T")
log = logging.getLogger("zhengai.connectors")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``base_delay · factor^(n-1)``, capped at ``max_delay``, ± ``jitter``.

    ``sleep`` is injectable so tests run without waiting. A source's own hint (HTTP Retry-After)
    wins over the computed delay, still capped.
    """

    attempts: int = 5
    base_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.1
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")

    def delay(self, attempt: int, hint: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if hint is not None and hint >= 0:
            return min(hint, self.max_delay)
        base = min(self.base_delay * self.factor ** (attempt - 1), self.max_delay)
        # Jitter spreads the retries of many workers hitting the same source after an outage.
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))

    def call(self, fn: Callable[[], T], *, what: str) -> T:
        """Run ``fn``; on RetryableSourceError wait and try again, up to ``attempts`` in all.
        The last RetryableSourceError propagates; any other exception propagates at once."""
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except RetryableSourceError as exc:
                if attempt == self.attempts:
                    log.warning("%s: giving up after %d attempts: %s", what, attempt, exc)
                    raise
                wait = self.delay(attempt, exc.retry_after)
                log.info("%s: %s; retry %d/%d in %.2fs", what, exc, attempt, self.attempts - 1,
                         wait)
                self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover
