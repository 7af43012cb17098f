"""SQLAlchemy models of the warning store. The same models run on SQLite (embedded) and
PostgreSQL; the schema is created and evolved by the versioned migrations in ``migrations/``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from zhengai.ingest.sqltypes import UTCDateTime

__all__ = [
    "Base",
    "EntityRow",
    "PersonRow",
    "ObservationRow",
    "VerdictRow",
    "WarningRow",
    "WarningEventRow",
    "ImprovementRow",
    "RuleVersionRow",
    "OutboxRow",
    "DeadLetterRow",
    "BookmarkRow",
]


TS = UTCDateTime()


class Base(DeclarativeBase):
    pass


class EntityRow(Base):
    __tablename__ = "entities"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str] = mapped_column(String(128))
    parent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # denormalised from the lineage so dashboards group without recursive queries
    department_id: Mapped[str | None] = mapped_column(String(64), index=True)
    major_id: Mapped[str | None] = mapped_column(String(64))
    responsible: Mapped[dict] = mapped_column(JSON, default=dict)  # role → person id
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)


class PersonRow(Base):
    __tablename__ = "persons"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    dingtalk_user_id: Mapped[str | None] = mapped_column(String(64))
    mobile: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(128))


class ObservationRow(Base):
    __tablename__ = "observations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(256))
    level: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(80))
    period: Mapped[str] = mapped_column(String(16))
    value: Mapped[float] = mapped_column(Float)
    is_bool: Mapped[bool] = mapped_column(Boolean, default=False)
    observed_at: Mapped[datetime] = mapped_column(TS)
    source: Mapped[str] = mapped_column(String(128))
    # the period's first instant: the idempotency key's time column (TimescaleDB partitions by it)
    period_start: Mapped[datetime] = mapped_column(TS)
    __table_args__ = (
        Index("ix_observations_metric_entity_period", "metric", "entity_id", "period"),
        UniqueConstraint("key", "period_start", name="uq_observation_key"),
    )


class VerdictRow(Base):
    __tablename__ = "verdicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(320))
    rule_id: Mapped[str] = mapped_column(String(80))
    rule_version: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(80))
    period: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    band: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(Text)
    thresholds: Mapped[dict] = mapped_column(JSON)
    observed_at: Mapped[datetime | None] = mapped_column(TS)
    evaluated_at: Mapped[datetime] = mapped_column(TS)
    period_start: Mapped[datetime] = mapped_column(TS)  # as ObservationRow.period_start
    __table_args__ = (
        Index("ix_verdicts_rule_entity_period", "rule_id", "entity_id", "period"),
        Index("ix_verdicts_level_band", "level", "band"),
        UniqueConstraint("key", "period_start", name="uq_verdict_key"),
    )


class WarningRow(Base):
    """Current state of one warning episode (one per rule × entity × episode)."""

    __tablename__ = "warnings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(String(80))
    rule_name: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    episode: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(16))
    metric: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16), index=True)
    band: Mapped[str] = mapped_column(String(12))
    worst_band: Mapped[str] = mapped_column(String(12))
    opened_period: Mapped[str] = mapped_column(String(16))
    last_period: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    responsible_role: Mapped[str | None] = mapped_column(String(64))
    responsible_person_id: Mapped[str | None] = mapped_column(String(64))
    pending_count: Mapped[int] = mapped_column(Integer, default=0)
    recovery_count: Mapped[int] = mapped_column(Integer, default=0)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    due_date: Mapped[datetime | None] = mapped_column(TS)  # 限期改进
    next_escalation_at: Mapped[datetime | None] = mapped_column(TS)
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    last_data_at: Mapped[datetime | None] = mapped_column(TS)
    opened_at: Mapped[datetime] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS)
    acknowledged_at: Mapped[datetime | None] = mapped_column(TS)
    recovered_at: Mapped[datetime | None] = mapped_column(TS)
    closed_at: Mapped[datetime | None] = mapped_column(TS)
    resolution: Mapped[str | None] = mapped_column(String(16))
    close_reason: Mapped[str | None] = mapped_column(Text)  # 误报原因 and review notes
    __table_args__ = (
        UniqueConstraint("rule_id", "entity_id", "episode", name="uq_warning_episode"),
        Index("ix_warnings_rule_entity", "rule_id", "entity_id"),
        Index("ix_warnings_next_escalation", "next_escalation_at"),
    )


class WarningEventRow(Base):
    """The audit trail: every transition of every warning, and what or who caused it."""

    __tablename__ = "warning_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    warning_id: Mapped[int] = mapped_column(ForeignKey("warnings.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    from_band: Mapped[str | None] = mapped_column(String(12))
    to_band: Mapped[str] = mapped_column(String(12))
    period: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    cause: Mapped[str] = mapped_column(String(320))  # the verdict key, the actor's action, or the tick
    actor: Mapped[str | None] = mapped_column(String(64))  # who, for people's actions
    at: Mapped[datetime] = mapped_column(TS, index=True)
    __table_args__ = (UniqueConstraint("warning_id", "kind", "cause", name="uq_event_cause"),)


class ImprovementRow(Base):
    """改进措施: owner, text, evidence, due date, and the measured effect (实际效果, not a forecast)."""

    __tablename__ = "improvements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    warning_id: Mapped[int] = mapped_column(ForeignKey("warnings.id"), index=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    evidence: Mapped[list] = mapped_column(JSON, default=list)  # links to 佐证材料
    due_date: Mapped[datetime] = mapped_column(TS)
    created_at: Mapped[datetime] = mapped_column(TS)
    value_before: Mapped[float | None] = mapped_column(Float)
    value_after: Mapped[float | None] = mapped_column(Float)
    effect_measured_at: Mapped[datetime | None] = mapped_column(TS)
    effect: Mapped[str | None] = mapped_column(Text)


class RuleVersionRow(Base):
    """Who changed which threshold, when and why: one row per published rule version."""

    __tablename__ = "rule_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(String(80))
    version: Mapped[str] = mapped_column(String(16))
    content: Mapped[dict] = mapped_column(JSON)
    changes: Mapped[dict] = mapped_column(JSON, default=dict)  # field → [old, new]
    author: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(TS)
    __table_args__ = (UniqueConstraint("rule_id", "version", name="uq_rule_version"),)


class OutboxRow(Base):
    """Notifications to send. A sink outage leaves rows pending; nothing is dropped."""

    __tablename__ = "notification_outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("warning_events.id"))
    channel: Mapped[str] = mapped_column(String(32))
    recipient_id: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TS)
    sent_at: Mapped[datetime | None] = mapped_column(TS)
    # one row per recipient: an escalation notice goes to the next level and is copied to the owner
    __table_args__ = (
        UniqueConstraint("event_id", "channel", "recipient_id", name="uq_outbox_event_channel_recipient"),
    )


class DeadLetterRow(Base):
    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(TS)


class BookmarkRow(Base):
    __tablename__ = "connector_bookmarks"
    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(TS)
