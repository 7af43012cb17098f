"""Backoff for transient source failures. Sources decide *what* is retryable (by raising
RetryableSourceError); this policy decides *how often and how long to wait*, through the one
retry primitive (``zhengai.ingest.retrying``, tenacity)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from zhengai.ingest.retrying import Backoff, retrying, stop_after_attempt

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

    def _backoff(self) -> Backoff:
        return Backoff(
            self.base_delay,
            self.max_delay,
            self.factor,
            self.jitter,
            hint=lambda exc: getattr(exc, "retry_after", None),
        )

    def delay(self, attempt: int, hint: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if hint is not None and hint >= 0:
            return min(hint, self.max_delay)
        return self._backoff().seconds(attempt)

    def call(self, fn: Callable[[], T], *, what: str) -> T:
        """Run ``fn``; on RetryableSourceError wait and try again, up to ``attempts`` in all.
        The last RetryableSourceError propagates; any other exception propagates at once."""
        retry = retrying(
            RetryableSourceError,
            self._backoff(),
            stop=stop_after_attempt(self.attempts),
            sleep=self.sleep,
            log=log,
            what=what,
        )
        try:
            return retry(fn)
        except RetryableSourceError as exc:
            if self.attempts > 1:
                log.warning("%s: giving up after %d attempts: %s", what, self.attempts, exc)
            raise
