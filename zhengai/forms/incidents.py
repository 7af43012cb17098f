"""质量事故 (seed 004:1024): the register read from Excel or a form, and the metrics it feeds.

- ``school.quality_incident_count`` (school, term): 一般 教学事故 and 质量事故 of the term (the rule
  counts only 一般 ones; 较大/重大 ones are announced at once instead, see ``serious``);
- ``course.teaching_incidents`` (course, term): 一般 教学事故 of that course — 0 for every other
  course of the directory in the terms the register covers (the rule wants 0 reported);
- ``school.campus_stability_events`` (school, year): 校园不稳定事件 and 违规办学事件, when the register
  is configured to count them (``incidents.count_stability``);
- ``school.serious_incident_count`` (school, term): 教学/质量事故 of a grade that must be announced at
  once (``incidents.notify_grades``: 较大, 重大) or carrying 一票否决 — a zero-tolerance rule, so one
  such registration is a red warning to 督导处 at once, through the normal warning pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time

from zhengai.forms.sheets import LocatedError, Sheet, cell_text, parse_date
from zhengai.forms.values import ValueIn
from zhengai.ingest.units import CST, term_of

__all__ = ["Incident", "read_incidents", "incident_values", "serious", "CATEGORIES", "GRADES"]

CATEGORIES = ("教学事故", "质量事故", "校园不稳定事件", "违规办学事件")
GRADES = ("一般", "较大", "重大")
_STABILITY = ("校园不稳定事件", "违规办学事件")
REQUIRED = ("事故编号", "发生时间", "责任单位编号", "类别", "等级")


@dataclass(frozen=True)
class Incident:
    id: str
    occurred_at: datetime
    unit_id: str
    course_id: str | None
    category: str
    grade: str
    veto: bool
    description: str = ""
    handling: str = ""


def parse_time(raw: object) -> datetime | None:
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=CST)
    text = cell_text(raw)
    day = parse_date(text.split(" ")[0]) if text else None
    if day is None:
        return None
    clock = time(0, 0)
    if " " in text:
        try:
            h, m = text.split(" ", 1)[1].split(":")[:2]
            clock = time(int(h), int(m))
        except ValueError:
            return None
    return datetime.combine(day, clock, CST)


def check(category: str, grade: str, veto_text: str) -> tuple[str, str] | None:
    """(column, why) for a bad category, grade or 一票否决 value; None when they are fine."""
    if category not in CATEGORIES:
        return "类别", f"类别须为 {' / '.join(CATEGORIES)}，不是“{category}”"
    if grade not in GRADES:
        return "等级", f"等级须为 {' / '.join(GRADES)}，不是“{grade}”"
    if veto_text not in ("", "是", "否"):
        return "一票否决", f"一票否决须填“是”或“否”，不是“{veto_text}”"
    return None


def read_incidents(sheet: Sheet) -> tuple[list[Incident], list[LocatedError], int]:
    missing = sheet.find_header(REQUIRED)
    if missing:
        return [], [missing], 0
    out: list[Incident] = []
    errors: list[LocatedError] = []
    rows = 0
    seen: dict[str, int] = {}
    for n, cells in sheet.data():
        rows += 1
        iid = cell_text(sheet.get(cells, "事故编号"))
        at = parse_time(sheet.get(cells, "发生时间"))
        unit = cell_text(sheet.get(cells, "责任单位编号"))
        category, grade = cell_text(sheet.get(cells, "类别")), cell_text(sheet.get(cells, "等级"))
        veto = cell_text(sheet.get(cells, "一票否决"))
        course = cell_text(sheet.get(cells, "课程编号")) or None
        problem = (
            ("事故编号", "未填写事故编号")
            if not iid
            else ("事故编号", f"与第 {seen[iid]} 行编号重复")
            if iid in seen
            else ("发生时间", f"“{cell_text(sheet.get(cells, '发生时间'))}”不是时间（如 2026-10-12 14:30）")
            if at is None
            else ("责任单位编号", "未填写责任单位编号")
            if not unit
            else check(category, grade, veto)
        )
        if problem is None and category == "教学事故" and not course:
            problem = ("课程编号", "教学事故须填写课程编号")
        if problem or at is None:
            errors.append(sheet.error(n, *(problem or ("发生时间", "不是时间"))))
            continue
        seen[iid] = n
        out.append(
            Incident(
                iid,
                at,
                unit,
                course,
                category,
                grade,
                veto == "是",
                cell_text(sheet.get(cells, "事故经过")),
                cell_text(sheet.get(cells, "处理情况")),
            )
        )
    return out, errors, rows


def incident_values(
    incidents: Iterable[Incident],
    school_id: str,
    *,
    terms: Sequence[str] = (),
    courses: Sequence[str] = (),
    count_stability: bool = False,
    serious_grades: Sequence[str] = ("较大", "重大"),
) -> list[ValueIn]:
    """Counts per term (and year), with 0 where the register covers a period and found nothing."""
    items = list(incidents)
    terms = sorted(set(terms) | {term_of(i.occurred_at) for i in items})
    out: list[ValueIn] = []
    for term in terms:
        general = [i for i in items if term_of(i.occurred_at) == term and i.grade == "一般"]
        out.append(
            ValueIn(
                "school.quality_incident_count",
                school_id,
                term,
                float(sum(i.category in ("教学事故", "质量事故") for i in general)),
            )
        )
        grave = serious(
            [i for i in items if term_of(i.occurred_at) == term and i.category in ("教学事故", "质量事故")],
            serious_grades,
        )
        out.append(ValueIn("school.serious_incident_count", school_id, term, float(len(grave))))
        per_course = dict.fromkeys(courses, 0)
        for i in general:
            if i.category == "教学事故" and i.course_id:
                per_course[i.course_id] = per_course.get(i.course_id, 0) + 1
        out += [ValueIn("course.teaching_incidents", c, term, float(n)) for c, n in sorted(per_course.items())]
    if count_stability:
        years = sorted({t[:4] for t in terms} | {str(i.occurred_at.astimezone(CST).year) for i in items})
        for year in years:
            n = sum(i.category in _STABILITY and str(i.occurred_at.astimezone(CST).year) == year for i in items)
            out.append(ValueIn("school.campus_stability_events", school_id, year, float(n)))
    return out


def serious(incidents: Iterable[Incident], grades: Sequence[str]) -> list[Incident]:
    """The incidents announced at once: a grade that requires it, or 一票否决."""
    return [i for i in incidents if i.grade in grades or i.veto]
