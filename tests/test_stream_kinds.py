"""The rule kinds in both runtimes: a table of cases (trend, progress, composite, control), judged by
the embedded runner (SQLite) and by the Faust worker on real Kafka + PostgreSQL, must give the
expected band and value per case — the same in both — and the worker's history must survive a
restart (killed between the periods of a trend, the new worker still sees the earlier ones)."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from streamkit import producer, wait_until

from zhengai.embedded import Pipeline
from zhengai.ingest.records import Entity, EntityKind, Level, Observation
from zhengai.ingest.serde import encode, key_of
from zhengai.ingest.topics import ENTITIES, OBSERVATIONS
from zhengai.rules.loader import load_rulebook
from zhengai.warnings.store import WarningStore

CST = timezone(timedelta(hours=8))
T = ["2024-2025-2", "2025-2026-1", "2025-2026-2"]
GRADED = [datetime(2025, 7, 10, tzinfo=CST), datetime(2026, 1, 20, tzinfo=CST), datetime(2026, 7, 10, tzinfo=CST)]
WEEKS = [f"2026-W{w}" for w in range(30, 37)]

RULEBOOK = """
rules:
  - {id: course.pass_rate, name: 课程及格率, metric: course.pass_rate, level: course, unit: "%",
     direction: higher_is_better, target: 95, standard: 60, warning: 70, cycle: term, responsible: course_teacher}
  - {id: course.pass_rate_trend, kind: trend, name: 课程及格率连续下降, metric: course.pass_rate, level: course,
     unit: 学期, value_unit: "%", direction: higher_is_better, yellow: 3, red: 4, cycle: term,
     responsible: course_teacher}
  - {id: course.attendance_rate, name: 学生到课率, metric: course.attendance_rate, level: course, unit: "%",
     direction: higher_is_better, target: 98, standard: 60, warning: 70, cycle: week, responsible: course_teacher}
  - {id: course.attendance_control, kind: control, name: 到课率控制限, metric: course.attendance_rate, level: course,
     unit: "%", direction: higher_is_better, window: 8, min_history: 5, k_yellow: 2, k_red: 3, cycle: week,
     freshness: 400d, responsible: course_teacher}
  - {id: school.budget_execution_progress, kind: progress, name: 预算执行进度, metric: school.budget_execution_rate,
     level: school, unit: "%", direction: higher_is_better, target: 100, standard: 75, warning: 90, cycle: month,
     freshness: 400d, responsible: office, office: 财务处}
  - {id: student.attendance_rate, name: 个人到课率, metric: student.attendance_rate, level: student, unit: "%",
     direction: higher_is_better, target: 95, standard: 80, warning: 90, cycle: week, freshness: 400d,
     responsible: counsellor}
  - {id: student.failed_courses, name: 不及格课程门数, metric: student.failed_courses, level: student, unit: 门,
     direction: lower_is_better, target: 0, standard: 3, warning: 1, cycle: term, responsible: counsellor}
  - {id: student.gpa, name: 学分绩点, metric: student.gpa, level: student, direction: higher_is_better, target: 3,
     standard: 1.5, warning: 2, cycle: term, responsible: counsellor}
  - {id: student.risk, kind: composite, name: 学生综合风险, metric: student.risk_score, level: student, unit: 项,
     direction: lower_is_better, cycle: week, freshness: 400d, responsible: counsellor, yellow: 1, red: 2,
     components: [{metric: student.attendance_rate}, {metric: student.failed_courses}, {metric: student.gpa}]}
