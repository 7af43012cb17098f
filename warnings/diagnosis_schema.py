"""Tables of the three kinds of diagnosis (new tables only, on the warning store's ``Base``).

- ``self_diagnoses``     自主诊断: what an owner writes for one entity, 诊断要素 and period through the
                         web form of the monthly digest — 原因分析 and further 自我诊断意见. The
                         附件4 report quotes them; the numbers it drafts itself.
- ``diagnosis_notices``  the digests (自主诊断) and assessment summaries (考核性诊断) to deliver: one
                         row per (kind, period, recipient, channel), sent through the configured
                         notification sinks. Not ``notification_outbox``: that one is keyed to a
                         warning event, a digest is not. A sink outage leaves the row pending;
                         sending twice is prevented by the unique key.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from zhengai.warnings.schema import Base, UTCDateTime

__all__ = ["SelfDiagnosisRow", "DiagnosisNoticeRow"]

TS = UTCDateTime()


class SelfDiagnosisRow(Base):
    __tablename__ = "self_diagnoses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity_id: Mapped[str] = mapped_column(String(64), index=True)
    element_code: Mapped[str] = mapped_column(String(8))  # 诊断要素, e.g. "4.4"
    period: Mapped[str] = mapped_column(String(16))  # the digest's period, e.g. 2026-11
    author_id: Mapped[str] = mapped_column(String(64))
    cause: Mapped[str] = mapped_column(Text, default="")  # 原因分析
    opinion: Mapped[str] = mapped_column(Text, default="")  # further 自我诊断意见
    written_at: Mapped[datetime] = mapped_column(TS)


class DiagnosisNoticeRow(Base):
    __tablename__ = "diagnosis_notices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # self | assessment
    period: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str] = mapped_column(String(64))  # the entity (自主诊断) or assessing body (考核性诊断)
    recipient_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TS)
    sent_at: Mapped[datetime | None] = mapped_column(TS)
    __table_args__ = (
        UniqueConstraint("kind", "period", "unit", "recipient_id", "channel", name="uq_diagnosis_notice"),
    )
