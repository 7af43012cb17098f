"""The deterministic demo college (示范职业技术学院), generated as *real* sources.

``generate()`` writes what a campus would expose — a SQLite 教务 database, a GBK 财务 CSV — and
returns the data an HR/评教 HTTP API serves (``zhengai.demo.api.DemoApi``). ``SOURCES.md`` is the
contract. The same (size, seed) always gives the same bytes: one ``random.Random`` per step, no
wall clock.

The college is mostly healthy. Known anomalies are planted on purpose at all five levels and
listed in ``College.planted`` (with the person a warning must reach); reference entities whose
every metric is comfortably normal are listed in ``College.healthy``. Before writing, the
generator recomputes every metric from its own rows (``zhengai.demo.checks``) and refuses to
return a college whose planted values are not unambiguously inside their band.
"""

from __future__ import annotations

import csv
import sqlite3
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

from zhengai.demo import checks, kinds, planting
from zhengai.demo import forms as demo_forms
from zhengai.demo.api import ApiData
from zhengai.demo.structure import (
    BUDGET_YEAR,
    CST,
    CURRENT_TERM,
    FIRST_MONDAY,
    M_HEALTHY,
    PREVIOUS_TERM,
    SCHOOL_ID,
    SCHOOL_NAME,
    SIZES,
    Build,
    CollegeSize,
    PlantedAnomaly,
    Progress,
    iso,
    stamp,
    validate,
)
from zhengai.demo.systems import SystemSources, write_systems

__all__ = [
    "CollegeSize",
    "SIZES",
    "PlantedAnomaly",
    "College",
    "generate",
    "SCHOOL_ID",
    "SCHOOL_NAME",
    "CURRENT_TERM",
    "PREVIOUS_TERM",
    "BUDGET_YEAR",
]


@dataclass(frozen=True)
class College:
    out_dir: Path
    school_id: str
    school_name: str
    jiaowu_db: Path
    finance_csv: Path
    api_data: ApiData
    planted: tuple[PlantedAnomaly, ...]
    healthy: tuple[str, ...]  # a major, a course, a teacher and a student none of whose metrics breach
    as_of: datetime  # the demo's clock: the end of the last generated week
    current_term: str
    previous_term: str
    weeks: tuple[str, ...]
    systems: SystemSources | None = None  # 学工, 招就, 实习 … (zhengai.demo.systems)


def generate(
    out_dir: Path,
    size: CollegeSize = SIZES["default"],
    seed: int = 2026,
    weeks: int = 8,
    progress: Progress | None = None,
) -> College:
    """Generate the college into ``out_dir`` (existing outputs are overwritten) and return it."""
    validate(size, weeks)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda step, done, total: None)
    c = Build(size, seed, weeks, report)
    c.structure()
    planting.plant(c)
    metrics = checks.compute(c)
    metrics.update(demo_forms.compute(c))
    planted = planting.anomalies(c, metrics) + demo_forms.anomalies(c, metrics)
    healthy = (M_HEALTHY, c.special["HC"], c.special["HT"], c.special["HS"])
    checks.verify(planted, healthy, metrics)
    # A reader may count students with or without 休学 ones: both readings must hold.
    checks.verify(planted, healthy, {**metrics, **checks.school(c, count_suspended=False)})
    planted += kinds.kinds_anomalies(c, metrics)  # checked with the kinds' own judges
    report("写入教务数据库", 0, 1)
    db = out_dir / "jiaowu.sqlite"
    _write_sqlite(c, db, report)
    csv_path = out_dir / f"caiwu_{BUDGET_YEAR}.csv"
    _write_finance(c.finance, csv_path)
    kinds.stamp_export(csv_path, kinds.demo_as_of(c))
    report("写入财务导出", 1, 1)
    demo_forms.write(c, out_dir / "forms")
    systems = write_systems(c, metrics, out_dir)  # the other campus systems, their own planted anomalies
    checks.verify(systems.planted_tuple(), healthy, systems.values)
    planted += systems.planted_tuple()
    report("写入学工、招就、实习等系统", 1, 1)
    last_monday = FIRST_MONDAY + timedelta(weeks=weeks - 1)
    return College(
        out_dir=out_dir,
        school_id=SCHOOL_ID,
        school_name=SCHOOL_NAME,
        jiaowu_db=db,
        finance_csv=csv_path,
        api_data=c.api_data(),
        planted=planted,
        healthy=healthy,
        as_of=datetime.combine(last_monday + timedelta(days=6), time(23, 59, 59), CST),
        current_term=CURRENT_TERM,
        previous_term=PREVIOUS_TERM,
        weeks=tuple(c.weeks),
        systems=systems,
    )


