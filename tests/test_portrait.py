"""画像 on real PostgreSQL: every figure against a hand-computed answer — value, thresholds, trend,
the percentile within the 二级学院 and the school (ties, a lower-is-better rule, a re-evaluation
that replaces the earlier one) — from the Python portrait and from ``reporting.indicator_portrait``
alike; then the two agree on every row of the demo college."""

from datetime import UTC, datetime, timedelta

import pytest
from demopg import copy_into_postgres, run_small_demo
from sqlalchemy import text

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Entity, Person
from zhengai.rules.evaluator import evaluate, resolve_thresholds
from zhengai.rules.loader import load_rulebook
from zhengai.warnings.portrait import percentile_rank, portrait
from zhengai.warnings.scopes import Grant, Role, Scope
from zhengai.warnings.service import WarningService
from zhengai.warnings.store import WarningStore

pytestmark = pytest.mark.integration

T0 = datetime(2026, 9, 7, 8, tzinfo=UTC)
RULEBOOK = """
rules:
  - id: course.attendance_rate
    name: 学生到课率
    metric: course.attendance_rate
    level: course
    unit: "%"
    direction: higher_is_better
    target: 98
    standard: 90
    warning: 95
    cycle: week
    responsible: course_teacher
  - id: course.schedule_deviation
    name: 课表执行偏差
    metric: course.schedule_deviation
    level: course
    unit: 课时
    direction: lower_is_better
    target: 0
    standard: 2
    warning: 1
    cycle: week
    responsible: course_teacher
"""
COURSES = {"C0001": "D01", "C0002": "D01", "C0003": "D01", "C0004": "D01", "C0005": "D02", "C0006": "D02"}
QA = Scope("Q001", (Grant(Role.quality_office),))


@pytest.fixture
def rules(tmp_path):
    (tmp_path / "rb").mkdir()
    (tmp_path / "rb" / "course.yaml").write_text(RULEBOOK, encoding="utf-8")
    return load_rulebook(tmp_path / "rb")


@pytest.fixture
def directory():
    p = lambda i, n: Person(id=i, name=n)  # noqa: E731
    recs = [
        Entity(id="SCH", kind="school", name="示范学院", responsible={"quality_office": p("Q001", "质量办")}),
        Entity(
            id="D01", kind="department", name="智能制造学院", parent_id="SCH", responsible={"dean": p("DN01", "院长")}
        ),
        Entity(id="D02", kind="department", name="信息工程学院", parent_id="SCH"),
        Entity(id="M0101", kind="major", name="机电一体化技术", parent_id="D01"),
        Entity(id="M0201", kind="major", name="软件技术", parent_id="D02"),
    ]
    for cid, dept in COURSES.items():
        recs.append(
            Entity(
                id=cid,
                kind="course",
                name=f"课程{cid[-1]}",
                parent_id="M0101" if dept == "D01" else "M0201",
                responsible={"course_teacher": p(f"T{cid[1:]}", f"教师{cid[-1]}")},
            )
        )
    return Directory(recs)


def V(rules, week, value, course, rule="course.attendance_rate", later=0):
    r = rules.rules[rule]
    at = T0 + timedelta(weeks=week - 37, minutes=later)
    period = f"2026-W{week:02d}"
    return evaluate(
        r,
        resolve_thresholds(r, {}, ()),
        value=value,
        entity_id=course,
        period=period,
        observed_at=at,
        now=at,
        observation_key=f"obs|{rule}|{course}|{period}|{later}",
    )


@pytest.fixture
def store(pg_url, rules, directory):
    s = WarningStore(pg_url)
    s.create_schema()
    ids = ["SCH", "D01", "D02", "M0101", "M0201", *COURSES]
    s.directory.upsert([directory.get(e) for e in ids], directory)
    service = WarningService(s, lambda: rules, lambda: directory, channels=("memory",))
    # week 42: D01 = 91, 85, 97, 85 (C0004 first 60, then re-evaluated: 85 wins); D02 = 99, 70
    service.handle([V(rules, 40, 93.0, "C0001"), V(rules, 41, 88.0, "C0001")])
    values = {"C0001": 91.0, "C0002": 85.0, "C0003": 97.0, "C0004": 60.0, "C0005": 99.0, "C0006": 70.0}
    service.handle([V(rules, 42, v, c) for c, v in values.items()])
    service.handle([V(rules, 42, 85.0, "C0004", later=5)])
    # lower is better: C0001 2 课时 behind, C0002 none, C0003 one
    service.handle(
        [V(rules, 42, v, c, "course.schedule_deviation") for c, v in (("C0001", 2.0), ("C0002", 0.0), ("C0003", 1.0))]
    )
    yield s
    s.engine.dispose()


