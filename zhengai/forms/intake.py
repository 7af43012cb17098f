"""Taking filled forms in: one entry for the upload page, the drop folder, the online form and the
task/incident imports.

A submission is recorded (who, when, which file, accepted/partial/refused, every located error)
and each accepted value audited (``form_values``: who entered or changed it, when, from which
file, sheet and row, and the value it replaced). The values then go as Observations to the
``Delivery`` — Kafka for the worker, or the embedded pipeline — the same path as every connector:
nothing here writes observations to the store. The audit is written in one transaction that
commits only after the delivery returned, so a delivery failure records nothing and the file stays
where it was.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengai.connectors.base import Delivery
from zhengai.forms import incidents as incident_route
from zhengai.forms import tasks as task_route
from zhengai.forms.sheets import WorkbookError, open_workbook
from zhengai.forms.spec import FormsConfig
from zhengai.forms.values import ValueIn, read_form
from zhengai.ingest.directory import Directory
from zhengai.ingest.records import EntityKind, Level, Observation
from zhengai.rules.loader import RuleSet
from zhengai.warnings.forms_schema import FormSubmissionRow, FormValueRow, IncidentRow, TaskRow

__all__ = ["Intake", "Outcome", "check_due"]

log = logging.getLogger("zhengai.forms")


@dataclass
class Outcome:
    kind: str  # values | tasks | incidents | unknown
    status: str  # accepted | partial | refused
    accepted: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    submission_id: int | None = None
    delivered: int = 0

    @property
    def summary(self) -> str:
        head = {"accepted": "已接收", "partial": "部分接收", "refused": "已拒收"}[self.status]
        return f"{head}：有效 {self.accepted} 行，有误 {self.rejected} 行"


class Intake:
    """``store``: the warning store (audit tables); ``delivery``: where observations go;
    ``directory()``: the current directory (school id, entity checks, course list)."""

    def __init__(
        self,
        store,
        delivery: Delivery,
        config: FormsConfig,
        rules: RuleSet,
        *,
        directory: Callable[[], Directory],
        clock: Callable[[], datetime] | None = None,
    ):
        self.store, self.delivery, self.config, self.rules = store, delivery, config, rules
        self.directory = directory
        self.clock = clock or (lambda: datetime.now(UTC))

    # --- entry points ------------------------------------------------------------------------
    def submit(self, data: bytes, name: str, *, by: str | None, via: str, at: datetime | None = None) -> Outcome:
        """A workbook: a generated 填报 form, a task table or an incident register."""
        at = at or self.clock()
        try:
            sheets, meta = open_workbook(data, name)
        except WorkbookError as exc:
            return self._refuse("unknown", "", meta={}, name=name, by=by or via, via=via, at=at, errors=[str(exc)])
        kind = meta.get("kind") or _guess(sheets)
        if kind == "values":
            return self._values(sheets, meta, name, by, via, at)
        if kind in ("tasks", "incidents"):
            sheet = next(iter(sheets.values()))
            return getattr(self, f"_{kind}")(sheet, meta, name, by, via, at)
        return self._refuse(
            "unknown",
            "",
            meta=meta,
            name=name,
            by=by or via,
            via=via,
            at=at,
            errors=["无法识别的表格：请使用 zhengai 下发的填报模板、部门工作任务一览表或质量事故登记表"],
        )

    def enter(
        self,
        form_id: str,
        period: str,
        values: Sequence[tuple[str, str, float]],
        *,
        by: str,
        at: datetime | None = None,
    ) -> Outcome:
        """The online form: a handful of (metric, entity, value) for one form and period."""
        at = at or self.clock()
        form = self.config.form(form_id)
        good = [ValueIn(m, e, period, v) for m, e, v in values if m in form.metrics]
        return self._record(form_id, form.office, period, None, "online", by, at, good, [], len(values))

    # --- the three kinds -----------------------------------------------------------------------
    def _values(self, sheets, meta, name, by, via, at) -> Outcome:
        directory = self.directory()
        read = read_form(
            sheets,
            meta,
            self.config,
            self.rules,
            known=(lambda e: directory.get(e) is not None) if len(directory) else None,
        )
        by = by or read.filler or f"{via}"
        errors = [str(e) for e in read.errors]
        if read.form is None or (read.form.mode == "whole" and errors):
            return self._refuse(
                "values",
                read.form.id if read.form else meta.get("form", ""),
                meta=meta,
                name=name,
                by=by,
                via=via,
                at=at,
                errors=errors,
                rows=read.rows,
                accepted_ok=len(read.values),
            )
        return self._record(
            read.form.id, read.form.office, read.period, name, via, by, at, read.values, errors, read.rows
        )

    def _tasks(self, sheet, meta, name, by, via, at) -> Outcome:
        year = int((meta.get("period") or str(at.year))[:4])
        found, errors, rows = task_route.read_tasks(sheet, year)
        by = by or via
        if not found and errors:
            return self._refuse(
                "tasks",
                "tasks",
                meta=meta,
                name=name,
                by=by,
                via=via,
                at=at,
                errors=[str(e) for e in errors],
                rows=rows,
            )
        with self.store.session() as s:
            for t in found:
                row = s.get(TaskRow, t.id) or TaskRow(id=t.id)
                row.year, row.unit, row.title, row.attribute, row.kind = t.year, t.unit, t.title, t.attribute, t.kind
                row.due, row.owner_id, row.months = t.due, t.owner_id, {str(k): v for k, v in t.months.items()}
                row.updated_by, row.updated_at, row.source_file = by, at, name
                s.add(row)
            s.commit()
            stored = [_task(r) for r in s.scalars(select(TaskRow).where(TaskRow.year == year))]
        values = task_route.task_values(stored, self._school(), at)  # the table as of when it was handed in
        period = meta.get("period") or f"{at.astimezone().year}"
        return self._record(
            "tasks",
            self.config.tasks.office,
            period,
            name,
            via,
            by,
            at,
            values,
            [str(e) for e in errors],
            rows,
            derived=True,
            good_rows=len(found),
        )

    def _incidents(self, sheet, meta, name, by, via, at) -> Outcome:
        found, errors, rows = incident_route.read_incidents(sheet)
        by = by or via
        if errors and not found:
            return self._refuse(
                "incidents",
                "incidents",
                meta=meta,
                name=name,
                by=by,
                via=via,
                at=at,
                errors=[str(e) for e in errors],
                rows=rows,
            )
        return self.register(
            found,
            by=by,
            via=via,
            at=at,
            name=name,
            period=meta.get("period"),
            errors=[str(e) for e in errors],
            rows=rows,
        )

    def register(
        self,
        found: Sequence[incident_route.Incident],
        *,
        by: str,
        via: str,
        at: datetime | None = None,
        name: str | None = None,
        period: str | None = None,
        errors: Sequence[str] = (),
        rows: int | None = None,
    ) -> Outcome:
        """Store incidents (a form or an import) and deliver the counts they change."""
        at = at or self.clock()
        spec = self.config.incidents
        with self.store.session() as s:
            for i in found:
                row = s.get(IncidentRow, i.id) or IncidentRow(id=i.id)
                row.occurred_at, row.unit_id, row.course_id = i.occurred_at, i.unit_id, i.course_id
                row.category, row.grade, row.veto = i.category, i.grade, i.veto
                row.description, row.handling = i.description, i.handling
                row.registered_by, row.registered_at, row.source_file = by, at, name
                s.add(row)
            s.commit()
            stored = [_incident(r) for r in s.scalars(select(IncidentRow))]
        directory = self.directory()
        courses = sorted(e.id for e in directory.of_kind(EntityKind.course)) if len(directory) else []
        terms = [period] if period and period.count("-") == 2 else []
        # serious ones (notify_grades, 一票否决) raise school.serious_incident_count: a red warning at once
        values = incident_route.incident_values(
            stored,
            self._school(),
            terms=terms,
            courses=courses,
            count_stability=spec.count_stability,
            serious_grades=spec.notify_grades,
        )
        for i in incident_route.serious(found, spec.notify_grades):
            log.info("serious incident registered: %s grade=%s veto=%s", i.id, i.grade, i.veto)
        return self._record(
            "incidents",
            spec.office,
            period or "-",
            name,
            via,
            by,
            at,
            values,
            list(errors),
            rows if rows is not None else len(found),
            derived=True,
            good_rows=len(found),
        )

    # --- recording ---------------------------------------------------------------------------
    def _school(self) -> str:
        school = self.directory().school()
        return school.id if school is not None else "SCH"

    def _refuse(self, kind, form_id, *, meta, name, by, via, at, errors, rows=0, accepted_ok=0) -> Outcome:
        with self.store.session() as s:
            row = FormSubmissionRow(
                form_id=form_id or "-",
                office=meta.get("office", "-"),
                period=meta.get("period", "-"),
                file_name=name,
                via=via,
                submitted_by=by,
                submitted_at=at,
                status="refused",
                accepted=0,
                rejected=max(rows - accepted_ok, 1 if errors else 0),
                errors=errors,
            )
            s.add(row)
            s.commit()
            sid = row.id
        log.info("forms: %s refused (%d errors)", name, len(errors))
        return Outcome(kind, "refused", 0, row.rejected, errors, sid)

    def _record(
        self,
        form_id: str,
        office: str,
        period: str,
        name: str | None,
        via: str,
        by: str,
        at: datetime,
        values: Sequence[ValueIn],
        errors: list[str],
        rows: int,
        *,
        derived: bool = False,
        good_rows: int | None = None,
    ) -> Outcome:
        accepted = good_rows if good_rows is not None else len(values)
        status = "accepted" if not errors else "partial"
        with self.store.session() as s:
            changes = []
            for v in values:
                previous = _latest(s, v)
                if not (derived and previous == v.value):  # derived and unchanged: nothing to audit or send
                    changes.append((v, previous))
        token = uuid.uuid4().hex[:12]  # one per submission: a correction is a new observation, a replay is not
        observations = [
            Observation(
                level=Level(v.metric.split(".")[0]),
                entity_id=v.entity_id,
                metric=v.metric,
                value=v.value,
                period=v.period,
                observed_at=at,
                source=f"forms.{form_id}",
                key=f"forms.{form_id}|{v.metric}|{v.entity_id}|{v.period}|{token}",
            )
            for v, _ in changes
        ]
        if observations:
            # First delivered, then recorded: a failure here records nothing and leaves the file where
            # it is; a crash between the two sends the values again later under a new token (the
            # same values, judged again: harmless).
            self.delivery.deliver(observations)
        with self.store.session() as s:
            sub = FormSubmissionRow(
                form_id=form_id,
                office=office,
                period=period,
                file_name=name,
                via=via,
                submitted_by=by,
                submitted_at=at,
                status=status,
                accepted=accepted,
                rejected=max(rows - accepted, len(errors) and 1),
                errors=errors,
            )
            s.add(sub)
            s.flush()
            s.add_all(
                FormValueRow(
                    submission_id=sub.id,
                    metric=v.metric,
                    entity_id=v.entity_id,
                    period=v.period,
                    value=v.value,
                    previous=previous,
                    entered_by=by,
                    entered_at=at,
                    source_file=name,
                    sheet=v.sheet,
                    row=v.row,
                )
                for v, previous in changes
            )
            s.commit()
            sid, rejected = sub.id, sub.rejected
        log.info("forms: %s from %s via %s: %s, %d observations", form_id, name or "-", via, status, len(observations))
        return Outcome("values" if not derived else form_id, status, accepted, rejected, errors, sid, len(observations))


def _latest(s: Session, v: ValueIn) -> float | None:
    return s.scalar(
        select(FormValueRow.value)
        .where(FormValueRow.metric == v.metric, FormValueRow.entity_id == v.entity_id, FormValueRow.period == v.period)
        .order_by(FormValueRow.id.desc())
        .limit(1)
    )


def _guess(sheets) -> str:
    """An office's own Excel (not generated here): recognised by its header."""
    for sheet in sheets.values():
        if sheet.find_header(task_route.REQUIRED) is None:
            return "tasks"
        if sheet.find_header(incident_route.REQUIRED) is None:
            return "incidents"
    return "unknown"


def _task(r: TaskRow) -> task_route.Task:
    return task_route.Task(
        r.id,
        r.year,
        r.unit,
        r.title,
        r.attribute,
        r.kind,
        r.due,
        r.owner_id,
        {int(k): float(v) for k, v in (r.months or {}).items()},
    )


def _incident(r: IncidentRow) -> incident_route.Incident:
    return incident_route.Incident(
        r.id, r.occurred_at, r.unit_id, r.course_id, r.category, r.grade, r.veto, r.description, r.handling
    )


def check_due(intake: Intake, as_of: datetime | None = None):
    """Deliver ``school.data_collection_quality`` for ``as_of``'s day; return the late or missing
    submissions (see ``zhengai.forms.due``)."""
    from zhengai.forms.due import collection_quality

    as_of = as_of or intake.clock()
    value, late = collection_quality(intake.store, intake._school(), as_of)
    if value is not None:
        intake._record(
            "collection", "信息中心", value.period, None, "check", "zhengai", as_of, [value], [], 1, derived=True
        )
    return value, late
