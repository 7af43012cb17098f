"""The data of the demo college on top of its structure: grades, attendance, evaluations, teaching
plans, teaching progress and finance — mostly healthy, with the planted anomalies and healthy references.

Every planted value is set so that it lies well inside its band; ``checks.verify`` proves it on
the generated rows. ``anomalies()`` lists them with the person a warning must reach.
"""

from __future__ import annotations

import math
from collections.abc import Set as AbstractSet
from datetime import datetime, time, timedelta

from zhengai.demo.kinds import plant_kinds
from zhengai.demo.people import COMMON_COURSES
from zhengai.demo.structure import (
    BUDGET_YEAR,
    CST,
    CURRENT_TERM,
    FIRST_MONDAY,
    M_HEALTHY,
    M_PRACTICE,
    M_SHRINKING,
    M_TINY,
    PREVIOUS_TERM,
    SCHOOL_ID,
    Build,
    PlantedAnomaly,
    stamp,
)
from zhengai.ingest.records import Band, Level

__all__ = ["plant", "anomalies", "gpa_points", "schedule_deviation"]

DIP_WEEK = 2  # index of the week in which one course's attendance dips (and recovers after)
_SPECIAL_STUDENTS = {  # key → (major, cohort)
    "SA": (M_SHRINKING, 2025),  # chronic truant: weekly attendance and absence hours red
    "SB": (M_SHRINKING, 2024),  # 7 unexcused sessions: absence hours yellow
    "SC": (M_SHRINKING, 2024),  # 5 of 6 courses failed: failed courses and GPA red
    "SD": (M_TINY, 2024),  # 2 courses failed: failed courses yellow
    "SE": (M_PRACTICE, 2025),  # every score 66–69: GPA yellow
    "HS": (M_HEALTHY, 2025),  # the healthy reference student
}
_PLANTED_COURSES = ("CA", "CB", "CC", "CD", "CE", "CF")


def gpa_points(score: float) -> float:
    return min(4.0, (score - 50) / 10) if score >= 60 else 0.0


def plant(c: Build) -> None:
    _pick_students(c)
    _pick_courses(c)
    c.report("生成成绩", 0, 1)
    _grades(c)
    c.report("生成成绩", 1, 1)
    _absences(c)
    _sections(c)
    _teaching_plans(c)
    _schedules(c)
    _finance(c)
    plant_kinds(c)  # one anomaly per rule kind (trend, progress, composite, control)


def _pick_students(c: Build) -> None:
    rng = c.rng("planted-students")
    taken: set[str] = set()
    for key, (major, cohort) in _SPECIAL_STUDENTS.items():
        pool = sorted(
            s.id
            for s in c.students.values()
            if s.major_id == major and s.cohort == cohort and s.status == "在读" and s.id not in taken
        )
        c.special[key] = rng.choice(pool)
        taken.add(c.special[key])
    c.special["HT"] = c.roles[(M_HEALTHY, "healthy")]
    ht_courses = sorted(k.id for k in c.courses.values() if k.teacher_id == c.special["HT"])
    c.special["HC"] = ht_courses[0]
    # Enrollment adjustments: SC and SD need six graded courses; the healthy student takes the
    # healthy course (its attendance and grades then feed it).
    for key in ("SC", "SD"):
        s = c.students[c.special[key]]
        extra = [k for k in sorted(c.courses) if c.courses[k].major_id == s.major_id and k not in s.courses]
        s.courses = tuple(sorted(s.courses + tuple(extra[: 6 - len(s.courses)])))
    hs = c.students[c.special["HS"]]
    if c.special["HC"] not in hs.courses:
        hs.courses = tuple(sorted(hs.courses[:-1] + (c.special["HC"],)))


def _counts(c: Build) -> tuple[dict[str, int], dict[str, int]]:
    current = dict.fromkeys(c.courses, 0)
    graded = dict.fromkeys(c.courses, 0)
    for s in c.students.values():
        for k in s.courses:
            current[k] += s.status == "在读"
            graded[k] += s.cohort in (2024, 2025)
    return current, graded


