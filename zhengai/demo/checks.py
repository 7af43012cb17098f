"""Self-check of the demo college: recompute every metric from the generated rows (the formulas
of ``SOURCES.md``) and prove that each planted anomaly lies unambiguously inside its band, that
the healthy references breach nothing, and that nothing above the student level breaches
unplanned. The generator refuses to return a college that fails this.
"""

from __future__ import annotations

from functools import lru_cache

from zhengai.demo.forms import FORMS_METRICS
from zhengai.demo.people import SENIOR_TITLES
from zhengai.demo.planting import gpa_points, schedule_deviation
from zhengai.demo.structure import (
    BUDGET_YEAR,
    CURRENT_TERM,
    PREVIOUS_TERM,
    SCHOOL_ID,
    Build,
    PlantedAnomaly,
)
from zhengai.ingest.records import Band, Thresholds
from zhengai.rules.evaluator import classify, resolve_thresholds
from zhengai.rules.loader import load_rulebook

__all__ = ["DEMO_METRICS", "band", "compute", "school", "verify"]

Metrics = dict[tuple[str, str, str], float]  # (metric, entity, period) → value

# The metrics the demo computes; their thresholds come from the shipped rulebook — one source of
# truth, so a recalibrated rule makes the generator re-plant (or fail loudly), never drift.
DEMO_METRICS = (
    "school.student_teacher_ratio",
    "school.postgrad_degree_teacher_ratio",
    "school.senior_title_teacher_ratio",
    "school.fiscal_appropriation_per_student",
    "school.teaching_investment_ratio",
    "school.teacher_training_budget_ratio",
    "school.counselor_student_ratio",
    "major.enrolled_students",
    "major.dual_qualified_ratio",
    "major.practice_hours_ratio",
    "course.attendance_rate",
    "course.pass_rate",
    "course.excellent_rate",
    "course.student_evaluation_score",
    "course.evaluation_participation",
    "course.schedule_deviation",
    "teacher.student_evaluation_score",
    "teacher.training_days",
    "teacher.weekly_hours",
    "teacher.senior_prof_teaching",
    "student.attendance_rate",
    "student.absence_hours",
    "student.failed_courses",
    "student.gpa",
) + FORMS_METRICS


@lru_cache(maxsize=1)
def _thresholds() -> dict[str, Thresholds]:
    rules = load_rulebook()
    return {
        m: resolve_thresholds(r, {}, ()) for m, r in rules.rules.items() if r.enabled
    }  # every rule (the systems' too)


def band(metric: str, value: float) -> Band:
    """The band the real evaluator gives ``value`` under the shipped rulebook."""
    return classify(float(value), _thresholds()[metric])[0]


def _margin_ok(metric: str, value: float) -> bool:
    """Not on (or within 1 % of) any threshold: a planted value must not depend on rounding."""
    th = _thresholds()[metric]
    flat = [
        x for t in (th.target, th.standard, th.warning) if t is not None for x in (t if isinstance(t, tuple) else (t,))
    ]
    return all(abs(value - t) >= max(0.05, 0.01 * abs(t)) for t in flat)


def compute(c: Build) -> Metrics:
    m: Metrics = {}
    _attendance(c, m)
    _grades(c, m)
    _teaching(c, m)
    _schedules(c, m)
    _majors(c, m)
    m.update(school(c, count_suspended=True))
    return m


def _attendance(c: Build, m: Metrics) -> None:
    course: dict[tuple[str, str], list[int]] = {}
    student: dict[tuple[str, str], list[int]] = {}
    for s in c.current_students():
        hours = 0
        for k in s.courses:
            scheduled = c.courses[k].sessions
            for w, week in enumerate(c.weeks):
                unexcused, excused = c.absences.get((s.id, k, w), (0, 0))
                attended = scheduled - unexcused - excused
                hours += 2 * unexcused
                for tally in (course.setdefault((k, week), [0, 0]), student.setdefault((s.id, week), [0, 0])):
                    tally[0] += attended
                    tally[1] += scheduled
        m[("student.absence_hours", s.id, CURRENT_TERM)] = hours
    for (k, week), (att, sch) in course.items():
        m[("course.attendance_rate", k, week)] = 100 * att / sch
    for (sid, week), (att, sch) in student.items():
        m[("student.attendance_rate", sid, week)] = 100 * att / sch


def _grades(c: Build, m: Metrics) -> None:
    scores: dict[str, list[float]] = {}
    per_student: dict[str, list[tuple[float, float]]] = {}
    for (sid, k), score in c.grades.items():
        scores.setdefault(k, []).append(score)
        per_student.setdefault(sid, []).append((score, c.courses[k].credits))
    for k, values in scores.items():
        m[("course.pass_rate", k, PREVIOUS_TERM)] = 100 * sum(v >= 60 for v in values) / len(values)
        m[("course.excellent_rate", k, PREVIOUS_TERM)] = 100 * sum(v >= 90 for v in values) / len(values)
    for sid, rows in per_student.items():
        m[("student.failed_courses", sid, PREVIOUS_TERM)] = sum(v < 60 for v, _ in rows)
        m[("student.gpa", sid, PREVIOUS_TERM)] = sum(gpa_points(v) * cr for v, cr in rows) / sum(cr for _, cr in rows)


