"""Read queries for people and reports: domain objects, never ORM rows.

The CLI, the web pages, the demo and reports read warnings, their audit trail and improvements
through ``Reads``. What they get are frozen records with the columns' names — detached from any
session, so nothing lazy-loads after the session closed and nothing written to them is silently
lost. The write side (the unit of work in ``store``) keeps its ORM rows to itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from zhengai.warnings.schema import ImprovementRow, WarningEventRow, WarningRow

__all__ = ["Reads", "WarningRecord", "WarningEventRecord", "ImprovementRecord", "record_of"]


@dataclass(frozen=True, slots=True)
class WarningRecord:
    """One warning episode as stored (one per rule × entity × episode)."""

    id: int
    rule_id: str
    rule_name: str
    entity_id: str
    episode: int
    level: str
    metric: str
    status: str
    band: str
    worst_band: str
    opened_period: str
    last_period: str
    value: float | None
    reason: str
    responsible_role: str | None
    responsible_person_id: str | None
    pending_count: int
    recovery_count: int
    escalation_level: int
    due_date: datetime | None
    next_escalation_at: datetime | None
    stale: bool
    last_data_at: datetime | None
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    recovered_at: datetime | None
    closed_at: datetime | None
    resolution: str | None
    close_reason: str | None


@dataclass(frozen=True, slots=True)
class WarningEventRecord:
    """One transition of a warning (the audit trail) and what or who caused it."""

    id: int
    warning_id: int
    kind: str
    from_status: str | None
    to_status: str
    from_band: str | None
    to_band: str
    period: str
    value: float | None
    reason: str
    cause: str
    actor: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class ImprovementRecord:
    """改进措施 with its measured effect (实际效果)."""

    id: int
    warning_id: int
    owner_id: str
    text: str
    evidence: list
    due_date: datetime
    created_at: datetime
    value_before: float | None
    value_after: float | None
    effect_measured_at: datetime | None
    effect: str | None


R = TypeVar("R")


def record_of(kind: type[R], row: Any) -> R:
    """The domain record ``kind`` with the values of the ORM row ``row`` (same column names)."""
    return kind(**{f.name: getattr(row, f.name) for f in fields(kind)})  # type: ignore[arg-type]


class Reads:
    """What people and reports read; each call opens and closes its own session."""

    def __init__(self, sessions: sessionmaker[Session]):
        self._session = sessions

    def count(self, table: Any) -> int:
        with self._session() as s:
            return s.scalar(select(func.count()).select_from(table)) or 0

    def warning(self, warning_id: int) -> WarningRecord | None:
        with self._session() as s:
            row = s.get(WarningRow, warning_id)
            return record_of(WarningRecord, row) if row is not None else None

    def warnings(self, *, status: str | None = None) -> list[WarningRecord]:
        with self._session() as s:
            q = select(WarningRow).order_by(WarningRow.id)
            if status:
                q = q.where(WarningRow.status == status)
            return [record_of(WarningRecord, row) for row in s.scalars(q)]

    def events(self, warning_id: int | None = None) -> list[WarningEventRecord]:
        with self._session() as s:
            q = select(WarningEventRow).order_by(WarningEventRow.id)
            if warning_id is not None:
                q = q.where(WarningEventRow.warning_id == warning_id)
            return [record_of(WarningEventRecord, row) for row in s.scalars(q)]

    def improvements(self, warning_id: int) -> list[ImprovementRecord]:
        with self._session() as s:
            q = select(ImprovementRow).where(ImprovementRow.warning_id == warning_id).order_by(ImprovementRow.id)
            return [record_of(ImprovementRecord, row) for row in s.scalars(q)]