def _pick_courses(c: Build) -> None:
    special_teachers = {tid for (_, role), tid in c.roles.items() if role != "leader"}
    c.n_current, c.n_graded = _counts(c)

    def plain(major: str, exclude: AbstractSet[str] = frozenset()) -> list[str]:
        return sorted(
            k.id
            for k in c.courses.values()
            if k.major_id == major and k.teacher_id not in special_teachers and k.id not in exclude
        )

    def biggest(ids: list[str], counts: dict[str, int]) -> str:
        return max(ids, key=lambda k: (counts[k], k))

    sp = c.special
    sp["CA"] = biggest(plain(M_SHRINKING), c.n_current)  # weekly attendance dips in one week
    sp["CB"] = biggest(plain(M_SHRINKING, {sp["CA"]}), c.n_graded)  # pass rate red
    sp["CC"] = biggest(plain(M_HEALTHY), c.n_graded)  # excellent rate too high: yellow
    # Evaluation yellow on a course whose teacher has other, well-rated courses: the course warns,
    # the teacher (respondent-weighted over all sections) does not.
    per_teacher: dict[str, int] = {}
    for k in c.courses.values():
        per_teacher[k.teacher_id] = per_teacher.get(k.teacher_id, 0) + 1
    cc_teacher = c.courses[sp["CC"]].teacher_id
    options = [k for k in plain(M_HEALTHY, {sp["CC"]}) if per_teacher[c.courses[k].teacher_id] >= 2]
    options.sort(key=lambda k: (c.courses[k].teacher_id == cc_teacher, k))
    if not options:
        raise ValueError(f"{M_HEALTHY}: no teacher with two courses for the evaluation anomaly")
    sp["CD"] = options[0]
    sp["CE"] = biggest(plain(M_TINY), c.n_current)  # evaluation participation yellow
    sp["TE"] = c.roles[(M_PRACTICE, "eval_red")]
    sp["CF"] = next(k.id for k in c.courses.values() if k.teacher_id == sp["TE"])  # its one course
    # Teaching progress falls behind in the last two weeks (see _schedules): a professional
    # (实训) course of two or more sessions a week, so the lag can pass one week (yellow) in the
    # last week alone.
    lagging = [
        k
        for k in plain(M_PRACTICE, {sp["CF"]})
        if c.courses[k].sessions >= 2 and c.courses[k].name not in COMMON_COURSES
    ]
    if not lagging:
        raise ValueError(f"{M_PRACTICE}: no course of 4+ weekly hours for the schedule anomaly")
    sp["CG"] = min(lagging, key=lambda k: (c.courses[k].sessions != 2, k))


def _grades(c: Build) -> None:
    """Previous-term grades. Each course's excellent share is a quota (so every course lands in
    the normal 10–35 % range), scores otherwise follow the student's ability; a few random
    failures; then GPAs below 2.3 are lifted so random students never warn."""
    rng = c.rng("grades")
    sp = c.special
    graded = sorted(c.graded_students(), key=lambda s: s.id)
    members: dict[str, list[str]] = {k: [] for k in c.courses}
    for student in graded:
        for k in student.courses:
            members[k].append(student.id)
    fixed: dict[tuple[str, str], int] = {}
    sc = c.students[sp["SC"]].courses
    for i, k in enumerate(sc):
        fixed[(sp["SC"], k)] = rng.randint(30, 55) if i < 5 else 64
    for i, k in enumerate(c.students[sp["SD"]].courses):
        fixed[(sp["SD"], k)] = rng.randint(46, 56) if i < 2 else rng.randint(86, 89)
    for k in c.students[sp["SE"]].courses:
        fixed[(sp["SE"], k)] = rng.randint(66, 69)
    for k in c.students[sp["HS"]].courses:
        fixed[(sp["HS"], k)] = rng.randint(84, 89)
    specials = {sp[k] for k in _SPECIAL_STUDENTS}
    # CB: 30 % fail. The failers are able students (their other courses carry their GPA).
    cb = [s for s in members[sp["CB"]] if s not in specials]
    able = [s for s in cb if c.students[s].ability >= 80] or cb
    n_fail = round(0.30 * len(members[sp["CB"]]))
    for s in rng.sample(able, min(n_fail, len(able))):
        fixed[(s, sp["CB"])] = rng.randint(35, 57)
    failures: dict[str, int] = {}
    for (s, _), score in fixed.items():
        failures[s] = failures.get(s, 0) + (score < 60)
    no_random_failure = {sp[k] for k in _PLANTED_COURSES} | {
        k.id for k in c.courses.values() if k.teacher_id == sp["HT"]
    }
    for k in sorted(c.courses):
        group = members[k]
        if not group:
            continue
        n = len(group)
        if k == sp["CC"]:
            quota = round(0.40 * n)  # 40 %: outside 10–35 %, inside 5–45 % → yellow
        else:
            quota = min(max(round(n * rng.uniform(0.18, 0.26)), math.ceil(0.14 * n)), math.floor(0.30 * n))
        free = [s for s in group if (s, k) not in fixed]
        quota -= sum(fixed[(s, k)] >= 90 for s in group if (s, k) in fixed)
        perf = {s: c.students[s].ability + rng.uniform(-5, 5) for s in free}
        ranked = sorted(free, key=lambda s: (-perf[s], s))
        for i, s in enumerate(ranked):
            c.grades[(s, k)] = rng.randint(90, 97) if i < quota else min(89, max(62, round(perf[s])))
        for s in group:
            if (s, k) in fixed:
                c.grades[(s, k)] = fixed[(s, k)]
        fails = sum(c.grades[(s, k)] < 60 for s in group)
        if k not in no_random_failure and rng.random() < 0.3 and (fails + 1) / n <= 0.06:
            pool = [
                s
                for s in ranked[max(quota, 0) :]
                if not failures.get(s) and s not in specials and c.students[s].ability >= 80
            ]
            if pool:
                s = rng.choice(pool)
                c.grades[(s, k)] = rng.randint(42, 58)
                failures[s] = 1
    # Lift weak GPAs (never past 89, so course excellent rates stay as set).
    for student in graded:
        if student.id in (sp["SC"], sp["SD"], sp["SE"]):
            continue
        while student_gpa(c, student.id) < 2.3:
            passing = [k for k in student.courses if 60 <= c.grades[(student.id, k)] < 89]
            if not passing:
                break
            k = min(passing, key=lambda k: (c.grades[(student.id, k)], k))
            c.grades[(student.id, k)] = min(89, c.grades[(student.id, k)] + 3)


