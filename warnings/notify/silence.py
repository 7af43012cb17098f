"""Silences: people mute matching notifications for a while (a known data problem, a
reorganisation). A silenced notification is delayed to the end of the silence, not dropped.

A silence matches a notification when every matcher it sets matches: ``rule`` (a rule-id glob,
``*`` for all), ``entity_id``, ``level``, ``recipient_id``, ``channel``. Matching is pure; the
three functions at the end are the thin adapter over ``notify_silences``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from zhengai.warnings.notify.pending import Pending
from zhengai.warnings.notify_schema import DeliveryRow, SilenceRow

__all__ = ["Silence", "silenced_until", "add_silence", "expire_silence", "active_silences", "reason_of"]


@dataclass(frozen=True)
class Silence:
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    rule: str = "*"
    entity_id: str | None = None
    level: str | None = None
    recipient_id: str | None = None
    channel: str | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        if self.ends_at <= self.starts_at:
            raise ValueError("静默的结束时间须晚于开始时间 (a silence must end after it starts)")
        if not self.comment.strip():
            raise ValueError("静默须写明原因 (a silence needs a comment saying why)")

    def matches(self, p: Pending) -> bool:
        return (
            fnmatchcase(p.rule_id or "", self.rule)
            and (self.entity_id is None or self.entity_id == p.entity_id)
            and (self.level is None or self.level == p.level)
            and (self.recipient_id is None or self.recipient_id == p.recipient_id)
            and (self.channel is None or self.channel == p.channel)
        )

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


def silenced_until(silences: Sequence[Silence], p: Pending, now: datetime) -> tuple[datetime, Silence] | None:
    """The end of the silence(s) holding ``p`` at ``now`` (following silences that overlap)."""
    matching = [s for s in silences if s.matches(p)]
    until: datetime | None = None
    holding: Silence | None = None
    probe = now
    while True:
        covering = [s for s in matching if s.covers(probe)]
        if not covering:
            break
        longest = max(covering, key=lambda s: s.ends_at)
        holding = holding or longest
        until = probe = longest.ends_at
    return (until, holding) if until is not None and holding is not None else None


def add_silence(session: Session, silence: Silence, now: datetime) -> int:
    row = SilenceRow(
        rule=silence.rule,
        entity_id=silence.entity_id,
        level=silence.level,
        recipient_id=silence.recipient_id,
        channel=silence.channel,
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        created_by=silence.created_by,
        comment=silence.comment,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row.id


def expire_silence(session: Session, silence_id: int, now: datetime) -> None:
    """End a silence now; what it held goes out at the next run."""
    session.execute(update(SilenceRow).where(SilenceRow.id == silence_id, SilenceRow.ends_at > now).values(ends_at=now))
    session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.state == "muted", DeliveryRow.reason == reason_of(silence_id))
        .values(next_attempt_at=now)
    )


def reason_of(silence_id: int | None) -> str:
    """How a delivery held by this silence is marked (``expire_silence`` releases by it)."""
    return f"silence:{silence_id}"


def active_silences(session: Session, now: datetime) -> list[Silence]:
    rows = session.scalars(select(SilenceRow).where(SilenceRow.ends_at > now))
    return [
        Silence(
            id=r.id,
            rule=r.rule,
            entity_id=r.entity_id,
            level=r.level,
            recipient_id=r.recipient_id,
            channel=r.channel,
            starts_at=r.starts_at,
            ends_at=r.ends_at,
            created_by=r.created_by,
            comment=r.comment,
        )
        for r in rows
    ]