# (course, rule) → (pct within the department, pct within the school), worked out by hand:
# attendance D01 [91, 85, 97, 85], school [91, 85, 97, 85, 99, 70]; C0001 does at least as well as
# 85, 85 of the 3 others in D01 (2/3) and 85, 85, 70 of the 5 in the school (3/5); the tied C0002
# and C0004 each count the other (D01 1/3; school 85 and 70: 2/5).
EXPECTED = {
    ("C0001", "course.attendance_rate"): (200 / 3, 60.0),
    ("C0002", "course.attendance_rate"): (100 / 3, 40.0),
    ("C0003", "course.attendance_rate"): (100.0, 80.0),
    ("C0004", "course.attendance_rate"): (100 / 3, 40.0),
    ("C0005", "course.attendance_rate"): (100.0, 100.0),
    ("C0006", "course.attendance_rate"): (0.0, 0.0),
    ("C0001", "course.schedule_deviation"): (0.0, 0.0),
    ("C0002", "course.schedule_deviation"): (100.0, 100.0),
    ("C0003", "course.schedule_deviation"): (50.0, 50.0),
}


def test_percentile_rank_by_hand():
    assert percentile_rank(91, [91, 85, 97, 85]) == pytest.approx(200 / 3)
    assert percentile_rank(85, [91, 85, 97, 85]) == pytest.approx(100 / 3)  # ties count each other
    assert percentile_rank(70, [91, 85, 97, 85, 70]) == 0.0
    assert percentile_rank(0, [0, 0, 0, 3], higher_is_better=False) == 100.0  # tied at the top: all 100
    assert percentile_rank(1, [2, 0, 1], higher_is_better=False) == 50.0
    assert percentile_rank(5, [5]) is None


def test_portrait_figures_against_the_hand_computed_answer(store, directory, rules):
    p = portrait(store, directory, rules, "C0001", QA)
    assert p.department_name == "智能制造学院" and p.entity_ref == ("C0001", "课程1")
    att = next(i for i in p.indicators if i.rule_id == "course.attendance_rate")
    assert (att.name, att.period, att.value, att.band) == ("学生到课率", "2026-W42", 91.0, "yellow")
    assert (att.target, att.standard, att.warning) == (98.0, 90.0, 95.0)
    assert [(t.period, t.value) for t in att.trend] == [("2026-W40", 93.0), ("2026-W41", 88.0), ("2026-W42", 91.0)]
    assert (att.n_department, att.n_school) == (4, 6)
    # department peers, best first (ties by id); the entity itself is marked
    assert [(x.entity_id, x.value, x.is_self) for x in att.peers] == [
        ("C0003", 97.0, False),
        ("C0001", 91.0, True),
        ("C0002", 85.0, False),
        ("C0004", 85.0, False),
    ]
    for (course, rule), (dept, school) in EXPECTED.items():
        ind = next(i for i in portrait(store, directory, rules, course, QA).indicators if i.rule_id == rule)
        assert (ind.pct_department, ind.pct_school) == (pytest.approx(dept), pytest.approx(school)), (course, rule)


def test_reporting_view_gives_the_same_answer(store):
    with store.engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT entity_id, rule_id, value, target, standard, warning, pct_department, pct_school, "
                "n_department, department_name FROM reporting.indicator_portrait WHERE period = '2026-W42'"
            )
        ).all()
    got = {(r.entity_id, r.rule_id): (r.pct_department, r.pct_school) for r in rows}
    assert set(got) == set(EXPECTED)
    for key, (dept, school) in EXPECTED.items():
        assert got[key] == (pytest.approx(dept), pytest.approx(school)), key
    c4 = next(r for r in rows if r.entity_id == "C0004" and r.rule_id == "course.attendance_rate")
    assert (c4.value, c4.target, c4.standard, c4.warning, c4.n_department, c4.department_name) == (
        85.0,
        98.0,
        90.0,
        95.0,
        4,
        "智能制造学院",
    )


def test_python_and_sql_agree_on_the_demo_college(tmp_path, pg_url):
    run = run_small_demo(tmp_path / "demo")
    store = copy_into_postgres(tmp_path / "demo" / "zhengai.sqlite", pg_url)
    directory = store.directory.load()
    with store.engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT DISTINCT ON (entity_id, rule_id) entity_id, rule_id, period, value, pct_department, "
                "pct_school, n_school FROM reporting.indicator_portrait "
                "ORDER BY entity_id, rule_id, period_start DESC, period DESC"
            )
        ).all()
    assert len(rows) > 500
    checked = 0
    for entity in ("M0101", "C0001", "T0001", "K0101241", "2401010001", "D01", "SCH"):
        p = portrait(store, directory, run.pipeline.rules, entity, QA)
        for ind in p.indicators:
            row = next(r for r in rows if r.entity_id == entity and r.rule_id == ind.rule_id)
            assert (row.period, row.value) == (ind.period, ind.value)
            assert row.pct_department == (pytest.approx(ind.pct_department) if ind.pct_department is not None else None)
            assert row.pct_school == (pytest.approx(ind.pct_school) if ind.pct_school is not None else None)
            checked += 1
    assert checked >= 20
    store.engine.dispose()
