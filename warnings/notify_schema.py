"""Tables of the notification pipeline (new tables only, on the warning store's ``Base``).

The outbox (``notification_outbox``) stays the contract between the warning service and the
notifier: one row per transition and channel, written in the warning's transaction. Everything
the pipeline needs to remember on top of it lives here, keyed by outbox id or by warning, so that
a restart continues where the last run stopped:

- ``notify_deliveries``  one row per outbox row once the pipeline has seen it: its group, why it is
  held or delayed (inhibited, silenced, calendar, rate limit, retry) and until when;
- ``notify_messages``    what was actually sent: one row per message (a message carries one or many
  outbox rows after grouping);
- ``notify_groups``      when each group (channel × recipient) was last flushed (group interval);
- ``notify_log``         per warning × channel × recipient: first/last time it was announced — the
  persisted repeat interval, and "was this warning ever announced here" for inhibition;
- ``notify_attempts``    every call to a rate-limited channel, for the sliding window;
- ``notify_buckets``     a channel that told us to back off (DingTalk 130101) and until when;
- ``notify_silences``    silences people set (matchers + time window).
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from zhengai.warnings.schema import Base, UTCDateTime

__all__ = [
    "DeliveryRow",
    "MessageRow",
    "GroupRow",
    "NotifyLogRow",
    "AttemptRow",
    "BucketRow",
    "SilenceRow",
    "NOTIFY_TABLES",
    "create_notify_schema",
]

TS = UTCDateTime()


class DeliveryRow(Base):
    """The pipeline's state of one outbox row. ``state``: queued (waiting for its group to flush),
    held (inhibited; re-checked every run), muted (silence or calendar window, until
    ``next_attempt_at``), retry (a send failed retryably), sent, failed (fatal), suppressed
    (inhibited and the warning is over: never to be sent)."""

    __tablename__ = "notify_deliveries"
    outbox_id: Mapped[int] = mapped_column(ForeignKey("notification_outbox.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    recipient_id: Mapped[str | None] = mapped_column(String(64))
    warning_id: Mapped[int | None] = mapped_column(Integer, index=True)
    group_key: Mapped[str] = mapped_column(String(160))
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(12), index=True)
    reason: Mapped[str | None] = mapped_column(Text)  # never personal data
    inhibited_by: Mapped[int | None] = mapped_column(Integer)  # the inhibiting warning's id
    admitted_at: Mapped[datetime] = mapped_column(TS)
    next_attempt_at: Mapped[datetime | None] = mapped_column(TS)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("notify_messages.id"))
    finished_at: Mapped[datetime | None] = mapped_column(TS)


class MessageRow(Base):
    __tablename__ = "notify_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(32))
    recipient_id: Mapped[str | None] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(160))
    kind: Mapped[str] = mapped_column(String(12))  # single | group | digest
    notices: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(200))
    sent_at: Mapped[datetime] = mapped_column(TS, index=True)


class GroupRow(Base):
    __tablename__ = "notify_groups"
    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    last_flush_at: Mapped[datetime] = mapped_column(TS)


class NotifyLogRow(Base):
    __tablename__ = "notify_log"
    warning_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    recipient_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # "" when nobody
    first_sent_at: Mapped[datetime] = mapped_column(TS)
    last_sent_at: Mapped[datetime] = mapped_column(TS)
    last_kind: Mapped[str] = mapped_column(String(24))
    sent_count: Mapped[int] = mapped_column(Integer, default=1)


class AttemptRow(Base):
    __tablename__ = "notify_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bucket: Mapped[str] = mapped_column(String(96))
    at: Mapped[datetime] = mapped_column(TS)
    ok: Mapped[bool] = mapped_column(Boolean)
    __table_args__ = (Index("ix_notify_attempts_bucket_at", "bucket", "at"),)


class BucketRow(Base):
    __tablename__ = "notify_buckets"
    bucket: Mapped[str] = mapped_column(String(96), primary_key=True)
    blocked_until: Mapped[datetime] = mapped_column(TS)
    reason: Mapped[str] = mapped_column(Text)


class SilenceRow(Base):
    """A silence: notifications matching every given matcher are delayed until ``ends_at``."""

    __tablename__ = "notify_silences"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(80), default="*")  # rule id, glob
    entity_id: Mapped[str | None] = mapped_column(String(64))
    level: Mapped[str | None] = mapped_column(String(16))
    recipient_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(32))
    starts_at: Mapped[datetime] = mapped_column(TS)
    ends_at: Mapped[datetime] = mapped_column(TS, index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TS)
    expiry_noticed_at: Mapped[datetime | None] = mapped_column(TS)  # when its author was told it ended


NOTIFY_TABLES = [
    MessageRow.__table__,
    DeliveryRow.__table__,
    GroupRow.__table__,
    NotifyLogRow.__table__,
    AttemptRow.__table__,
    BucketRow.__table__,
    SilenceRow.__table__,
]


def create_notify_schema(engine: Engine) -> None:
    """Create the pipeline's tables if missing (the store's own tables must exist). Idempotent;
    production runs the versioned migrations instead."""
    Base.metadata.create_all(engine, tables=cast("list[Table]", NOTIFY_TABLES))  # mapped classes' tables