"""


def obs(level: Level, entity: str, metric: str, value: float, period: str, at: datetime) -> Observation:
    return Observation(
        level=level, entity_id=entity, metric=metric, value=value, period=period, observed_at=at, source="test:kinds"
    )


def pass_rates(course: str, rates: list[float | None]) -> list[Observation]:
    return [
        obs(Level.course, course, "course.pass_rate", r, t, at)
        for r, t, at in zip(rates, T, GRADED, strict=True)
        if r is not None
    ]


def attendance(course: str, rates: list[float]) -> list[Observation]:
    return [
        obs(
            Level.course, course, "course.attendance_rate", r, w, datetime(2026, 7, 24, tzinfo=CST) + timedelta(weeks=i)
        )
        for i, (r, w) in enumerate(zip(rates, WEEKS, strict=False))
    ]


def student(sid: str, attendance_rate: float, failed: float | None, gpa: float | None) -> list[Observation]:
    out = [
        obs(
            Level.student,
            sid,
            "student.attendance_rate",
            attendance_rate,
            "2026-W37",
            datetime(2026, 9, 13, tzinfo=CST),
        )
    ]
    if failed is not None:
        out.append(obs(Level.student, sid, "student.failed_courses", failed, T[2], GRADED[2]))
    if gpa is not None:
        out.append(obs(Level.student, sid, "student.gpa", gpa, T[2], GRADED[2]))
    return out


# (rule, entity, period) → (band, value) or None (not judged). The cases cover the boundaries.
CASES = [
    # trend: exactly 3 falling terms; an equal value ends the run; a missing term: nothing to compare
    (pass_rates("C1", [96, 92, 85]), ("course.pass_rate_trend", "C1", T[2]), ("yellow", 3.0)),
    (pass_rates("C2", [90, 90, 85]), ("course.pass_rate_trend", "C2", T[2]), ("normal", 2.0)),
    (pass_rates("C3", [96, None, 85]), ("course.pass_rate_trend", "C3", T[2]), None),
    (pass_rates("C3", [96, None, 85]), ("course.pass_rate_trend", "C3", T[0]), None),  # the first period
    (pass_rates("C7", [97, 93, 88]), ("course.pass_rate_trend", "C7", T[2]), ("yellow", 3.0)),  # worker: last first
    # progress: the end of June (181/365 due) at 40 % → 80.7 % of schedule; the first day of the year
    (
        [obs(Level.school, "SCH", "school.budget_execution_rate", 40, "2026-06", datetime(2026, 7, 2, tzinfo=CST))],
        ("school.budget_execution_progress", "SCH", "2026-06"),
        ("yellow", 40.0),
    ),
    (
        [
            obs(
                Level.school,
                "SCH",
                "school.budget_execution_rate",
                0.1,
                "2026-01-01",
                datetime(2026, 1, 1, 20, tzinfo=CST),
            )
        ],
        ("school.budget_execution_progress", "SCH", "2026-01-01"),
        ("red", 0.1),
    ),
    # composite: two of three components breaching (red at 2: failed courses yellow, GPA red); one; none
    (student("S1", 96, 3, 1.0), ("student.risk", "S1", "2026-W37"), ("red", 2.0)),
    (student("S2", 70, 0, None), ("student.risk", "S2", "2026-W37"), ("yellow", 1.0)),
    (student("S3", 99, 0, 3.5), ("student.risk", "S3", "2026-W37"), ("excellent", 0.0)),
    # control: σ 2 around 90; exactly on the 2σ line is inside; below 3σ is red
    (attendance("C4", [88, 92, 88, 92, 88, 92, 86]), ("course.attendance_control", "C4", WEEKS[6]), ("normal", 86.0)),
    (attendance("C5", [88, 92, 88, 92, 88, 92, 83.9]), ("course.attendance_control", "C5", WEEKS[6]), ("red", 83.9)),
    (attendance("C6", [88, 92, 88, 92, 88]), ("course.attendance_control", "C6", WEEKS[4]), None),  # 4 weeks before it
]
KIND_RULES = ("course.pass_rate_trend", "school.budget_execution_progress", "student.risk", "course.attendance_control")


def directory() -> list[Entity]:
    out = [
        Entity(id="SCH", kind=EntityKind.school, name="学校"),
        Entity(id="D1", kind=EntityKind.department, name="信息工程学院", parent_id="SCH"),
        Entity(id="M1", kind=EntityKind.major, name="专业", parent_id="D1"),
        Entity(id="K1", kind=EntityKind.class_, name="一班", parent_id="M1"),
    ]
    out += [Entity(id=f"C{i}", kind=EntityKind.course, name=f"课程{i}", parent_id="M1") for i in range(1, 8)]
    out += [Entity(id=f"S{i}", kind=EntityKind.student, name=f"学生{i}", parent_id="K1") for i in range(1, 4)]
    return out


def observations() -> list[Observation]:
    seen, out = set(), []
    for batch, _, _ in CASES:
        for o in batch:
            if o.key not in seen:
                seen.add(o.key)
                out.append(o)
    return out


def kind_verdicts(engine) -> dict[tuple[str, str, str], tuple[str, float]]:
    with engine.connect() as c:
        rows = c.execute(text("SELECT rule_id, entity_id, period, band, value FROM verdicts ORDER BY id")).all()
    return {(r, e, p): (b, round(v, 6)) for r, e, p, b, v in rows if r in KIND_RULES}


@pytest.fixture
def rulebook(tmp_path) -> Path:
    folder = tmp_path / "rulebook"
    folder.mkdir()
    (folder / "kinds.yaml").write_text(RULEBOOK, encoding="utf-8")
    return folder


def judged_cases(verdicts: dict) -> dict:
    """The table's keys as judged: (band, value), or None when not judged."""
    return {key: verdicts.get(key) for _, key, _ in CASES}