def student_gpa(c: Build, sid: str) -> float:
    courses = c.students[sid].courses
    credits = sum(c.courses[k].credits for k in courses)
    return sum(gpa_points(c.grades[(sid, k)]) * c.courses[k].credits for k in courses) / credits


def _absences(c: Build) -> None:
    """Unexcused/excused missed sessions per (student, course, week index); all else attended.

    A student has ~11 sessions a week, so one missed session already makes that student's week
    yellow (10/11 < 95 %): random absences are therefore few (a handful of student-week
    warnings), and none may push a course-week below 96 %.
    """
    rng = c.rng("attendance")
    sp = c.special
    weeks = len(c.weeks)
    size = {k: c.n_current[k] * c.courses[k].sessions for k in c.courses}  # sessions per course-week
    missed: dict[tuple[str, int], int] = {}

    def room(k: str, w: int) -> bool:
        return missed.get((k, w), 0) + 1 <= math.floor(size[k] * 0.04)

    def miss(s: str, k: str, w: int, n: int = 1, excused: bool = False) -> None:
        u, e = c.absences.get((s, k, w), (0, 0))
        c.absences[(s, k, w)] = (u, e + n) if excused else (u + n, e)
        missed[(k, w)] = missed.get((k, w), 0) + n

    # CA: in the dip week, whole students skip the course until ~8 % of its sessions are missed:
    # 92 % is yellow (90–95); every other week is full.
    ca = c.courses[sp["CA"]]
    specials = {sp[k] for k in _SPECIAL_STUDENTS}
    skippers = [s.id for s in c.current_students() if sp["CA"] in s.courses and s.id not in specials]
    left = round(size[ca.id] * 0.08)
    for s in rng.sample(skippers, len(skippers)):
        if left <= 0:
            break
        n = min(ca.sessions, left)
        miss(s, ca.id, DIP_WEEK, n)
        left -= n
    c.dip_students = sum(1 for (s, k, w) in c.absences if k == ca.id and w == DIP_WEEK)

    def skip(sid: str, w: int, wanted: int) -> int:
        """Miss one session of as many of the student's courses as the courses can absorb."""
        done = 0
        courses = sorted(c.students[sid].courses, key=lambda k: (-size[k], k))
        for k in courses:
            if done == wanted:
                break
            if (k, w) != (ca.id, DIP_WEEK) and room(k, w):
                miss(sid, k, w)
                done += 1
        return done

    # SA skips ~half of the week's sessions from SA_START on; SB skips 4 + 3 sessions (14 学时).
    sa = c.students[sp["SA"]]
    c.sa_start = max(1, weeks - 5)
    for w in range(c.sa_start, weeks):
        skip(sa.id, w, math.ceil(0.45 * sum(c.courses[k].sessions for k in sa.courses)))
    for w, n in ((1, 4), (3, 3)):
        if skip(sp["SB"], w, n) != n:
            raise ValueError("student SB's absences do not fit into its courses")
    # Noise: a handful of single missed sessions (40 % of them 请假, i.e. excused).
    quiet = {sp[k] for k in _PLANTED_COURSES} | {k.id for k in c.courses.values() if k.teacher_id == sp["HT"]}
    pool = sorted(s.id for s in c.current_students() if s.id not in specials)
    wanted, used = max(2, round(len(pool) * weeks / 4000)), set[tuple[str, int]]()
    for _ in range(wanted * 50):
        if len(used) == wanted:
            break
        s = rng.choice(pool)
        w = rng.randrange(weeks)
        k = rng.choice(c.students[s].courses)
        if k in quiet or (s, w) in used or not room(k, w):
            continue
        used.add((s, w))
        miss(s, k, w, excused=rng.random() < 0.4)


