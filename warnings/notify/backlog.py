"""How long notifications have waited to be sent: the notifier's health gauge for alerting.

``zhengai_notify_outbox_due_age_seconds{channel}`` is the age of the oldest pending outbox row
that is *due*: not yet admitted by the pipeline, waiting for its group to flush (``queued``, not a
digest), or failing (``retry``, whenever its next attempt is). Rows muted by a silence or a calendar
window, held by inhibition, or gathered into a digest are not due, so a quiet holiday does not
look like an outage. The notifier sets the gauge after every pass (``zhengai notify serve
--metrics-port``); the alert ``ZhengaiNotifyOutboxStuck`` (deploy/prometheus/alerts.yml) reads it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select

from zhengai.warnings.notify import _metrics
from zhengai.warnings.notify_schema import DeliveryRow
from zhengai.warnings.schema import OutboxRow

__all__ = ["due_ages", "update_gauge"]


def due_ages(session_factory, now: datetime) -> dict[str, float]:
    """Seconds the oldest due pending row of each channel has waited (channels with none: absent)."""
    due = or_(
        DeliveryRow.outbox_id.is_(None),
        DeliveryRow.state == "retry",
        and_(DeliveryRow.state == "queued", DeliveryRow.digest.is_(False)),
    )
    q = (
        select(OutboxRow.channel, func.min(OutboxRow.created_at))
        .outerjoin(DeliveryRow, DeliveryRow.outbox_id == OutboxRow.id)
        .where(OutboxRow.status == "pending", due)
        .group_by(OutboxRow.channel)
    )
    with session_factory() as s:
        rows = s.execute(q).all()
    return {channel: max(0.0, (now - oldest).total_seconds()) for channel, oldest in rows if oldest is not None}


def update_gauge(session_factory, now: datetime, channels: tuple[str, ...] | list[str]) -> dict[str, float]:
    """Set the gauge for every configured channel (0 where nothing is due) and return the ages."""
    ages = due_ages(session_factory, now)
    for channel in set(channels) | set(ages):
        _metrics.OUTBOX_DUE_AGE.labels(channel=channel).set(ages.get(channel, 0.0))
    return ages
