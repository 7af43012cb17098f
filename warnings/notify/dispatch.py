"""``dispatch(store, sink, clock)``: one pass of the notification pipeline for one sink, one
message per outbox row, no waiting — the embedded runner's console and file channels.

Everything goes through the pipeline (``pipeline.py``); this keeps the runner's call site small.
Rows that fail retryably stay pending for a later pass (with backoff); a fatal failure is parked
as ``failed`` with its error for people to see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from zhengai.warnings.notify.base import Sink
from zhengai.warnings.notify.config import DIRECT
from zhengai.warnings.notify.pipeline import Channel, NotifyPipeline

__all__ = ["DispatchReport", "dispatch"]


@dataclass
class DispatchReport:
    sent: int = 0
    retry_later: int = 0
    failed: int = 0


def dispatch(store: Any, sink: Sink, clock: Callable[[], datetime], batch: int = 1000) -> DispatchReport:
    """Send every due pending row of the sink's channel once. (``batch`` is kept for callers of
    the first version; the pipeline reads what is due in one go.) The sink is not closed."""
    counts = NotifyPipeline(store, [Channel(sink, DIRECT)]).run(clock()).of(sink.channel)
    return DispatchReport(sent=counts.sent, retry_later=counts.retry_later + counts.rate_limited, failed=counts.failed)