def _sections(c: Build) -> None:
    """Evaluation sections (评教) for both terms: scores 87–97, participation 92–99 %."""
    rng = c.rng("evaluation")
    sp = c.special
    ht_courses = {k.id for k in c.courses.values() if k.teacher_id == sp["HT"]}
    cd_teacher = c.courses[sp["CD"]].teacher_id
    last_friday = FIRST_MONDAY + timedelta(weeks=len(c.weeks) - 1, days=4)
    posted = {
        CURRENT_TERM: datetime.combine(last_friday, time(16, 0), CST),  # 期中评教 just closed
        PREVIOUS_TERM: datetime(2026, 7, 6, 12, 0, tzinfo=CST),
    }
    for term, counts in ((PREVIOUS_TERM, c.n_graded), (CURRENT_TERM, c.n_current)):
        rows: list[dict] = []
        for k in sorted(c.courses):
            n = counts[k]
            if not n:
                continue
            score = round(rng.uniform(87.0, 97.0), 1)
            respondents = n - math.floor(n * rng.uniform(0.01, 0.08))
            if k in ht_courses:  # the healthy teacher is well rated in both terms
                score = round(rng.uniform(94.0, 96.5), 1)
                respondents = n - math.floor(n * 0.03)
            elif term == CURRENT_TERM:
                if k == sp["CD"]:
                    score = 83.0  # yellow: 80–85
                elif c.courses[k].teacher_id == cd_teacher:
                    score = round(rng.uniform(95.0, 97.0), 1)  # keeps the teacher's weighted score normal
                elif k == sp["CF"]:
                    score = 76.0  # red: < 80, the teacher's only course
                if k == sp["CE"]:
                    respondents = round(n * 0.86)  # yellow: 80–90 %
            rows.append(
                {
                    "course_id": k,
                    "teacher_id": c.courses[k].teacher_id,
                    "term": term,
                    "score_avg": score,
                    "respondents": respondents,
                    "enrolled": n,
                    "updated_at": stamp(posted[term], len(rows)),
                }
            )
        c.sections[term] = rows


def _teaching_plans(c: Build) -> None:
    """One plan per major and cohort; the practice share is the major's in every cohort, so
    "the newest plan" means the same band whichever plan a reader takes."""
    rng = c.rng("plans")
    fixed = {M_TINY: 0.45, M_PRACTICE: 0.51, M_HEALTHY: 0.58}  # red < 50, yellow 50–52, normal
    for i, major in enumerate(c.majors):
        share = fixed.get(major) or rng.uniform(0.54, 0.62)
        for cohort in (2024, 2025, 2026):
            total = rng.randrange(2480, 2800, 8)
            jitter = 0.0 if major in fixed else rng.uniform(-0.005, 0.005)
            c.plans.append(
                (major, cohort, total, round(total * (share + jitter)), f"{cohort}-06-{10 + i % 15:02d}T15:00:00+08:00")
            )


