"""The pipeline's view of one undelivered notification: what every stage decides on.

Built by ``outbox.load_pending`` from the outbox row, its warning event, its warning and the
pipeline's own delivery state. Stages read it; only the pipeline changes ``state`` and the
timing fields, and ``outbox.py`` persists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["Pending", "OPEN_STATES", "TERMINAL_STATES"]

OPEN_STATES = ("queued", "held", "muted", "retry")
TERMINAL_STATES = ("sent", "failed", "suppressed")


@dataclass
class Pending:
    outbox_id: int
    channel: str
    recipient_id: str | None
    subject: str
    body: str  # rendered and masked when the outbox row was written
    warning_id: int | None
    rule_id: str | None
    entity_id: str | None
    level: str | None
    metric: str | None
    period: str | None
    kind: str  # the warning event's kind: opened, severity_up, escalated, reminded, resolved …
    band: str  # the band the event moved to
    closing: bool  # the event left the warning inactive (recovery, closure)
    warning_active: bool  # the warning, as it stands now, still asks for action
    # delivery state (notify_deliveries)
    state: str
    group_key: str
    digest: bool
    admitted_at: datetime
    next_attempt_at: datetime | None
    attempts: int
    inhibited_by: int | None = None
