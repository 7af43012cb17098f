"""Tables of 填报 (forms, tasks and incidents): new tables only, on the warning store's ``Base``.

- ``form_issues``       a template handed to an office: which form, which period, due when — the
                        expected submissions that ``school.data_collection_quality`` is measured on;
- ``form_submissions``  one row per file or online form received: who, when, from which file,
                        accepted / partial / refused, and every located error;
- ``form_values``       the audit of every value: who entered or changed it, when, from which file
                        (sheet and row), and the value it replaced;
- ``dept_tasks``        部门工作任务完成情况一览表: one row per task with its monthly completion;
- ``quality_incidents`` 质量事故 register: grade, unit, time, handling, 一票否决.

The values themselves travel as Observations through the same path as every other source
(Kafka + worker, or the embedded runner); these tables hold what the forms add on top.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from zhengai.warnings.schema import Base, UTCDateTime

__all__ = ["FormIssueRow", "FormSubmissionRow", "FormValueRow", "TaskRow", "IncidentRow", "FORMS_TABLES"]

TS = UTCDateTime()


class FormIssueRow(Base):
    __tablename__ = "form_issues"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    form_id: Mapped[str] = mapped_column(String(64))
    office: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(TS)
    issued_at: Mapped[datetime] = mapped_column(TS)
    __table_args__ = (Index("ix_form_issues_form_office_period", "form_id", "office", "period", unique=True),)


class FormSubmissionRow(Base):
    __tablename__ = "form_submissions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    form_id: Mapped[str] = mapped_column(String(64), index=True)
    office: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str | None] = mapped_column(String(255))
    via: Mapped[str] = mapped_column(String(16))  # upload | drop | online | import
    submitted_by: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime] = mapped_column(TS)
    status: Mapped[str] = mapped_column(String(12))  # accepted | partial | refused
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list] = mapped_column(JSON, default=list)  # located Chinese errors


class FormValueRow(Base):
    __tablename__ = "form_values"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("form_submissions.id"), index=True)
    metric: Mapped[str] = mapped_column(String(80))
    entity_id: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(16))
    value: Mapped[float] = mapped_column(Float)
    previous: Mapped[float | None] = mapped_column(Float)  # the value it replaced (a change)
    entered_by: Mapped[str] = mapped_column(String(64))
    entered_at: Mapped[datetime] = mapped_column(TS)
    source_file: Mapped[str | None] = mapped_column(String(255))
    sheet: Mapped[str | None] = mapped_column(String(64))
    row: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (Index("ix_form_values_metric_entity_period", "metric", "entity_id", "period"),)


class TaskRow(Base):
    __tablename__ = "dept_tasks"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # stable: year, unit and task text
    year: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str] = mapped_column(String(64))  # 部门
    title: Mapped[str] = mapped_column(Text)
    attribute: Mapped[str] = mapped_column(String(8))  # 重点 | 常规
    kind: Mapped[str] = mapped_column(String(8))  # 部门 | 个人 (教师个人发展计划)
    due: Mapped[date] = mapped_column(Date)
    owner_id: Mapped[str] = mapped_column(String(64))
    months: Mapped[dict] = mapped_column(JSON, default=dict)  # "1".."12" → completion %
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(TS)
    source_file: Mapped[str | None] = mapped_column(String(255))


class IncidentRow(Base):
    __tablename__ = "quality_incidents"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # 事故编号
    occurred_at: Mapped[datetime] = mapped_column(TS)
    unit_id: Mapped[str] = mapped_column(String(64))  # 责任单位 (directory id)
    course_id: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))
    grade: Mapped[str] = mapped_column(String(8))  # 一般 | 较大 | 重大
    veto: Mapped[bool] = mapped_column(Boolean, default=False)  # 一票否决
    description: Mapped[str] = mapped_column(Text, default="")
    handling: Mapped[str] = mapped_column(Text, default="")
    registered_by: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(TS)
    source_file: Mapped[str | None] = mapped_column(String(255))
    notified_at: Mapped[datetime | None] = mapped_column(TS)


FORMS_TABLES = [
    FormIssueRow.__table__,
    FormSubmissionRow.__table__,
    FormValueRow.__table__,
    TaskRow.__table__,
    IncidentRow.__table__,
]
