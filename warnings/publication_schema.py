"""The table of rulebook publications (new table only, on the warning store's ``Base``).

``rulebook_publications``: one row per ``zhengai rules publish`` (or ``restore``) — the whole
rulebook as published (every file's text, comments and overrides included, so a restore gives
the files back byte for byte), who, why, when, and whether it was the baseline (the first
publication), a change, or a restore of an earlier one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from zhengai.warnings.schema import Base, UTCDateTime

__all__ = ["PublicationRow"]

TS = UTCDateTime()


class PublicationRow(Base):
    __tablename__ = "rulebook_publications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(12))  # baseline | change | restore
    version: Mapped[str] = mapped_column(String(16))  # the rulebook's digest (RuleSet.version)
    files: Mapped[dict] = mapped_column(JSON)  # file name → text
    rules: Mapped[int] = mapped_column(Integer)
    changes: Mapped[list] = mapped_column(JSON, default=list)  # [rule id, field, old, new] against the previous
    restored_from: Mapped[int | None] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(TS, index=True)