def schedule_lag(c: Build) -> tuple[int, int]:
    """Sessions the planted course CG is behind its 授课计划 at the end of the second-to-last and
    the last week: half a week's sessions, then one whole week's more (e.g. 2 sessions a week:
    1 → 0.5 week, 3 → 1.5 weeks — normal, then yellow, never on a threshold)."""
    n = c.courses[c.special["CG"]].sessions
    return n // 2, n // 2 + n


def _schedules(c: Build) -> None:
    """授课计划 vs. 教学日志: each course's plan is its weekly sessions every week, and the log
    keeps up with it (deviation 0). A few courses run a session ahead for a while (超前记 0).
    CG falls behind in the last two weeks: its 实训室 equipment broke down, one session of the
    second-to-last week and the whole last week went to review instead of the plan's content —
    the sessions were held (attendance is unaffected), the plan did not advance."""
    rng = c.rng("schedules")
    last = len(c.weeks) - 1
    behind = dict(zip((last - 1, last), schedule_lag(c), strict=True))
    for k in sorted(c.courses):
        n = c.courses[k].sessions
        ahead_from = rng.randrange(1, len(c.weeks)) if rng.random() < 0.1 and k != c.special["CG"] else None
        for w in range(len(c.weeks)):
            planned = n * (w + 1)
            taught = planned
            if k == c.special["CG"]:
                taught -= behind.get(w, 0)
            elif ahead_from is not None and w >= ahead_from:
                taught += 1
            c.schedule.append((k, w, n, planned, taught))


def schedule_deviation(sessions_per_week: float, planned: float, taught: float) -> float:
    """Weeks behind the plan, one decimal; ahead counts as 0 (SOURCES.md)."""
    return round(max(0.0, planned - taught) / sessions_per_week, 1)


def _finance(c: Build) -> None:
    """The 2026 budget execution. Teaching spending is 22 % of income (red: < 25 %), teacher
    training 5.5 % of public funds (yellow: 5–6 %), appropriation ~14,250 元 per student (normal)."""
    rng = c.rng("finance")
    n = len(c.students)

    def budget(actual: float) -> float:
        return math.ceil(actual / rng.uniform(0.86, 0.95) / 1000) * 1000

    tuition = round(n * 5600 * rng.uniform(0.97, 0.99), 2)
    appropriation = round(n * rng.uniform(14150, 14350), 2)
    public = round(n * rng.uniform(2500, 2800), 2)
    training = round(public * 0.055, 2)
    teaching = (tuition + appropriation) * 0.22
    daily = round(teaching * 0.6, 2)
    practice = round(teaching - daily, 2)
    y = BUDGET_YEAR
    c.finance = [
        (y, "4001", "学费收入", float(n * 5600), tuition, "秋季学期学费已入账"),
        (y, "4002", "经常性财政拨款", budget(appropriation), appropriation, "生均拨款"),
        (y, "5001", "年度公用经费", budget(public), public, ""),
        (y, "5002", "教师培训经费", budget(training), training, "含国培、省培项目"),
        (y, "5003", "日常教学经费", budget(daily), daily, ""),
        (y, "5004", "实践教学经费", budget(practice), practice, "实训基地运行"),
        # The one malformed line: its 执行数 is not a number, so a connector must dead-letter it.
        (y, "5004", "实践教学经费（实训耗材追加）", 1200000.0, "待核实", "追加预算执行数待财务核对"),
        (y, "5009", "基本建设支出", 38000000.0, round(38000000 * rng.uniform(0.5, 0.7), 2), "实训楼二期"),
    ]


