"""Hand pending outbox rows to their sinks; a failed send stays in the outbox."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from zhengai.warnings.notify.base import Message, Sink, SinkError
from zhengai.warnings.store import WarningStore

__all__ = ["DispatchReport", "dispatch"]

log = logging.getLogger(__name__)


@dataclass
class DispatchReport:
    sent: int = 0
    retry_later: int = 0
    failed: int = 0


def dispatch(store: WarningStore, sink: Sink, clock: Callable[[], datetime], batch: int = 1000) -> DispatchReport:
    """Send every pending row of the sink's channel once. Rows that fail retryably stay pending
    for the next call; a fatal failure is parked as ``failed`` with its error for people to see."""
    report = DispatchReport()
    seen: set[int] = set()
    while True:
        rows = [r for r in store.pending_notifications(sink.channel, limit=batch) if r.id not in seen]
        if not rows:
            return report
        for row in rows:
            seen.add(row.id)
            try:
                sink.send(Message(row.id, row.recipient_id, row.subject, row.body))
            except SinkError as exc:
                store.mark_failed(row.id, str(exc), retryable=exc.retryable)
                if exc.retryable:
                    report.retry_later += 1
                else:
                    report.failed += 1
                log.warning("notification %s on %s failed (%s): %s", row.id, sink.channel,
                            "retryable" if exc.retryable else "fatal", exc)
                continue
            store.mark_sent(row.id, clock())
            report.sent += 1
