"""``dispatch(store, sink, clock)``: one pass of the notification pipeline for one sink, one
message per outbox row, no waiting — the embedded runner's console and file channels.

Everything goes through the pipeline (``pipeline.py``); this keeps the runner's call site small.
Rows that fail retryably stay pending for a later pass (with backoff); a fatal failure is parked
as ``failed`` with its error for people to see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from zhengai.ingest.directory import Directory
from zhengai.rules.loader import RuleSet
from zhengai.warnings.notify.base import Sink
from zhengai.warnings.notify.config import DIRECT, NotifyConfig
from zhengai.warnings.notify.pipeline import Channel, NotifyPipeline

__all__ = ["DispatchReport", "dispatch"]


@dataclass
class DispatchReport:
    sent: int = 0
    retry_later: int = 0
    failed: int = 0


def dispatch(
    store: Any,
    sink: Sink,
    clock: Callable[[], datetime],
    batch: int = 1000,
    *,
    rules: Callable[[], RuleSet] | None = None,
    directory: Callable[[], Directory] | None = None,
    config: NotifyConfig | None = None,
) -> DispatchReport:
    """Send every due pending row of the sink's channel once. ``rules`` and ``directory`` give
    units and names to the messages; ``config`` links, silences and calendar. (``batch`` is kept
    for callers of the first version.) The sink is not closed."""
    pipeline = NotifyPipeline(store, [Channel(sink, DIRECT)], config, rules=rules, directory=directory)
    counts = pipeline.run(clock()).of(sink.channel)
    return DispatchReport(sent=counts.sent, retry_later=counts.retry_later + counts.rate_limited, failed=counts.failed)
