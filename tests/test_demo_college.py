"""The demo college generator and its HR/评教 API, tested through the sources they produce.

The metric recomputation here reads the generated files back (SQLite, GBK CSV, API data) with
its own code, independent of the generator's self-check, and follows SOURCES.md's formulas.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections import defaultdict
from datetime import UTC
from pathlib import Path

import httpx
import pytest

from zhengai.demo.api import DemoApi
from zhengai.demo.college import SIZES, College, CollegeSize, generate
from zhengai.ingest.records import Band, Level
from zhengai.rules.evaluator import classify, resolve_thresholds
from zhengai.rules.kinds import kind_of
from zhengai.rules.loader import load_rulebook

RULEBOOK = load_rulebook()

SENIOR = {"教授", "副教授", "高级工程师", "高级实验师", "正高级工程师"}
INDICATOR_CODES = {"4001", "4002", "5001", "5002", "5003", "5004"}


def band_of(metric: str, v: float) -> Band:
    """The band under the shipped rulebook, by the real evaluator (tested on its own in test_evaluator)."""
    rule = RULEBOOK.rules[metric]
    return classify(float(v), resolve_thresholds(rule, {}, ()))[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> College:
    return generate(tmp_path_factory.mktemp("small"), SIZES["small"])


def db_rows(path: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def dump(path: Path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def parse_amount(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


# -- determinism and file formats ----------------------------------------------------------------


def test_same_seed_gives_identical_sources_and_overwrites(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", SIZES["small"], seed=7)
    again = generate(tmp_path / "a", SIZES["small"], seed=7)  # overwrites in place
    b = generate(tmp_path / "b", SIZES["small"], seed=7)
    assert dump(again.jiaowu_db) == dump(b.jiaowu_db)
    assert again.finance_csv.read_bytes() == b.finance_csv.read_bytes()
    assert a.api_data == b.api_data
    assert (a.planted, a.healthy, a.as_of, a.weeks) == (b.planted, b.healthy, b.as_of, b.weeks)
    other = generate(tmp_path / "c", SIZES["small"], seed=8)
    assert dump(other.jiaowu_db) != dump(b.jiaowu_db)


def test_calendar_and_clock(small: College) -> None:
    assert small.current_term == "2026-2027-1" and small.previous_term == "2025-2026-2"
    assert small.weeks == tuple(f"2026-W{w}" for w in range(37, 45))
    assert small.as_of.utcoffset().total_seconds() == 8 * 3600
    assert small.as_of.isoformat().startswith("2026-11-01T23:59:59")  # the Sunday ending 2026-W44
    latest = db_rows(small.jiaowu_db, "SELECT MAX(updated_at) FROM attendance")[0][0]
    assert latest < small.as_of.isoformat()


def test_attendance_ids_and_timestamps_ascend(small: College) -> None:
    out_of_order = db_rows(
        small.jiaowu_db,
        "SELECT COUNT(*) FROM attendance a JOIN attendance b ON b.id = a.id + 1 WHERE b.updated_at < a.updated_at",
    )
    assert out_of_order == [(0,)]
    n, lo, hi = db_rows(small.jiaowu_db, "SELECT COUNT(*), MIN(id), MAX(id) FROM attendance")[0]
    assert (lo, hi) == (1, n)
    enrolled = db_rows(small.jiaowu_db, "SELECT COUNT(*) FROM enrollments WHERE term = '2026-2027-1'")[0][0]
    assert n == enrolled * len(small.weeks)  # one tally per student × course × week
    bad = db_rows(small.jiaowu_db, "SELECT COUNT(*) FROM attendance WHERE attended + excused > scheduled")
    assert bad == [(0,)]


def test_finance_csv_is_gbk_with_one_dead_letter_line(small: College) -> None:
    data = small.finance_csv.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    rows = list(csv.reader(io.StringIO(data.decode("gbk"), newline="")))
    assert rows[0] == ["年度", "科目代码", "科目名称", "预算数(元)", "执行数(元)", "备注"]
    body, total = rows[1:-1], rows[-1]
    assert total[0] == "合计"
    assert {r[1] for r in body} >= INDICATOR_CODES | {"5009"}
    assert all("," in r[3] for r in body)  # thousands separators
    malformed = [r for r in body if parse_amount(r[3]) is None or parse_amount(r[4]) is None]
    assert len(malformed) == 1
    assert malformed[0][1] in INDICATOR_CODES and malformed[0][4] == "待核实"


def test_personal_data_exists_to_be_protected(small: College) -> None:
    students = db_rows(small.jiaowu_db, "SELECT id, id_card, mobile, status FROM students")
    assert len(students) == SIZES["small"].students
    assert all(len(sid) == 10 and sid.isdigit() for sid, *_ in students)
    assert all(len(card) == 18 and card.startswith("99") for _, card, _, _ in students)
    assert all(len(m) == 11 and m.isdigit() for _, _, m, _ in students)
    assert {s for *_, s in students} == {"在读", "休学"}
    staff = small.api_data.staff
    assert all(p["dingtalk_user_id"] and len(p["mobile"]) == 11 and "@" in p["email"] for p in staff)
    assert len({p["mobile"] for p in staff} | {m for _, _, m, _ in students}) == len(staff) + len(students)


def test_progress_is_reported_in_chinese(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    generate(tmp_path, SIZES["small"], progress=lambda step, done, total: calls.append((step, done, total)))
    assert any(step == "写入考勤" and done == total for step, done, total in calls)
    assert all(0 <= done <= total for _, done, total in calls)


def test_unsupported_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="students must be at least 100 per major"):
        generate(tmp_path, CollegeSize(2, 4, 40, 30, 100))


# -- the HR / 评教 API ----------------------------------------------------------------------------


def test_api_requires_login_and_paginates_completely(small: College) -> None:
    data = small.api_data
    with DemoApi(data) as api, httpx.Client(base_url=api.base_url, timeout=5) as http:
        assert http.get("/api/school").status_code == 401
        assert http.get("/api/hr/staff", headers={"Authorization": "Bearer forged"}).status_code == 401
        assert http.post("/api/login", json={"username": api.username, "password": "wrong"}).status_code == 401
        login = http.post("/api/login", json={"username": api.username, "password": api.password})
        assert login.status_code == 200
        http.headers["Authorization"] = f"Bearer {login.json()['token']}"

        school = http.get("/api/school")
        assert school.headers["content-type"] == "application/json; charset=utf-8"
        assert "人事处".encode() in school.content  # ensure_ascii=False: Chinese travels as UTF-8
        offices = {o["name"]: o["head"] for o in school.json()["offices"]}
        assert len(offices) == 20 and {"人事处", "财务处", "学工处", "质量办"} <= set(offices)
        assert school.json()["quality_office"]["id"]

        staff, page = [], 1
        while True:
            body = http.get("/api/hr/staff", params={"page": page, "page_size": 7}).json()
            assert body["total"] == len(data.staff) and body["page_size"] == 7
            staff += body["items"]
            if not body["items"]:
                break
            page += 1
        assert [p["id"] for p in staff] == [p["id"] for p in data.staff]
        assert len({p["id"] for p in staff}) == len(staff)
        assert {p["type"] for p in staff} == {"teacher", "counsellor", "dean", "office"}

        for term in (small.current_term, small.previous_term):
            sections, cursor, calls = [], None, 0
            while True:
                params = {"term": term, "limit": 13} | ({"cursor": cursor} if cursor else {})
                body = http.get("/api/eval/sections", params=params).json()
                sections += body["items"]
                calls += 1
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            assert sections == list(data.sections[term]) and calls > 1
            assert {s["term"] for s in sections} == {term}
        assert (
            http.get("/api/eval/sections", params={"term": small.current_term, "cursor": "nonsense"}).status_code == 400
        )
        assert http.get("/api/eval/sections").status_code == 400  # term is required
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{api.base_url}/api/school", timeout=2)


# -- planted anomalies and healthy references ----------------------------------------------------


def directory(c: College) -> dict[str, dict]:
    """Entity → what the sources say about it: level and the person responsible for it."""
    db = c.jiaowu_db
    out: dict[str, dict] = {c.school_id: {"level": Level.school}}
    for office in c.api_data.school["offices"]:
        out[c.school_id][f"office:{office['name']}"] = office["head"]["id"]
    for mid, leader in db_rows(db, "SELECT id, leader_id FROM majors"):
        out[mid] = {"level": Level.major, "major_leader": leader}
    for cid, teacher in db_rows(db, "SELECT id, teacher_id FROM courses"):
        out[cid] = {"level": Level.course, "course_teacher": teacher}
    for p in c.api_data.staff:
        if p["type"] == "teacher":
            out[p["id"]] = {"level": Level.teacher, "teacher": p["id"]}
    for sid, counsellor in db_rows(
        db, "SELECT s.id, k.counsellor_id FROM students s JOIN classes k ON k.id = s.class_id"
    ):
        out[sid] = {"level": Level.student, "counsellor": counsellor}
    for kid, counsellor in db_rows(
        db, "SELECT id, counsellor_id FROM classes"
    ):  # class roll-ups (流失率) are student-level
        out[kid] = {"level": Level.student, "counsellor": counsellor}
    return out


def test_every_planted_anomaly_names_a_real_entity_and_person(small: College) -> None:
    entities = directory(small)
    staff_ids = {p["id"] for p in small.api_data.staff}
    per_level: dict[Level, int] = defaultdict(int)
    for a in small.planted:
        assert a.entity_id in entities, a
        assert entities[a.entity_id]["level"] is a.level, a
        assert entities[a.entity_id][a.responsible_role] == a.responsible_person_id, a
        assert a.responsible_person_id in staff_ids
        assert a.rule_id.split(".")[0] == a.level.value and a.note
        per_level[a.level] += 1
    assert all(per_level[level] >= 2 for level in Level), per_level
    assert {a.band for a in small.planted} == {Band.yellow, Band.red}


def test_healthy_references_cover_four_levels(small: College) -> None:
    entities = directory(small)
    levels = {entities[e]["level"] for e in small.healthy}
    assert levels >= {Level.major, Level.course, Level.teacher, Level.student}


def recompute(c: College) -> dict[tuple[str, str, str], float]:
    """SOURCES.md's formulas over the generated sources."""
    db, term, prev, year = c.jiaowu_db, c.current_term, c.previous_term, "2026"
    m: dict[tuple[str, str, str], float] = {}
    for cid, week, att, sch in db_rows(
        db, "SELECT course_id, week, SUM(attended), SUM(scheduled) FROM attendance GROUP BY 1, 2"
    ):
        m[("course.attendance_rate", cid, week)] = 100 * att / sch
    for sid, week, att, sch in db_rows(
        db, "SELECT student_id, week, SUM(attended), SUM(scheduled) FROM attendance GROUP BY 1, 2"
    ):
        m[("student.attendance_rate", sid, week)] = 100 * att / sch
    for sid, hours in db_rows(
        db, "SELECT student_id, 2 * SUM(scheduled - attended - excused) FROM attendance GROUP BY 1"
    ):
        m[("student.absence_hours", sid, term)] = hours
    for cid, n, passed, excellent in db_rows(
        db,
        f"SELECT course_id, COUNT(*), SUM(score >= 60), SUM(score >= 90) FROM grades WHERE term = '{prev}' GROUP BY 1",
    ):
        m[("course.pass_rate", cid, prev)] = 100 * passed / n
        m[("course.excellent_rate", cid, prev)] = 100 * excellent / n
    points = "CASE WHEN score >= 60 THEN MIN(4.0, (score - 50) / 10.0) ELSE 0 END"
    for sid, failed, gpa in db_rows(
        db,
        f"SELECT student_id, SUM(score < 60), SUM({points} * credits) / SUM(credits) FROM grades "
        f"WHERE term = '{prev}' GROUP BY 1",
    ):
        m[("student.failed_courses", sid, prev)] = failed
        m[("student.gpa", sid, prev)] = gpa
    for t, rows in c.api_data.sections.items():
        weighted: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for s in rows:
            m[("course.student_evaluation_score", s["course_id"], t)] = s["score_avg"]
            m[("course.evaluation_participation", s["course_id"], t)] = 100 * s["respondents"] / s["enrolled"]
            weighted[s["teacher_id"]][0] += s["score_avg"] * s["respondents"]
            weighted[s["teacher_id"]][1] += s["respondents"]
        for tid, (total, n) in weighted.items():
            m[("teacher.student_evaluation_score", tid, t)] = total / n
    teachers = [p for p in c.api_data.staff if p["type"] == "teacher"]
    load = dict(db_rows(db, "SELECT teacher_id, SUM(weekly_hours) FROM courses GROUP BY 1"))
    taught = dict(db_rows(db, "SELECT teacher_id, COUNT(*) FROM courses GROUP BY 1"))
    for p in teachers:
        m[("teacher.training_days", p["id"], year)] = p["training_days"]
        m[("teacher.weekly_hours", p["id"], term)] = load.get(p["id"], 0)
        if p["title"] in ("教授", "副教授") and 2026 - p["birth_year"] < 55:
            m[("teacher.senior_prof_teaching", p["id"], term)] = taught.get(p["id"], 0)
    fulltime = [p for p in teachers if p["fulltime"]]
    for mid, n in db_rows(
        db,
        "SELECT k.major_id, COUNT(*) FROM students s JOIN classes k ON k.id = s.class_id "
        "WHERE s.status = '在读' GROUP BY 1",
    ):
        m[("major.enrolled_students", mid, year)] = n
        mine = [p for p in fulltime if p["major_id"] == mid]
        m[("major.dual_qualified_ratio", mid, year)] = 100 * sum(p["dual_qualified"] for p in mine) / len(mine)
    for mid, total, practice in db_rows(
        db,
        "SELECT major_id, total_hours, practice_hours FROM teaching_plans p WHERE cohort = "
        "(SELECT MAX(cohort) FROM teaching_plans q WHERE q.major_id = p.major_id)",
    ):
        m[("major.practice_hours_ratio", mid, year)] = 100 * practice / total
    for cid, week, per_week, planned, taught in db_rows(
        db, "SELECT course_id, week, sessions_per_week, planned_sessions_cum, taught_sessions_cum FROM course_progress"
    ):
        m[("course.schedule_deviation", cid, week)] = round(max(0, planned - taught) / per_week, 1)
    money: dict[str, float] = defaultdict(float)
    for row in list(csv.reader(io.StringIO(c.finance_csv.read_bytes().decode("gbk"))))[1:]:
        actual = parse_amount(row[4])
        if row[1] in INDICATOR_CODES and actual is not None:  # the 待核实 line is a dead letter
            money[row[1]] += actual
    students = db_rows(db, "SELECT COUNT(*) FROM students")[0][0]
    counsellors = db_rows(db, "SELECT COUNT(DISTINCT counsellor_id) FROM classes")[0][0]
    school = {
        "school.student_teacher_ratio": students / len(fulltime),
        "school.postgrad_degree_teacher_ratio": 100
        * sum(p["degree"] in ("硕士", "博士") for p in fulltime)
        / len(fulltime),
        "school.senior_title_teacher_ratio": 100 * sum(p["title"] in SENIOR for p in fulltime) / len(fulltime),
        "school.fiscal_appropriation_per_student": money["4002"] / students,
        "school.teaching_investment_ratio": 100 * (money["5003"] + money["5004"]) / (money["4001"] + money["4002"]),
        "school.teacher_training_budget_ratio": 100 * money["5002"] / money["5001"],
    }
    m.update({(k, c.school_id, year): v for k, v in school.items()})
    m[("school.counselor_student_ratio", c.school_id, term)] = students / counsellors
    m.update(recompute_forms(c))
    return m


