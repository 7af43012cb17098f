"""The demo college's structure while it is generated: constants of the demo calendar, the
planted roles, and the college's departments, majors, classes, students, staff and courses.

``college.generate()`` drives it; ``planting`` adds the planted data on top; ``checks`` recomputes
the metrics from it. Everything draws from ``Build.rng(step)``: one seeded stream per step.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from zhengai.demo.api import ApiData
from zhengai.demo.people import (
    CATALOG,
    COMMON_COURSES,
    OFFICES,
    Contacts,
    NameMaker,
    Staff,
    TeacherPlan,
    build_staff,
    build_teachers,
)
from zhengai.ingest.records import Band, Level

__all__ = ["Build", "CollegeSize", "SIZES", "PlantedAnomaly"]

CST = timezone(timedelta(hours=8))
SCHOOL_ID = "SCH"
SCHOOL_NAME = "示范职业技术学院"
CURRENT_TERM = "2026-2027-1"
PREVIOUS_TERM = "2025-2026-2"
BUDGET_YEAR = "2026"
FIRST_MONDAY = date(2026, 9, 7)  # teaching week 1 = 2026-W37
COHORTS = (2024, 2025, 2026)
GRADED_COHORTS = (2024, 2025)  # the 2026 freshmen had no previous term, hence no grades
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CollegeSize:
    departments: int
    majors: int
    courses: int
    teachers: int
    students: int


SIZES = {"small": CollegeSize(2, 4, 40, 30, 400), "default": CollegeSize(8, 40, 600, 300, 8000)}


@dataclass(frozen=True)
class PlantedAnomaly:
    rule_id: str  # = metric id, e.g. "course.attendance_rate"
    level: Level
    entity_id: str
    band: Band  # the band we expect (yellow or red)
    period: str | None  # the period in which it must show; None = any
    responsible_role: str  # "course_teacher" | "counsellor" | "major_leader" | "teacher" | "office:人事处"
    responsible_person_id: str
    note: str  # Chinese: what was planted and why


# The planted majors, fixed by catalog position so that both sizes contain them.
M_HEALTHY, M_SHRINKING, M_TINY, M_PRACTICE = "M0101", "M0102", "M0201", "M0202"
# Planted teacher roles per major (see TeacherPlan). M0102 keeps exactly 7 full-time teachers so
# that 4 dual-qualified ones give 57.1 % — inside the yellow band (50, 60) at any size.
_ROLES = {
    M_HEALTHY: ("leader", "healthy"),
    M_SHRINKING: ("leader", "idle_prof", "train_red"),
    M_TINY: ("leader", "overload", "train_yellow"),
    M_PRACTICE: ("leader", "eval_red"),
}
_TRAINING = {"train_red": 2, "train_yellow": 7}  # teacher.training_days: red < 5, yellow 5–10
_FIXED_STUDENTS = {M_SHRINKING: 135, M_TINY: 60}  # major.enrolled_students: yellow 120–150, red < 120


def iso(dt: datetime, ms: bool = False) -> str:
    return dt.isoformat(timespec="milliseconds" if ms else "seconds")


def stamp(base: datetime, i: int) -> str:
    return iso(base + timedelta(seconds=i))


def week_label(monday: date) -> str:
    y, w, _ = monday.isocalendar()
    return f"{y}-W{w:02d}"


def validate(size: CollegeSize, weeks: int) -> None:
    problems = []
    if not 2 <= size.departments <= len(CATALOG):
        problems.append(f"departments must be 2..{len(CATALOG)}")
    if not 2 * size.departments <= size.majors <= 6 * size.departments:
        problems.append("majors must be 2..6 per department")
    if size.courses < 8 * size.majors or size.courses > 15 * size.majors:
        problems.append("courses must be 8..15 per major")
    if not 7 * size.majors <= size.teachers < size.courses:
        problems.append("teachers must be at least 7 per major and fewer than courses (every teacher teaches)")
    if size.students < 100 * size.majors:
        problems.append("students must be at least 100 per major")
    if not 4 <= weeks <= 18:
        problems.append("weeks must be 4..18 (a dip in week 3 must be able to recover)")
    if problems:
        raise ValueError(f"unsupported college size {size} / weeks={weeks}: " + "; ".join(problems))


@dataclass(slots=True)
class Major:
    id: str
    name: str
    department_id: str
    students: int
    leader_id: str = ""


@dataclass(slots=True)
class Klass:
    id: str
    name: str
    major_id: str
    cohort: int
    counsellor_id: str = ""


@dataclass(slots=True)
class Student:
    id: str
    name: str
    class_id: str
    major_id: str
    cohort: int
    status: str
    id_card: str
    mobile: str
    ability: float
    courses: tuple[str, ...] = ()


@dataclass(slots=True)
class Course:
    id: str
    name: str
    major_id: str
    weekly_hours: int
    teacher_id: str = ""

    @property
    def sessions(self) -> int:  # one session = 2 学时
        return max(1, self.weekly_hours // 2)

    @property
    def credits(self) -> float:
        return {2: 2.0, 4: 4.0, 6: 5.0}[self.weekly_hours]


class Build:
    """The college while it is being generated: the structure here, the planted data in
    ``planting``. Attributes are plain lists and dicts so the checks can recompute metrics."""

    def __init__(self, size: CollegeSize, seed: int, weeks: int, report: Progress) -> None:
        self.size, self.seed, self.report = size, seed, report
        self.weeks = [week_label(FIRST_MONDAY + timedelta(weeks=i)) for i in range(weeks)]
        self.names = NameMaker(self.rng("names"))
        self.contacts = Contacts(self.rng("contacts"))
        self.departments: list[tuple[str, str, str]] = []  # (id, name, dean id)
        self.majors: dict[str, Major] = {}
        self.classes: dict[str, Klass] = {}
        self.students: dict[str, Student] = {}
        self.staff: dict[str, Staff] = {}
        self.roles: dict[tuple[str, str], str] = {}
        self.offices: dict[str, str] = {}  # office name → head id
        self.quality_office = ""
        self.courses: dict[str, Course] = {}
        self.course_counts: dict[str, int] = {}  # major → number of courses
        self.plans: list[tuple[str, int, int, int, str]] = []  # teaching plans
        # Teaching progress (授课计划 vs. 教学日志), one row per course × week:
        # (course, week index, sessions per week, planned sessions to date, taught sessions to date).
        self.schedule: list[tuple[str, int, int, int, int]] = []
        # Filled by planting: grades[(student, course)] = score; absences[(student, course, week idx)]
        # = (unexcused, excused); sections[term] = [section dict]; finance rows.
        self.grades: dict[tuple[str, str], int] = {}
        self.grade_history: list[tuple[str, str, str, int]] = []  # earlier terms (demo/kinds.py)
        self.absences: dict[tuple[str, str, int], tuple[int, int]] = {}
        self.sections: dict[str, list[dict]] = {}
        self.finance: list[tuple[str, str, str, float, float | str, str]] = []
        self.special: dict[str, str] = {}  # planted role (SA…SE, HS, HT, HC, CA…CG, TE) → entity id
        self.n_current: dict[str, int] = {}  # course → students enrolled this term
        self.n_graded: dict[str, int] = {}  # course → students graded last term
        self.dip_students = 0
        self.sa_start = 0

    def rng(self, step: str) -> random.Random:
        # One stream per step: changing how one step draws leaves the others' data unchanged.
        return random.Random(f"{self.seed}:{step}")

    # -- structure: departments, majors, classes, students, staff, courses ---------------------

    def structure(self) -> None:
        size = self.size
        rng = self.rng("structure")
        per_dept = [
            size.majors // size.departments + (i < size.majors % size.departments) for i in range(size.departments)
        ]
        major_ids: list[tuple[str, str, str]] = []
        for d, n in enumerate(per_dept, start=1):
            dept_name, major_names, _ = CATALOG[d - 1]
            self.departments.append((f"D{d:02d}", dept_name, ""))
            major_ids += [(f"M{d:02d}{m:02d}", major_names[m - 1], f"D{d:02d}") for m in range(1, n + 1)]
        for mid, name, did in major_ids:
            self.majors[mid] = Major(mid, name, did, 0)
        self._allocate_students()
        self._make_classes_and_students(rng)
        self._make_staff(rng)
        self._make_courses(rng)
        self._enroll(rng)

    def _allocate_students(self) -> None:
        ids = list(self.majors)
        remaining = self.size.students - sum(_FIXED_STUDENTS.values())
        rest = [m for m in ids if m not in _FIXED_STUDENTS]
        healthy = max(170, remaining // len(rest))  # comfortably ≥ 150 (预警值) even in the small college
        others = [m for m in rest if m != M_HEALTHY]
        left = remaining - healthy
        for i, m in enumerate(others):
            self.majors[m].students = left // len(others) + (i < left % len(others))
        self.majors[M_HEALTHY].students = healthy
        for m, n in _FIXED_STUDENTS.items():
            self.majors[m].students = n
        # A count on a threshold (120, 150) would be ambiguous: move two students to the healthy major.
        for m in others:
            if any(abs(self.majors[m].students - t) < 2 for t in (120, 150)):
                self.majors[m].students -= 2
                self.majors[M_HEALTHY].students += 2

    def _make_classes_and_students(self, rng: random.Random) -> None:
        birth_of = {2024: 2006, 2025: 2007, 2026: 2008}
        for major in self.majors.values():
            for ci, cohort in enumerate(COHORTS):
                n = major.students // 3 + (ci < major.students % 3)
                n_classes = max(1, math.ceil(n / 45))
                seq = 0
                for k in range(1, n_classes + 1):
                    kid = f"K{major.id[1:]}{cohort % 100:02d}{k}"
                    self.classes[kid] = Klass(kid, f"{major.name}{cohort % 100:02d}-{k}班", major.id, cohort)
                    for _ in range(n // n_classes + (k <= n % n_classes)):
                        seq += 1
                        sid = f"{cohort % 100:02d}{major.id[1:]}{seq:04d}"
                        birth = birth_of[cohort] - (rng.random() < 0.2)
                        self.students[sid] = Student(
                            sid,
                            self.names(),
                            kid,
                            major.id,
                            cohort,
                            "在读",
                            self.contacts.id_card(birth),
                            self.contacts.mobile(),
                            rng.uniform(76.0, 88.0),
                        )
        # 休学 (suspended) students: ~0.5 %, only in majors well above 150 (预警值), so no head
        # count moves into or near a band boundary.
        pool = [
            s
            for s in self.students.values()
            if s.major_id not in _FIXED_STUDENTS and self.majors[s.major_id].students >= 160
        ]
        for s in rng.sample(pool, round(0.005 * len(self.students))):
            s.status = "休学"

    def _make_staff(self, rng: random.Random) -> None:
        size, updated = self.size, "2026-09-01T08:00:00+08:00"
        # Full-time teachers: the student-teacher ratio must land in the red (> 18) at every size —
        # a planted school anomaly — so there are at most students/21 of them; the rest are
        # 企业兼职 (part-time) teachers, who teach but do not count for the ratio.
        n_ft = min(size.teachers - math.ceil(0.08 * size.teachers), size.students // 21)
        ids = list(self.majors)
        others = [m for m in ids if m != M_SHRINKING]
        ft = {M_SHRINKING: 7}
        for i, m in enumerate(others):
            ft[m] = (n_ft - 7) // len(others) + (i < (n_ft - 7) % len(others))
        if min(ft.values()) < 3:
            raise ValueError("too few full-time teachers: each major needs at least 3")
        per_major = size.courses // len(ids)
        self.course_counts = {m: per_major + (i < size.courses % len(ids)) for i, m in enumerate(ids)}
        # Part-time teachers go where the teaching load per free teacher is highest.
        fixed_courses = {"overload": 4, "healthy": 2, "eval_red": 1, "idle_prof": 0}
        load = {}
        for m in ids:
            roles = _ROLES.get(m, ("leader",))
            free_courses = self.course_counts[m] - sum(fixed_courses.get(r, 0) for r in roles)
            load[m] = [free_courses, ft[m] - sum(r in fixed_courses for r in roles)]
        pt = dict.fromkeys(ids, 0)
        for _ in range(size.teachers - n_ft):
            m = max(ids, key=lambda k: (load[k][0] / (load[k][1] + 1), -ids.index(k)))
            pt[m] += 1
            load[m][1] += 1
        plans = [
            TeacherPlan(
                m,
                self.majors[m].department_id,
                ft[m],
                pt[m],
                _ROLES.get(m, ("leader",)),
                dual=4 if m == M_SHRINKING else None,
                training=tuple((r, _TRAINING[r]) for r in _ROLES.get(m, ()) if r in _TRAINING),
            )
            for m in ids
        ]
        teachers, self.roles = build_teachers(self.rng("teachers"), plans, self.names, self.contacts, updated)
        self.staff = {t.id: t for t in teachers}
        for m in ids:
            self.majors[m].leader_id = self.roles[(m, "leader")]
        # Deans, counsellors (one per ~4–5 classes: ~1:185 students), office heads, quality office.
        for i, (did, name, _) in enumerate(self.departments):
            dean = build_staff(rng, "dean", f"DN{i + 1:02d}", did, self.names, self.contacts, updated)
            self.staff[dean.id] = dean
            self.departments[i] = (did, name, dean.id)
        classes = sorted(self.classes)
        n_cs = math.ceil(len(self.students) / 186)
        for i in range(n_cs):
            block = classes[i * len(classes) // n_cs : (i + 1) * len(classes) // n_cs]
            dept = self.majors[self.classes[block[0]].major_id].department_id
            cs = build_staff(rng, "counsellor", f"FD{i + 1:03d}", dept, self.names, self.contacts, updated)
            self.staff[cs.id] = cs
            for kid in block:
                self.classes[kid].counsellor_id = cs.id
        for i, office in enumerate(OFFICES, start=1):
            head = build_staff(rng, "office", f"OF{i:02d}", None, self.names, self.contacts, updated, office)
            self.staff[head.id] = head
            self.offices[office] = head.id
        qa = build_staff(rng, "office", "QA01", None, self.names, self.contacts, updated, "质量办")
        self.staff[qa.id] = qa
        self.quality_office = qa.id

    def _make_courses(self, rng: random.Random) -> None:
        seq = 0
        for major in self.majors.values():
            d = int(major.department_id[1:])
            pool = list(CATALOG[d - 1][2])
            rng.shuffle(pool)
            names = (list(COMMON_COURSES[:3]) + pool)[: self.course_counts[major.id]]
            mine = []
            for name in names:
                seq += 1
                mine.append(Course(f"C{seq:04d}", name, major.id, rng.choice((2, 4, 4, 4, 6))))
            self.courses.update((c.id, c) for c in mine)
            self._assign_teachers(major.id, mine)

    def _assign_teachers(self, major_id: str, courses: list[Course]) -> None:
        teachers = [t.id for t in self.staff.values() if t.type == "teacher" and t.major_id == major_id]
        role = {tid: r for (m, r), tid in self.roles.items() if m == major_id}
        free = list(courses)
        # Fixed loads for planted teachers: 4 × 6 h = 24 h (red: > 20); the healthy teacher 2 × 4 h;
        # the low-evaluation teacher 1 × 4 h (so the teacher's score is that one course's);
        # the idle 教授 none (teacher.senior_prof_teaching = 0, red).
        for r, n, hours in (("overload", 4, 6), ("healthy", 2, 4), ("eval_red", 1, 4)):
            tid = self.roles.get((major_id, r))
            if not tid:
                continue
            for _ in range(n):
                c = free.pop()
                c.teacher_id, c.weekly_hours = tid, hours
        pool = [t for t in teachers if role.get(t) not in ("overload", "healthy", "eval_red", "idle_prof")]
        load = dict.fromkeys(pool, 0)
        count = dict.fromkeys(pool, 0)
        # Longest first, each to the teacher with no course yet, else the least loaded: every
        # teacher teaches (教授/副教授 under 55 must) and nobody else nears 18 h.
        for c in sorted(free, key=lambda c: (-c.weekly_hours, c.id)):
            teacher = min(pool, key=lambda t: (count[t] > 0, load[t] + c.weekly_hours, t))
            c.teacher_id = teacher
            load[teacher] += c.weekly_hours
            count[teacher] += 1
        if not pool or min(count.values()) == 0 or max(load.values()) > 16:
            raise ValueError(
                f"{major_id}: courses and teachers do not balance ({len(courses)} courses, {len(teachers)} teachers)"
            )

    def _enroll(self, rng: random.Random) -> None:
        """5–6 courses of their own major per student, dealt round-robin so sections stay even."""
        by_major: dict[str, list[str]] = {}
        for c in self.courses.values():
            by_major.setdefault(c.major_id, []).append(c.id)
        for major_id, course_ids in by_major.items():
            cycle = sorted(course_ids)
            rng.shuffle(cycle)
            pointer = 0
            for s in (s for s in self.students.values() if s.major_id == major_id):
                n = min(len(cycle), rng.choice((5, 6)))
                s.courses = tuple(sorted(cycle[(pointer + i) % len(cycle)] for i in range(n)))
                pointer += n

    # -- views the checks and writers share ----------------------------------------------------

    def current_students(self) -> list[Student]:
        return [s for s in self.students.values() if s.status == "在读"]

    def graded_students(self) -> list[Student]:
        return [s for s in self.students.values() if s.cohort in GRADED_COHORTS]

    def api_data(self) -> ApiData:
        def person(pid: str) -> dict:
            return self.staff[pid].person()

        school = {
            "id": SCHOOL_ID,
            "name": SCHOOL_NAME,
            "offices": [{"name": name, "head": person(pid)} for name, pid in self.offices.items()],
            "quality_office": person(self.quality_office),
        }
        return ApiData(
            school=school,
            staff=tuple(s.api_item() for s in self.staff.values()),
            sections={term: tuple(rows) for term, rows in self.sections.items()},
        )
