"""Tables of the improve half of the loop (new tables only, on the warning store's ``Base``).

- ``warning_evidence``     支撑材料: links people attach to a warning (or one of its measures)
                           after the measure was recorded; the measure's own links stay on it.
- ``improvement_effects``  measured 改进效果 stored with the review (series, change against the
                           standard and target, and the same change for comparable entities).
- ``link_revocations``     per-person revocation of signed action links: links a person got
                           before ``revoked_before`` are refused.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from zhengai.warnings.schema import Base, UTCDateTime

__all__ = ["EvidenceRow", "EffectRow", "LinkRevocationRow"]

TS = UTCDateTime()


class EvidenceRow(Base):
    __tablename__ = "warning_evidence"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    warning_id: Mapped[int] = mapped_column(ForeignKey("warnings.id"), index=True)
    improvement_id: Mapped[int | None] = mapped_column(ForeignKey("improvements.id"))
    url: Mapped[str] = mapped_column(String(1000))
    note: Mapped[str] = mapped_column(Text, default="")
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(TS)


class EffectRow(Base):
    __tablename__ = "improvement_effects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    warning_id: Mapped[int] = mapped_column(ForeignKey("warnings.id"), index=True)
    improvement_id: Mapped[int | None] = mapped_column(ForeignKey("improvements.id"))
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    measured_at: Mapped[datetime] = mapped_column(TS)
    summary: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class LinkRevocationRow(Base):
    __tablename__ = "link_revocations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    revoked_before: Mapped[datetime] = mapped_column(TS)
    revoked_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