def recompute_forms(c: College) -> dict[tuple[str, str, str], float]:
    """The 填报 drop folder read back with the forms readers: the newest task table, the incident
    register, 保卫处's form; 数据采集及时率 from the files' drop times against the due dates."""
    from datetime import date, datetime, time

    from zhengai.demo.forms import AS_OF_DAY, ISSUES
    from zhengai.forms.incidents import incident_values, read_incidents
    from zhengai.forms.sheets import open_workbook
    from zhengai.forms.tasks import read_tasks, task_values
    from zhengai.ingest.units import CST

    folder, m = c.out_dir / "forms", {}
    files = {p.name: open_workbook(p, p.name) for p in sorted(folder.glob("*.xlsx"))}
    as_of = datetime.combine(date.fromisoformat(AS_OF_DAY), time(23, 59), CST)
    newest = max(n for n in files if "任务" in n)
    tasks, errors, _ = read_tasks(next(iter(files[newest][0].values())), 2026)
    incidents, errors2, _ = read_incidents(next(iter(files[next(n for n in files if "事故" in n)][0].values())))
    assert not errors and not errors2
    courses = [r[0] for r in db_rows(c.jiaowu_db, "SELECT id FROM courses")]
    values = task_values(tasks, c.school_id, as_of) + incident_values(
        incidents, c.school_id, terms=[c.current_term], courses=courses
    )
    m.update({(v.metric, v.entity_id, v.period): v.value for v in values})
    sheets, _ = files[next(n for n in files if "保卫处" in n)]
    m[("school.campus_stability_events", c.school_id, "2026")] = float(sheets["填报"].rows[4][7])
    dropped = {
        (meta["form"], meta["period"]): datetime.fromtimestamp((folder / n).stat().st_mtime, CST).date()
        for n, (_, meta) in files.items()
    }
    due = [(f, p, date.fromisoformat(d)) for f, _, p, d, _ in ISSUES if d <= AS_OF_DAY]
    on_time = sum(1 for f, p, d in due if (f, p) in dropped and dropped[(f, p)] <= d)
    m[("school.data_collection_quality", c.school_id, AS_OF_DAY)] = 100 * on_time / len(due)
    return m