def anomalies(c: Build, m: dict[tuple[str, str, str], float]) -> tuple[PlantedAnomaly, ...]:
    """The planted anomalies with their measured values and responsible people."""
    sp, out = c.special, []
    name = lambda pid: c.staff[pid].name  # noqa: E731
    year, now, before = BUDGET_YEAR, CURRENT_TERM, PREVIOUS_TERM

    def add(metric: str, entity: str, band: Band, period: str, role: str, person: str, note: str) -> None:
        level = Level(metric.split(".")[0])
        out.append(PlantedAnomaly(metric, level, entity, band, period, role, person, note))

    def school(metric: str, band: Band, office: str, note: str) -> None:
        add(metric, SCHOOL_ID, band, year, f"office:{office}", c.offices[office], note)

    ft = sum(1 for t in c.staff.values() if t.type == "teacher" and t.fulltime)
    v = lambda metric, entity, period: m[(metric, entity, period)]  # noqa: E731
    school(
        "school.student_teacher_ratio",
        Band.red,
        "人事处",
        f"生师比 {v('school.student_teacher_ratio', SCHOOL_ID, year):.1f}:1（在校生 {len(c.students)} 人、"
        f"专任教师 {ft} 人），高于标准值 18:1；企业兼职教师不计入",
    )
    school(
        "school.teaching_investment_ratio",
        Band.red,
        "财务处",
        f"教学经费仅占学费与财政拨款收入的 {v('school.teaching_investment_ratio', SCHOOL_ID, year):.1f}%，"
        "低于标准值 25%；另有一行实践教学经费执行数“待核实”，应进入死信队列",
    )
    school(
        "school.teacher_training_budget_ratio",
        Band.yellow,
        "人事处",
        f"教师培训经费占年度公用经费 {v('school.teacher_training_budget_ratio', SCHOOL_ID, year):.2f}%，"
        "介于标准值 5% 与预警值 6% 之间",
    )

    def major(metric: str, mid: str, band: Band, note: str) -> None:
        add(metric, mid, band, year, "major_leader", c.majors[mid].leader_id, f"{c.majors[mid].name}：{note}")

    for mid in c.majors:
        enrolled = v("major.enrolled_students", mid, year)
        if mid == M_SHRINKING:
            major(
                "major.enrolled_students",
                mid,
                Band.yellow,
                f"近三年招生萎缩，在校生 {enrolled:.0f} 人，低于预警值 150 人",
            )
        elif enrolled < 150:  # M0201 by design; in a small college also majors that got few students
            band = Band.red if enrolled < 120 else Band.yellow
            why = "招生严重不足" if mid == M_TINY else "示范学院规模小，该专业在校生不足"
            major("major.enrolled_students", mid, band, f"{why}，在校生仅 {enrolled:.0f} 人")
    major(
        "major.dual_qualified_ratio",
        M_SHRINKING,
        Band.yellow,
        f"专任教师 7 人中双师素质仅 4 人（{v('major.dual_qualified_ratio', M_SHRINKING, year):.1f}%），低于预警值 60%",
    )
    major(
        "major.practice_hours_ratio",
        M_TINY,
        Band.red,
        f"人才培养方案实践学时占比 {v('major.practice_hours_ratio', M_TINY, year):.1f}%，低于标准值 50%",
    )
    major(
        "major.practice_hours_ratio",
        M_PRACTICE,
        Band.yellow,
        f"人才培养方案实践学时占比 {v('major.practice_hours_ratio', M_PRACTICE, year):.1f}%，介于 50% 与 52% 之间",
    )

    def course(metric: str, key: str, band: Band, period: str, note: str) -> None:
        k = c.courses[sp[key]]
        add(metric, k.id, band, period, "course_teacher", k.teacher_id, f"{k.name}（{k.id}）：{note}")

    dip = c.weeks[DIP_WEEK]
    course(
        "course.attendance_rate",
        "CA",
        Band.yellow,
        dip,
        f"第 {DIP_WEEK + 1} 教学周（{dip}）调课至周六晚，{c.dip_students} 名学生缺课，到课率降至 "
        f"{v('course.attendance_rate', sp['CA'], dip):.1f}%，之后各周恢复——预警应开启后解除",
    )
    course(
        "course.pass_rate",
        "CB",
        Band.red,
        before,
        f"上学期及格率仅 {v('course.pass_rate', sp['CB'], before):.1f}%，低于标准值 80%",
    )
    course(
        "course.excellent_rate",
        "CC",
        Band.yellow,
        before,
        f"上学期优秀率 {v('course.excellent_rate', sp['CC'], before):.1f}%，超出预警区间 10%–35%，评分偏松",
    )
    course(
        "course.student_evaluation_score",
        "CD",
        Band.yellow,
        now,
        f"本学期学生评教 {v('course.student_evaluation_score', sp['CD'], now):.1f} 分，低于预警值 85；"
        "该教师其他课程评教较高，教师本人不预警",
    )
    course(
        "course.evaluation_participation",
        "CE",
        Band.yellow,
        now,
        f"本学期评教参与率 {v('course.evaluation_participation', sp['CE'], now):.1f}%，低于预警值 90%",
    )
    course(
        "course.student_evaluation_score",
        "CF",
        Band.red,
        now,
        f"本学期学生评教仅 {v('course.student_evaluation_score', sp['CF'], now):.1f} 分，低于标准值 80"
        f"（任课教师{name(sp['TE'])}只授此一门课，教师层面同时红色预警）",
    )
    last, (lag_before, lag_last) = c.weeks[-1], schedule_lag(c)
    course(
        "course.schedule_deviation",
        "CG",
        Band.yellow,
        last,
        f"实训室设备故障，第 {len(c.weeks) - 1} 周 {lag_before} 次课、第 {len(c.weeks)} 周整周改上复习课，"
        f"授课计划内容未推进：{last} 周累计落后 {lag_last} 次课，教学进度偏差 "
        f"{v('course.schedule_deviation', sp['CG'], last):.1f} 周，超过预警值 1 周",
    )

    def teacher(metric: str, tid: str, band: Band, period: str, note: str) -> None:
        add(metric, tid, band, period, "teacher", tid, f"教师{name(tid)}（{tid}）：{note}")

    teacher(
        "teacher.student_evaluation_score",
        sp["TE"],
        Band.red,
        now,
        f"本学期学生评教 {v('teacher.student_evaluation_score', sp['TE'], now):.1f} 分，低于标准值 80",
    )
    t = c.roles[(M_SHRINKING, "train_red")]
    teacher(
        "teacher.training_days",
        t,
        Band.red,
        year,
        f"年度培训进修仅 {v('teacher.training_days', t, year):.0f} 天，低于标准值 5 天",
    )
    t = c.roles[(M_TINY, "train_yellow")]
    teacher(
        "teacher.training_days",
        t,
        Band.yellow,
        year,
        f"年度培训进修 {v('teacher.training_days', t, year):.0f} 天，介于 5 天与预警值 10 天之间",
    )
    t = c.roles[(M_TINY, "overload")]
    teacher(
        "teacher.weekly_hours",
        t,
        Band.red,
        now,
        f"本学期周课时 {v('teacher.weekly_hours', t, now):.0f} 学时（4 门课各 6 学时），超过标准值 20",
    )
    t = c.roles[(M_SHRINKING, "idle_prof")]
    teacher(
        "teacher.senior_prof_teaching",
        t,
        Band.red,
        now,
        f"{c.staff[t].title}，{2026 - c.staff[t].birth_year} 岁，本学期未给学生授课",
    )

    def student(metric: str, key: str, band: Band, period: str, note: str) -> None:
        s = c.students[sp[key]]
        add(
            metric,
            s.id,
            band,
            period,
            "counsellor",
            c.classes[s.class_id].counsellor_id,
            f"学生{s.name}（{s.id}，{c.classes[s.class_id].name}）：{note}",
        )

    last = c.weeks[-1]
    student(
        "student.attendance_rate",
        "SA",
        Band.red,
        last,
        f"自第 {c.sa_start + 1} 周起经常旷课，{last} 周到课率 {v('student.attendance_rate', sp['SA'], last):.1f}%",
    )
    student(
        "student.absence_hours",
        "SA",
        Band.red,
        now,
        f"本学期累计旷课 {v('student.absence_hours', sp['SA'], now):.0f} 学时，超过标准值 20 学时",
    )
    student(
        "student.absence_hours",
        "SB",
        Band.yellow,
        now,
        f"第 2、4 周共旷课 7 节（{v('student.absence_hours', sp['SB'], now):.0f} 学时），超过预警值 10 学时"
        "（这两周个人到课率也会预警）",
    )
    student(
        "student.failed_courses",
        "SC",
        Band.red,
        before,
        f"上学期 6 门课程 {v('student.failed_courses', sp['SC'], before):.0f} 门不及格",
    )
    student(
        "student.gpa",
        "SC",
        Band.red,
        before,
        f"上学期平均学分绩点 {v('student.gpa', sp['SC'], before):.2f}，低于标准值 1.5",
    )
    student(
        "student.failed_courses",
        "SD",
        Band.yellow,
        before,
        f"上学期 {v('student.failed_courses', sp['SD'], before):.0f} 门课程不及格",
    )
    student(
        "student.gpa",
        "SE",
        Band.yellow,
        before,
        f"上学期各科成绩均在 66–69 分，平均学分绩点 {v('student.gpa', sp['SE'], before):.2f}，低于预警值 2.0",
    )
    return tuple(out)