def expected() -> dict:
    return {key: want for _, key, want in CASES}


def stored(engine) -> int:
    with engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM observations WHERE source = 'test:kinds'")).scalar() or 0


def test_the_embedded_runner_judges_the_table(rulebook, tmp_path):
    store = WarningStore(f"sqlite:///{tmp_path / 'embedded.sqlite'}")
    store.create_schema()
    pipeline = Pipeline(store, load_rulebook(rulebook), clock=lambda: datetime(2026, 9, 20, tzinfo=UTC))
    pipeline.deliver(directory())
    pipeline.deliver(observations())
    assert judged_cases(kind_verdicts(store.engine)) == expected()
    with store.engine.connect() as c:
        reasons = {
            (r, e, p): t for r, e, p, t in c.execute(text("SELECT rule_id, entity_id, period, reason FROM verdicts"))
        }
    assert (
        reasons[("course.pass_rate_trend", "C1", T[2])]
        == "课程及格率连续下降：连续 3 学期下降：96% → 92% → 85%，黄色预警"
    )
    assert reasons[("school.budget_execution_progress", "SCH", "2026-01-01")].startswith(
        "预算执行进度：已完成 0.1%，按时间应完成 0.27%"
    )


def test_the_worker_judges_the_table_as_the_embedded_runner_and_keeps_history_across_a_restart(rulebook, env, tmp_path):
    store = WarningStore(f"sqlite:///{tmp_path / 'embedded.sqlite'}")
    store.create_schema()
    pipeline = Pipeline(store, load_rulebook(rulebook), clock=lambda: datetime(2026, 9, 20, tzinfo=UTC))
    pipeline.deliver(directory())
    pipeline.deliver(observations())
    embedded = kind_verdicts(store.engine)

    def send(records) -> None:
        p = producer(env.bootstrap)
        try:
            for r in records:
                topic = ENTITIES if isinstance(r, Entity) else OBSERVATIONS
                p.send(env.topic(topic), key=key_of(r), value=encode(r))
            p.flush()
        finally:
            p.close()

    # The last term of C1 and C5's last week arrive only after the first worker was killed.
    # C7's last term comes first and its two earlier terms after the restart: judged again then.
    late = {("C1", T[2]), ("C5", WEEKS[6]), ("C7", T[0]), ("C7", T[1])}
    first = [o for o in observations() if (o.entity_id, o.period) not in late]
    send(directory() + first)
    w = env.worker(rulebook=rulebook, evaluate_as_observed="true").start()
    wait_until(lambda: stored(env.engine) == len(first), 120, "the first observations judged and stored", w, every=0.5)
    w.kill(signal.SIGKILL)
    assert env.scalar("SELECT count(*) FROM metric_history WHERE entity_id IN ('C1', 'C5', 'C7')") == 2 + 6 + 1
    assert ("course.pass_rate_trend", "C7", T[2]) not in kind_verdicts(env.engine)  # nothing to compare with yet

    send([o for o in observations() if (o.entity_id, o.period) in late])
    w2 = env.worker(rulebook=rulebook, evaluate_as_observed="true").start()
    wait_until(lambda: stored(env.engine) == len(observations()), 120, "every observation judged", w2, every=0.5)
    worker = kind_verdicts(env.engine)
    assert worker == embedded  # every kind verdict, the table's and the periods between
    assert judged_cases(worker) == expected()