@pytest.mark.parametrize("size", ["small", "default"])
def test_sources_show_planted_bands_and_nothing_else(size: str, small: College, tmp_path: Path) -> None:
    college = small if size == "small" else generate(tmp_path, SIZES[size])
    m = recompute(college)
    # The other systems' anomalies (zhengai/demo/systems.py) are checked end to end in test_rule_routes.py.
    others = set(college.systems.planted) if college.systems else set()
    planted = {(a.rule_id, a.entity_id, a.period): a for a in college.planted if a not in others}
    for key, a in planted.items():
        if kind_of(RULEBOOK.rules[a.rule_id]) != "threshold":
            continue  # the kinds' anomalies: test_sources_show_one_anomaly_per_rule_kind
        assert key in m, f"no value for planted {key}"
        assert band_of(a.rule_id, m[key]) is a.band, (key, m[key], a.band)
    for (metric, entity, period), value in m.items():
        if entity in college.healthy:
            assert not band_of(metric, value).is_breach, (metric, entity, period, value)
    unplanned = [(k, v) for k, v in m.items() if band_of(k[0], v).is_breach and k not in planted]
    # Above the student level only planted anomalies breach; students show a handful of noisy weeks.
    assert [k for k, _ in unplanned if not k[0].startswith("student.")] == []
    assert len(unplanned) <= max(20, 0.005 * SIZES[size].students), unplanned
    # The attendance dip is one week only: the course recovers the week after.
    dip = next(a for a in college.planted if a.rule_id == "course.attendance_rate")
    after = college.weeks[college.weeks.index(dip.period) + 1 :]
    assert after and all(m[("course.attendance_rate", dip.entity_id, w)] >= 95 for w in after)
    # Teaching progress: every course keeps to its 授课计划 except the one planted lagging course,
    # which breaches only in the last week; the healthy course is never behind.
    [lag] = [a for a in college.planted if a.rule_id == "course.schedule_deviation"]
    assert lag.period == college.weeks[-1] and lag.band in (Band.yellow, Band.red)
    behind = {k: v for k, v in m.items() if k[0] == "course.schedule_deviation" and v > 0}
    assert set(behind) == {(lag.rule_id, lag.entity_id, w) for w in college.weeks[-2:]}
    assert all(
        m[("course.schedule_deviation", c, w)] == 0
        for c in college.healthy
        for w in college.weeks
        if ("course.schedule_deviation", c, w) in m
    )


