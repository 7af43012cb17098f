"""The one retry primitive (tenacity): exponential backoff with jitter, capped.

Every retry in zhengai is one of two shapes, and both come from here:

* **retry in place** — call again after a wait: a source query (``connectors.retry``), a Kafka
  delivery within a connector run (``connectors.base``), a store batch (``ingest.stream.store_batch``).
  Use :func:`retrying` (blocking) or :func:`async_retrying` (the worker's event loop).
* **retry later** — compute *when* to try again and record it: the connector scheduler's next run
  (``connectors.runner``) and the outbox's next attempt (``warnings.notify``). Use :func:`delay`,
  the same curve as the waits above, so an outage is treated alike everywhere.

Callers decide *what* is retryable (an exception type or predicate); this module only decides
how long to wait.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import tenacity
from tenacity import stop_after_attempt, stop_after_delay, stop_never

__all__ = ["Backoff", "delay", "retrying", "async_retrying", "stop_after_attempt", "stop_after_delay", "stop_never"]


class Backoff(tenacity.wait.wait_base):
    """``initial · factor^(n-1)`` seconds after failed attempt ``n``, capped at ``maximum``,
    spread by ± ``jitter`` (a fraction), so many clients do not return at the same instant.
    ``hint(exc)`` may return a wait the failure asked for (HTTP ``Retry-After``); it wins, capped."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        factor: float = 2.0,
        jitter: float = 0.1,
        hint: Callable[[BaseException], float | None] | None = None,
    ) -> None:
        self.initial, self.maximum, self.factor, self.jitter, self.hint = initial, maximum, factor, jitter, hint

    def seconds(self, attempt: int, exc: BaseException | None = None) -> float:
        if self.hint is not None and exc is not None:
            wanted = self.hint(exc)
            if wanted is not None and wanted >= 0:
                return min(wanted, self.maximum)
        base = min(self.initial * self.factor ** max(0, attempt - 1), self.maximum)
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter))) if self.jitter else base

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        return self.seconds(retry_state.attempt_number, exc)


def delay(attempt: int, initial: float, maximum: float, factor: float = 2.0, jitter: float = 0.0) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based), for callers that schedule the
    next attempt instead of sleeping."""
    return Backoff(initial, maximum, factor, jitter).seconds(attempt)


def _log_before_sleep(
    log: logging.Logger, what: str, level: int, show: Callable[[BaseException], str]
) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.log(
            level,
            "%s: %s; retry %d in %.2f s",
            what,
            show(exc) if exc is not None else "failed",
            state.attempt_number,
            wait,
        )

    return before_sleep


def _kwargs(
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool],
    wait: Backoff,
    stop: Any,
    log: logging.Logger | None,
    what: str,
    level: int,
    show: Callable[[BaseException], str] = str,
) -> dict[str, Any]:
    retry: tenacity.retry_base
    if isinstance(retry_on, type) or isinstance(retry_on, tuple):
        retry = tenacity.retry_if_exception_type(retry_on)
    else:
        retry = tenacity.retry_if_exception(retry_on)
    kwargs: dict[str, Any] = dict(retry=retry, wait=wait, stop=stop, reraise=True)
    if log is not None:
        kwargs["before_sleep"] = _log_before_sleep(log, what, level, show)
    return kwargs


def retrying(
    retry_on: Any,
    wait: Backoff,
    *,
    stop: Any = stop_never,
    sleep: Callable[[float], None] | None = None,
    log: logging.Logger | None = None,
    what: str = "",
    level: int = logging.INFO,
) -> tenacity.Retrying:
    """A blocking retrier: ``retrying(...)(fn, *args)``. The last failure propagates as itself."""
    kwargs = _kwargs(retry_on, wait, stop, log, what, level)
    if sleep is not None:
        kwargs["sleep"] = sleep
    return tenacity.Retrying(**kwargs)


def async_retrying(
    retry_on: Any,
    wait: Backoff,
    *,
    stop: Any = stop_never,
    log: logging.Logger | None = None,
    what: str = "",
    level: int = logging.WARNING,
    show: Callable[[BaseException], str] = str,
) -> tenacity.AsyncRetrying:
    """The same for coroutines: ``await async_retrying(...)(coro_fn, *args)``. ``show`` says
    what of a failure is logged (a database error's text may quote row values)."""
    return tenacity.AsyncRetrying(**_kwargs(retry_on, wait, stop, log, what, level, show))
