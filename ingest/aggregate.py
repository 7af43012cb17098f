"""Aggregation: raw events and the directory → metric observations, and roll-ups.

Pure functions over typed records. The embedded runner calls them over a batch; the Faust agents
call the same functions over windows. Every observation they make has a deterministic key
(``agg|<metric>|<entity>|<period>``), so recomputing a window replaces rather than duplicates.
The formulas are listed in ``zhengai/demo/SOURCES.md`` ("Metrics computed downstream").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from statistics import fmean

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import (
    AttendanceEvent,
    EntityKind,
    FinanceEvent,
    GradeEvent,
    Level,
    Observation,
)

__all__ = [
    "HOURS_PER_SESSION",
    "SENIOR_TITLES",
    "observation",
    "attendance_metrics",
    "course_attendance",
    "student_attendance",
    "ROLLUP_METRICS",
    "attendance_rollups",
    "grade_metrics",
    "directory_metrics",
    "finance_metrics",
    "teacher_evaluation_metrics",
]

HOURS_PER_SESSION = 2  # one class session = 2 学时
PASS, EXCELLENT = 60.0, 90.0
SENIOR_TITLES = frozenset({"教授", "副教授", "高级工程师", "高级实验师", "正高级工程师", "高级讲师"})
PROFESSOR_TITLES = frozenset({"教授", "副教授"})
POSTGRAD_DEGREES = frozenset({"博士", "硕士"})


def observation(
    level: Level, entity_id: str, metric: str, value: float, period: str, observed_at: datetime
) -> Observation:
    # Made from validated facts (periods, times and ids were checked when they arrived).
    return Observation.trusted(
        level=level,
        entity_id=entity_id,
        metric=metric,
        value=round(float(value), 4),
        period=period,
        observed_at=observed_at,
        source="aggregate",
        key=f"agg|{metric}|{entity_id}|{period}",
    )


@dataclass
class _Tally:
    scheduled: int = 0
    attended: int = 0
    excused: int = 0
    last: datetime | None = None

    def add(self, e: AttendanceEvent) -> None:
        self.scheduled += e.scheduled
        self.attended += e.attended
        self.excused += e.excused
        self.last = e.occurred_at if self.last is None or e.occurred_at > self.last else self.last

    @property
    def rate(self) -> float:
        return 100.0 * self.attended / self.scheduled

    @property
    def at(self) -> datetime:
        assert self.last is not None  # a tally exists once an event was added
        return self.last

    @property
    def unexcused_hours(self) -> int:
        return (self.scheduled - self.attended - self.excused) * HOURS_PER_SESSION


def _latest_attendance(events: Iterable[AttendanceEvent]) -> dict[str, AttendanceEvent]:
    """Later events for the same key replace earlier ones (a corrected tally)."""
    latest: dict[str, AttendanceEvent] = {}
    for e in events:
        prior = latest.get(e.key)
        if prior is None or e.occurred_at >= prior.occurred_at:
            latest[e.key] = e
    return latest


def attendance_metrics(events: Iterable[AttendanceEvent], term: str) -> list[Observation]:
    """Attendance per course-week and per student-week, and unexcused absence hours per student
    for the term to date. Later events for the same key replace earlier ones (a corrected tally)."""
    latest = list(_latest_attendance(events).values())
    return course_attendance(latest) + student_attendance(latest, term)


def course_attendance(events: Iterable[AttendanceEvent]) -> list[Observation]:
    """Attendance per course-week (the course half of :func:`attendance_metrics`)."""
    course_week: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    for e in _latest_attendance(events).values():
        course_week[(e.course_id, e.week)].add(e)
    return [
        observation(Level.course, c, "course.attendance_rate", t.rate, w, t.at) for (c, w), t in course_week.items()
    ]


def student_attendance(events: Iterable[AttendanceEvent], term: str) -> list[Observation]:
    """Attendance per student-week and absence hours per student for the term to date (the
    student half of :func:`attendance_metrics`)."""
    student_week: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    student_term: dict[str, _Tally] = defaultdict(_Tally)
    for e in _latest_attendance(events).values():
        student_week[(e.student_id, e.week)].add(e)
        student_term[e.student_id].add(e)
    out = [
        observation(Level.student, s, "student.attendance_rate", t.rate, w, t.at) for (s, w), t in student_week.items()
    ]
    out += [
        observation(Level.student, s, "student.absence_hours", t.unexcused_hours, term, t.at)
        for s, t in student_term.items()
    ]
    return out


# Roll-ups of students' weekly attendance to the units above them. A class, major or department
# is not a 诊改 level, so the roll-up is a student-level metric on the unit's entity (as the
# rulebook does for student.dropout_rate): the metric says what is measured, the entity where.
ROLLUP_METRICS: dict[EntityKind, str] = {
    EntityKind.class_: "student.class_attendance_rate",
    EntityKind.major: "student.major_attendance_rate",
    EntityKind.department: "student.department_attendance_rate",
}


def attendance_rollups(events: Iterable[AttendanceEvent], directory: Directory) -> list[Observation]:
    """Weekly attendance of every class, major and department: the sessions their students
    attended over the sessions scheduled (weighted by sessions, so a big class weighs more in its
    major than a small one). Students the directory cannot place are left out of the roll-ups."""
    tallies: dict[tuple[str, str, str], _Tally] = defaultdict(_Tally)
    units_of: dict[str, list[tuple[str, str]]] = {}  # a student's (metric, unit) pairs, looked up once
    for e in _latest_attendance(events).values():
        units = units_of.get(e.student_id)
        if units is None:
            units = units_of[e.student_id] = [
                (metric, unit.id)
                for kind, metric in ROLLUP_METRICS.items()
                if (unit := directory.ancestor(e.student_id, kind)) is not None
            ]
        for metric, unit_id in units:
            tallies[(metric, unit_id, e.week)].add(e)
    return [observation(Level.student, unit, metric, t.rate, week, t.at) for (metric, unit, week), t in tallies.items()]


def _grade_point(score: float) -> float:
    return min(4.0, (score - 50.0) / 10.0) if score >= PASS else 0.0


def grade_metrics(events: Iterable[GradeEvent]) -> list[Observation]:
    """Course pass/excellent rates and student failed-course count and GPA, per term."""
    latest: dict[tuple[str, str, str], GradeEvent] = {}
    for e in events:
        k = (e.student_id, e.course_id, e.term)
        if k not in latest or e.occurred_at >= latest[k].occurred_at:
            latest[k] = e
    by_course: dict[tuple[str, str], list[GradeEvent]] = defaultdict(list)
    by_student: dict[tuple[str, str], list[GradeEvent]] = defaultdict(list)
    for e in latest.values():
        by_course[(e.course_id, e.term)].append(e)
        by_student[(e.student_id, e.term)].append(e)
    out: list[Observation] = []
    for (course, term), grades in by_course.items():
        last = max(g.occurred_at for g in grades)
        n = len(grades)
        out.append(
            observation(
                Level.course, course, "course.pass_rate", 100.0 * sum(g.score >= PASS for g in grades) / n, term, last
            )
        )
        out.append(
            observation(
                Level.course,
                course,
                "course.excellent_rate",
                100.0 * sum(g.score >= EXCELLENT for g in grades) / n,
                term,
                last,
            )
        )
    for (student, term), grades in by_student.items():
        last = max(g.occurred_at for g in grades)
        credits = sum(g.credits for g in grades)
        gpa = sum(_grade_point(g.score) * g.credits for g in grades) / credits
        out.append(
            observation(
                Level.student, student, "student.failed_courses", sum(g.score < PASS for g in grades), term, last
            )
        )
        out.append(observation(Level.student, student, "student.gpa", gpa, term, last))
    return out


@dataclass
class _Counts:
    students: int = 0
    fulltime: list = field(default_factory=list)


def _enrolled(entity) -> bool:
    return entity.attributes.get("status", "在读") == "在读"


def directory_metrics(directory: Directory, *, year: str, term: str, as_of: datetime) -> list[Observation]:
    """Metrics that are counts and ratios over the directory itself."""
    out: list[Observation] = []
    school = directory.school()
    students = [s for s in directory.of_kind(EntityKind.student) if _enrolled(s)]
    teachers = list(directory.of_kind(EntityKind.teacher))
    fulltime = [t for t in teachers if t.attributes.get("fulltime", True)]
    courses = list(directory.of_kind(EntityKind.course))

    if school is not None and fulltime:
        n = len(fulltime)
        out.append(observation(Level.school, school.id, "school.student_teacher_ratio", len(students) / n, year, as_of))
        out.append(
            observation(
                Level.school,
                school.id,
                "school.postgrad_degree_teacher_ratio",
                100.0 * sum(t.attributes.get("degree") in POSTGRAD_DEGREES for t in fulltime) / n,
                year,
                as_of,
            )
        )
        out.append(
            observation(
                Level.school,
                school.id,
                "school.senior_title_teacher_ratio",
                100.0 * sum(t.attributes.get("title") in SENIOR_TITLES for t in fulltime) / n,
                year,
                as_of,
            )
        )
    counsellors = {
        c.responsible["counsellor"].id for c in directory.of_kind(EntityKind.class_) if "counsellor" in c.responsible
    }
    if school is not None and counsellors:
        out.append(
            observation(
                Level.school, school.id, "school.counselor_student_ratio", len(students) / len(counsellors), term, as_of
            )
        )

    per_major: dict[str, _Counts] = defaultdict(_Counts)
    for s in students:
        major = directory.ancestor(s.id, EntityKind.major)
        if major is not None:
            per_major[major.id].students += 1
    for t in fulltime:
        major_id = t.attributes.get("major_id")
        if isinstance(major_id, str):
            per_major[major_id].fulltime.append(t)
    for major in directory.of_kind(EntityKind.major):
        counts = per_major.get(major.id, _Counts())
        out.append(observation(Level.major, major.id, "major.enrolled_students", counts.students, year, as_of))
        if counts.fulltime:
            dual = sum(bool(t.attributes.get("dual_qualified")) for t in counts.fulltime)
            out.append(
                observation(
                    Level.major,
                    major.id,
                    "major.dual_qualified_ratio",
                    100.0 * dual / len(counts.fulltime),
                    year,
                    as_of,
                )
            )

    hours: dict[str, float] = defaultdict(float)
    taught: dict[str, int] = defaultdict(int)
    for c in courses:
        teacher = c.responsible.get("course_teacher")
        if teacher is None:
            continue
        hours[teacher.id] += float(c.attributes.get("weekly_hours") or 0)
        taught[teacher.id] += 1
    start_year = int(term[:4])
    for t in teachers:
        if t.id in hours:
            out.append(observation(Level.teacher, t.id, "teacher.weekly_hours", hours[t.id], term, as_of))
        birth = t.attributes.get("birth_year")
        if t.attributes.get("title") in PROFESSOR_TITLES and isinstance(birth, int) and start_year - birth < 55:
            out.append(
                observation(Level.teacher, t.id, "teacher.senior_prof_teaching", taught.get(t.id, 0), term, as_of)
            )
    return out


# Spending lines whose 执行数 against 预算数 is the budget execution (teacher training is part of public funds).
_SPENDING = frozenset({"public_funds", "teaching"})


def finance_metrics(events: Iterable[FinanceEvent], directory: Directory) -> list[Observation]:
    """School-level finance indicators from the 财务 export (executed amounts, 执行数)."""
    sums: dict[tuple[str, str, str], float] = defaultdict(float)
    budgets: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])  # spending lines: budget, actual
    last: dict[tuple[str, str], datetime] = {}
    seen: dict[str, FinanceEvent] = {}
    for e in events:  # the same line delivered twice must not count twice
        seen[e.key] = e
    for e in seen.values():
        sums[(e.school_id, e.year, e.category)] += e.actual
        if e.category in _SPENDING:
            budgets[(e.school_id, e.year)][0] += e.budget
            budgets[(e.school_id, e.year)][1] += e.actual
        k = (e.school_id, e.year)
        last[k] = max(last.get(k, e.occurred_at), e.occurred_at)
    students = sum(1 for s in directory.of_kind(EntityKind.student) if _enrolled(s))
    out: list[Observation] = []
    for (school, year), at in last.items():

        def get(cat: str, school: str = school, year: str = year) -> float:
            return sums.get((school, year, cat), 0.0)

        if get("appropriation") and students:
            out.append(
                observation(
                    Level.school,
                    school,
                    "school.fiscal_appropriation_per_student",
                    get("appropriation") / students,
                    year,
                    at,
                )
            )
        income = get("tuition") + get("appropriation")
        if income:
            out.append(
                observation(
                    Level.school, school, "school.teaching_investment_ratio", 100.0 * get("teaching") / income, year, at
                )
            )
        if get("public_funds"):
            out.append(
                observation(
                    Level.school,
                    school,
                    "school.teacher_training_budget_ratio",
                    100.0 * get("teacher_training") / get("public_funds"),
                    year,
                    at,
                )
            )
        budget, actual = budgets.get((school, year), (0.0, 0.0))
        if budget:  # 预算执行率, judged against the time elapsed by the progress rule (rules.kinds)
            out.append(
                observation(Level.school, school, "school.budget_execution_rate", 100.0 * actual / budget, year, at)
            )
    return out


def teacher_evaluation_metrics(course_scores: Iterable[Observation], directory: Directory) -> list[Observation]:
    """A teacher's evaluation score for a term: the mean over the teacher's course sections."""
    by_teacher: dict[tuple[str, str], list[Observation]] = defaultdict(list)
    for o in course_scores:
        if o.metric != "course.student_evaluation_score":
            continue
        course = directory.get(o.entity_id)
        teacher = course.responsible.get("course_teacher") if course else None
        if teacher is not None:
            by_teacher[(teacher.id, o.period)].append(o)
    return [
        observation(
            Level.teacher,
            t,
            "teacher.student_evaluation_score",
            fmean(float(o.value) for o in obs),
            period,
            max(o.observed_at for o in obs),
        )
        for (t, period), obs in by_teacher.items()
    ]