@pytest.mark.parametrize("size", ["small", "default"])
def test_sources_show_one_anomaly_per_rule_kind(size: str, small: College, tmp_path: Path) -> None:
    """Recomputed from the sources with the kinds' own judges: a course with three falling terms,
    the school's budget behind the time elapsed, a student with two red components, a course
    below its own control limit while above the fixed 预警值."""
    from zhengai.rules.kinds_eval import judge_composite, judge_control, judge_progress, judge_trend

    college = small if size == "small" else generate(tmp_path, SIZES[size])
    m = recompute(college)
    by_kind = {
        kind_of(RULEBOOK.rules[a.rule_id]): a
        for a in college.planted
        if kind_of(RULEBOOK.rules[a.rule_id]) != "threshold"
    }
    assert set(by_kind) == {"trend", "progress", "composite", "control"}

    trend = by_kind["trend"]
    rates = {
        t: 100 * p / n
        for t, n, p in db_rows(
            college.jiaowu_db,
            f"SELECT term, COUNT(*), SUM(score >= 60) FROM grades WHERE course_id = '{trend.entity_id}' GROUP BY 1",
        )
    }
    assert len(rates) == 3 and list(rates.values()) == sorted(rates.values(), reverse=True)
    judged = judge_trend(RULEBOOK.rules[trend.rule_id], college.previous_term, rates[college.previous_term], rates)
    assert judged is not None and (judged.value, judged.band) == (3, trend.band)

    progress = by_kind["progress"]
    spend = [
        r
        for r in list(csv.reader(io.StringIO(college.finance_csv.read_bytes().decode("gbk"))))[1:]
        if r[1] in ("5001", "5003", "5004") and parse_amount(r[4]) is not None
    ]
    rate = 100 * sum(parse_amount(r[4]) for r in spend) / sum(parse_amount(r[3]) for r in spend)
    from datetime import datetime

    exported = datetime.fromtimestamp(college.finance_csv.stat().st_mtime, UTC)
    assert exported == college.as_of  # the export was taken at the demo's clock
    assert judge_progress(RULEBOOK.rules[progress.rule_id], "2026", rate, exported).band is progress.band

    composite = by_kind["composite"]
    prev, rule = college.previous_term, RULEBOOK.rules[composite.rule_id]
    parts = []
    for c in rule.components:
        key = next(
            (k for k in m if k[0] == c.metric and k[1] == composite.entity_id and k[2] in (composite.period, prev)),
            None,
        )
        parts.append(("", "", m[key], band_of(c.metric, m[key])) if key else ("", "", None, None))
    assert judge_composite(rule, parts).band is composite.band is Band.yellow

    control = by_kind["control"]
    weeks = {w: m[("course.attendance_rate", control.entity_id, w)] for w in college.weeks}
    judged = judge_control(RULEBOOK.rules[control.rule_id], control.period, weeks[control.period], weeks)
    assert judged is not None and judged.band is control.band and control.band.is_breach
    assert not band_of("course.attendance_rate", weeks[control.period]).is_breach  # the fixed lines are met