def _teaching(c: Build, m: Metrics) -> None:
    teachers = [t for t in c.staff.values() if t.type == "teacher"]
    hours = {t.id: 0 for t in teachers}
    count = {t.id: 0 for t in teachers}
    for k in c.courses.values():
        hours[k.teacher_id] += k.weekly_hours
        count[k.teacher_id] += 1
    for t in teachers:
        m[("teacher.weekly_hours", t.id, CURRENT_TERM)] = hours[t.id]
        m[("teacher.training_days", t.id, BUDGET_YEAR)] = t.training_days
        if t.title in ("教授", "副教授") and 2026 - t.birth_year < 55:
            m[("teacher.senior_prof_teaching", t.id, CURRENT_TERM)] = count[t.id]
    for term, rows in c.sections.items():
        weighted: dict[str, list[float]] = {}
        for r in rows:
            m[("course.student_evaluation_score", r["course_id"], term)] = r["score_avg"]
            m[("course.evaluation_participation", r["course_id"], term)] = 100 * r["respondents"] / r["enrolled"]
            acc = weighted.setdefault(r["teacher_id"], [0.0, 0.0])
            acc[0] += r["score_avg"] * r["respondents"]
            acc[1] += r["respondents"]
        for tid, (total, n) in weighted.items():
            m[("teacher.student_evaluation_score", tid, term)] = total / n


def _schedules(c: Build, m: Metrics) -> None:
    for k, w, per_week, planned, taught in c.schedule:
        m[("course.schedule_deviation", k, c.weeks[w])] = schedule_deviation(per_week, planned, taught)


def _majors(c: Build, m: Metrics) -> None:
    for mid in c.majors:
        m[("major.enrolled_students", mid, BUDGET_YEAR)] = sum(
            1 for s in c.students.values() if s.major_id == mid and s.status == "在读"
        )
        ft = [t for t in c.staff.values() if t.type == "teacher" and t.fulltime and t.major_id == mid]
        m[("major.dual_qualified_ratio", mid, BUDGET_YEAR)] = 100 * sum(t.dual_qualified for t in ft) / len(ft)
        newest = max((p for p in c.plans if p[0] == mid), key=lambda p: p[1])
        m[("major.practice_hours_ratio", mid, BUDGET_YEAR)] = 100 * newest[3] / newest[2]


def school(c: Build, count_suspended: bool) -> Metrics:
    """School metrics; the student count with or without 休学 students (a reader may take either)."""
    n = sum(1 for s in c.students.values() if count_suspended or s.status == "在读")
    ft = [t for t in c.staff.values() if t.type == "teacher" and t.fulltime]
    money: dict[str, float] = {}
    for _, code, _, _, actual, _ in c.finance:
        if isinstance(actual, float):
            money[code] = money.get(code, 0.0) + actual
    income = money["4001"] + money["4002"]
    y = BUDGET_YEAR
    return {
        ("school.student_teacher_ratio", SCHOOL_ID, y): n / len(ft),
        ("school.postgrad_degree_teacher_ratio", SCHOOL_ID, y): 100
        * sum(t.degree in ("硕士", "博士") for t in ft)
        / len(ft),
        ("school.senior_title_teacher_ratio", SCHOOL_ID, y): 100 * sum(t.title in SENIOR_TITLES for t in ft) / len(ft),
        ("school.fiscal_appropriation_per_student", SCHOOL_ID, y): money["4002"] / n,
        ("school.teaching_investment_ratio", SCHOOL_ID, y): 100 * (money["5003"] + money["5004"]) / income,
        ("school.teacher_training_budget_ratio", SCHOOL_ID, y): 100 * money["5002"] / money["5001"],
        ("school.counselor_student_ratio", SCHOOL_ID, CURRENT_TERM): n
        / len({k.counsellor_id for k in c.classes.values()}),
    }


def verify(planted: tuple[PlantedAnomaly, ...], healthy: tuple[str, ...], m: Metrics) -> int:
    """Raise if the college breaks its promises; return the number of unplanned student-level
    breaches (the realistic noise, kept to a handful)."""
    errors = []
    expected = {(p.rule_id, p.entity_id, p.period) for p in planted}
    for p in planted:
        value = m.get((p.rule_id, p.entity_id, p.period or ""))  # a plant without a period matches nothing
        if value is None:
            errors.append(f"planted {p.rule_id} {p.entity_id} {p.period}: no value")
        elif band(p.rule_id, value) is not p.band or not _margin_ok(p.rule_id, value):
            errors.append(f"planted {p.rule_id} {p.entity_id} {p.period}: {value:.3f} is not clearly {p.band.value}")
    healthy_set = set(healthy)
    noise = 0
    for (metric, entity, period), value in m.items():
        if not band(metric, value).is_breach or (metric, entity, period) in expected:
            continue
        if entity in healthy_set:
            errors.append(f"healthy {entity}: {metric} {period} = {value:.2f} breaches")
        elif metric.startswith("student."):
            noise += 1
        else:
            errors.append(f"unplanned breach {metric} {entity} {period} = {value:.2f}")
    if errors:
        raise RuntimeError("demo college does not hold its planted promises:\n  " + "\n  ".join(errors))
    return noise