_SCHEMA = """
CREATE TABLE departments (id TEXT PRIMARY KEY, name TEXT NOT NULL, dean_id TEXT, dean_name TEXT,
  updated_at TEXT NOT NULL);
CREATE TABLE majors (id TEXT PRIMARY KEY, name TEXT NOT NULL, department_id TEXT NOT NULL, leader_id TEXT,
  leader_name TEXT, updated_at TEXT NOT NULL);
CREATE TABLE classes (id TEXT PRIMARY KEY, name TEXT NOT NULL, major_id TEXT NOT NULL, counsellor_id TEXT,
  counsellor_name TEXT, cohort INTEGER NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE students (id TEXT PRIMARY KEY, name TEXT NOT NULL, class_id TEXT NOT NULL, id_card TEXT,
  mobile TEXT, status TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE courses (id TEXT PRIMARY KEY, name TEXT NOT NULL, major_id TEXT NOT NULL, teacher_id TEXT,
  teacher_name TEXT, weekly_hours INTEGER NOT NULL, credits REAL NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE enrollments (student_id TEXT NOT NULL, course_id TEXT NOT NULL, term TEXT NOT NULL,
  PRIMARY KEY (student_id, course_id, term));
CREATE TABLE attendance (id INTEGER PRIMARY KEY, student_id TEXT NOT NULL, course_id TEXT NOT NULL,
  week TEXT NOT NULL, scheduled INTEGER NOT NULL, attended INTEGER NOT NULL, excused INTEGER NOT NULL,
  updated_at TEXT NOT NULL);
CREATE INDEX attendance_updated ON attendance (updated_at, id);
CREATE TABLE grades (id INTEGER PRIMARY KEY, student_id TEXT NOT NULL, course_id TEXT NOT NULL,
  term TEXT NOT NULL, score REAL NOT NULL, credits REAL NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX grades_updated ON grades (updated_at, id);
CREATE TABLE course_progress (id INTEGER PRIMARY KEY, course_id TEXT NOT NULL, term TEXT NOT NULL,
  week TEXT NOT NULL, sessions_per_week INTEGER NOT NULL, planned_sessions_cum INTEGER NOT NULL,
  taught_sessions_cum INTEGER NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX course_progress_updated ON course_progress (updated_at, id);
CREATE TABLE teaching_plans (major_id TEXT NOT NULL, cohort INTEGER NOT NULL, total_hours INTEGER NOT NULL,
  practice_hours INTEGER NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (major_id, cohort));
"""


