"""Who owes what, by when: templates issued to offices (``form_issues``), the submissions that
answer them, and ``school.data_collection_quality`` — the share of the submissions due in the last
``window`` days that arrived by their due date. A missing submission past its due date lowers it
(a warning to 信息中心 through the rule) and is listed by office (``overdue``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from zhengai.forms.values import ValueIn
from zhengai.ingest.units import CST
from zhengai.warnings.forms_schema import FormIssueRow, FormSubmissionRow

__all__ = ["issue", "Overdue", "collection_quality"]

METRIC = "school.data_collection_quality"


def issue(store, form_id: str, office: str, period: str, due_at: datetime, at: datetime) -> None:
    """Record that ``office`` owes ``form_id`` for ``period`` by ``due_at`` (idempotent)."""
    with store.session() as s:
        row = s.scalar(
            select(FormIssueRow).where(
                FormIssueRow.form_id == form_id, FormIssueRow.office == office, FormIssueRow.period == period
            )
        )
        if row is None:
            s.add(FormIssueRow(form_id=form_id, office=office, period=period, due_at=due_at, issued_at=at))
        else:
            row.due_at = due_at
        s.commit()


@dataclass(frozen=True)
class Overdue:
    form_id: str
    office: str
    period: str
    due_at: datetime
    received_at: datetime | None  # late, or None: still missing

    @property
    def text(self) -> str:
        due = self.due_at.astimezone(CST).strftime("%Y-%m-%d")
        late = f"{self.received_at.astimezone(CST):%Y-%m-%d} 迟交" if self.received_at else "尚未提交"
        return f"{self.office}：{self.form_id}（{self.period}）应于 {due} 前提交，{late}"


def collection_quality(
    store, school_id: str, as_of: datetime, window: timedelta = timedelta(days=90)
) -> tuple[ValueIn | None, list[Overdue]]:
    """The metric for ``as_of``'s day (None when nothing was due in the window) and the issues
    that were not answered on time."""
    with store.session() as s:
        issues = list(
            s.scalars(select(FormIssueRow).where(FormIssueRow.due_at <= as_of, FormIssueRow.due_at > as_of - window))
        )
        late: list[Overdue] = []
        for i in issues:
            first = s.scalar(
                select(FormSubmissionRow.submitted_at)
                .where(
                    FormSubmissionRow.form_id == i.form_id,
                    FormSubmissionRow.office == i.office,
                    FormSubmissionRow.period == i.period,
                    FormSubmissionRow.status != "refused",
                )
                .order_by(FormSubmissionRow.submitted_at)
                .limit(1)
            )
            if first is None or first > i.due_at:
                late.append(Overdue(i.form_id, i.office, i.period, i.due_at, first))
    if not issues:
        return None, late
    day = as_of.astimezone(CST).date().isoformat()
    value = round(100 * (len(issues) - len(late)) / len(issues), 4)
    return ValueIn(METRIC, school_id, day, value), late