def _attendance_rows(c: Build):
    """(id, student, course, week, scheduled, attended, excused, updated_at), id and updated_at
    ascending: each week's tallies are posted from Friday 18:00, one row per second (or faster
    for very large colleges, so a week's rows never spill into the next)."""
    current = sorted(c.current_students(), key=lambda s: s.id)
    per_week = sum(len(s.courses) for s in current)
    step_ms = min(1000, (36 * 3600 * 1000) // max(1, per_week))
    row_id = 0
    for w, week in enumerate(c.weeks):
        close = datetime.combine(FIRST_MONDAY + timedelta(weeks=w, days=4), time(18, 0), CST)
        i = 0
        for s in current:
            for cid in s.courses:
                scheduled = c.courses[cid].sessions
                unexcused, excused = c.absences.get((s.id, cid, w), (0, 0))
                row_id += 1
                updated = iso(close + timedelta(milliseconds=i * step_ms), ms=step_ms < 1000)
                i += 1
                yield (row_id, s.id, cid, week, scheduled, scheduled - unexcused - excused, excused, updated)


def _progress_rows(c: Build):
    """(id, course, term, week, sessions/week, planned to date, taught to date, updated_at), id and
    updated_at ascending: each week's 教学日志 are closed on Friday from 17:00, one row a second."""
    rows = sorted(c.schedule, key=lambda r: (r[1], r[0]))
    per_week = len(c.courses)
    for row_id, (k, w, sessions, planned, taught) in enumerate(rows, start=1):
        close = datetime.combine(FIRST_MONDAY + timedelta(weeks=w, days=4), time(17, 0), CST)
        yield (row_id, k, CURRENT_TERM, c.weeks[w], sessions, planned, taught, stamp(close, (row_id - 1) % per_week))


def _write_sqlite(c: Build, path: Path, report: Progress) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    base = datetime(2026, 9, 1, 9, 0, tzinfo=CST)
    staff = c.staff
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode = OFF")  # a regenerated file: no crash safety needed
        con.execute("PRAGMA synchronous = OFF")
        con.executescript(_SCHEMA)
        with con:  # one transaction
            con.executemany(
                "INSERT INTO departments VALUES (?,?,?,?,?)",
                [(d, n, dean, staff[dean].name, stamp(base, i)) for i, (d, n, dean) in enumerate(c.departments)],
            )
            con.executemany(
                "INSERT INTO majors VALUES (?,?,?,?,?,?)",
                [
                    (m.id, m.name, m.department_id, m.leader_id, staff[m.leader_id].name, stamp(base, i))
                    for i, m in enumerate(c.majors.values())
                ],
            )
            con.executemany(
                "INSERT INTO classes VALUES (?,?,?,?,?,?,?)",
                [
                    (k.id, k.name, k.major_id, k.counsellor_id, staff[k.counsellor_id].name, k.cohort, stamp(base, i))
                    for i, k in enumerate(c.classes.values())
                ],
            )
            con.executemany(
                "INSERT INTO students VALUES (?,?,?,?,?,?,?)",
                [
                    (s.id, s.name, s.class_id, s.id_card, s.mobile, s.status, stamp(base, i))
                    for i, s in enumerate(c.students.values())
                ],
            )
            con.executemany(
                "INSERT INTO courses VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        k.id,
                        k.name,
                        k.major_id,
                        k.teacher_id,
                        staff[k.teacher_id].name,
                        k.weekly_hours,
                        k.credits,
                        stamp(base, i),
                    )
                    for i, k in enumerate(c.courses.values())
                ],
            )
            enrol = [(s.id, cid, CURRENT_TERM) for s in c.current_students() for cid in s.courses]
            enrol += [(s.id, cid, PREVIOUS_TERM) for s in c.graded_students() for cid in s.courses]
            con.executemany("INSERT INTO enrollments VALUES (?,?,?)", enrol)
            report("写入考勤", 0, len(c.weeks))
            rows: list[tuple] = []
            week = c.weeks[0]
            for row in _attendance_rows(c):
                if row[3] != week:
                    con.executemany("INSERT INTO attendance VALUES (?,?,?,?,?,?,?,?)", rows)
                    report("写入考勤", c.weeks.index(week) + 1, len(c.weeks))
                    rows, week = [], row[3]
                rows.append(row)
            con.executemany("INSERT INTO attendance VALUES (?,?,?,?,?,?,?,?)", rows)
            report("写入考勤", len(c.weeks), len(c.weeks))
            graded = datetime(2026, 7, 10, 10, 0, tzinfo=CST)  # the previous term's grades were posted in July
            con.executemany(
                "INSERT INTO grades VALUES (?,?,?,?,?,?,?)",
                [
                    (i, sid, cid, PREVIOUS_TERM, float(score), c.courses[cid].credits, stamp(graded, i))
                    for i, ((sid, cid), score) in enumerate(sorted(c.grades.items()), start=1)
                ],
            )
            con.executemany("INSERT INTO grades VALUES (?,?,?,?,?,?,?)", kinds.history_grade_rows(c, len(c.grades) + 1))
            con.executemany("INSERT INTO teaching_plans VALUES (?,?,?,?,?)", c.plans)
            con.executemany("INSERT INTO course_progress VALUES (?,?,?,?,?,?,?,?)", _progress_rows(c))
    finally:
        con.close()


_FINANCE_HEADER = ("年度", "科目代码", "科目名称", "预算数(元)", "执行数(元)", "备注")


def _money(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:,.2f}"


def _write_finance(rows: list[tuple], path: Path) -> None:
    """GBK, thousands separators, a closing 合计 row — as a campus finance system exports it."""
    totals = [sum(r[i] for r in rows if isinstance(r[i], float)) for i in (3, 4)]
    with open(path, "w", encoding="gbk", newline="") as fh:
        w = csv.writer(fh)  # quotes the amounts, whose thousands separators are commas
        w.writerow(_FINANCE_HEADER)
        for year, code, name, budget, actual, remark in rows:
            w.writerow((year, code, name, _money(budget), _money(actual), remark))
        w.writerow(("合计", "", "", _money(totals[0]), _money(totals[1]), "不含待核实项"))
