"""The warning store on real PostgreSQL: every lifecycle transition through the store, replay and
race idempotency, migrations, reporting views with known answers, and the read-only role."""

import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, ProgrammingError

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Entity, Person
from zhengai.rules.evaluator import evaluate, resolve_thresholds
from zhengai.rules.loader import load_rulebook
from zhengai.warnings.lifecycle import Acknowledge, MarkFalsePositive, Review, StartImprovement
from zhengai.warnings.migrate import current, head
from zhengai.warnings.schema import OutboxRow, VerdictRow, WarningEventRow, WarningRow
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
    lifecycle: {recovery_periods: 2, recovery_margin: 1.0, due_days: {red: 7, yellow: 14}, escalate_every_days: 7}
  - id: course.pass_rate
    name: 课程及格率
    metric: course.pass_rate
    level: course
    unit: "%"
    direction: higher_is_better
    target: 95
    standard: 80
    warning: 90
    cycle: term
    responsible: course_teacher
    lifecycle: {pending_periods: 2}
"""


def week(n: int) -> str:
    return f"2026-W{n:02d}"


@pytest.fixture
def rules(tmp_path):
    (tmp_path / "rb").mkdir()
    (tmp_path / "rb" / "course.yaml").write_text(RULEBOOK, encoding="utf-8")
    return load_rulebook(tmp_path / "rb")


@pytest.fixture
def directory():
    def p(i, n):
        return Person(id=i, name=n)

    recs = [
        Entity(id="SCH", kind="school", name="示范学院", responsible={"quality_office": p("Q001", "质量办")}),
        Entity(
            id="D01", kind="department", name="智能制造学院", parent_id="SCH", responsible={"dean": p("DN01", "院长")}
        ),
        Entity(id="D02", kind="department", name="信息工程学院", parent_id="SCH"),
        Entity(id="M0101", kind="major", name="机电一体化技术", parent_id="D01"),
        Entity(id="M0201", kind="major", name="软件技术", parent_id="D02"),
    ]
    for i, major in enumerate(["M0101", "M0101", "M0201"], 1):
        recs.append(
            Entity(
                id=f"C{i:04d}",
                kind="course",
                name=f"课程{i}",
                parent_id=major,
                responsible={"course_teacher": p(f"T{i:04d}", f"教师{i}")},
            )
        )
    return Directory(recs)


@pytest.fixture
def store(pg_url):
    s = WarningStore(pg_url)
    s.create_schema()
    yield s
    s.engine.dispose()


@pytest.fixture
def service(store, rules, directory):
    store.directory.upsert(
        [directory.get(e) for e in ("SCH", "D01", "D02", "M0101", "M0201", "C0001", "C0002", "C0003")], directory
    )
    store.directory.upsert([directory.person(p) for p in ("Q001", "DN01", "T0001", "T0002", "T0003")])
    return WarningService(store, lambda: rules, lambda: directory, channels=("memory",))


def V(rules, n, value, course="C0001", rule="course.attendance_rate", period=None, lineage=None):
    r = rules.rules[rule]
    at = T0 + timedelta(weeks=n - 37)
    return evaluate(
        r,
        resolve_thresholds(r, {}, ()),
        value=value,
        entity_id=course,
        period=period or week(n),
        observed_at=at,
        now=at,
        observation_key=f"obs|{rule}|{course}|{period or week(n)}",
    )


def kinds(store, warning_id):
    return [e.kind for e in store.read.events(warning_id)]


def test_migrations_reach_head_and_are_repeatable(store):
    assert current(store.engine) == head() == "0013"
    store.create_schema()  # again: a no-op
    with store.engine.connect() as c:
        views = set(
            c.execute(text("SELECT table_name FROM information_schema.views WHERE table_schema='reporting'")).scalars()
        )
    assert views - {"daily_counts_cagg", "indicator_values_cagg"} == {  # the aggregates: TimescaleDB only
        "open_warnings",
        "daily_counts",
        "warning_timings",
        "response_times",
        "improvement_closure",
        "false_positive_rules",
        "indicator_values",
        "indicator_portrait",
        "improvement_loop",
        "data_freshness",
    }  # the last three: 0013


def test_open_severity_ack_improve_escalate_recover_review(service, store, rules):
    service.handle([V(rules, 40, 93.0)])  # yellow
    [w] = store.read.warnings()
    assert (w.status, w.band, w.responsible_person_id, w.due_date) == (
        "open",
        "yellow",
        "T0001",
        T0 + timedelta(weeks=3, days=14),
    )
    service.handle([V(rules, 41, 85.0)])  # red
    t_ack = T0 + timedelta(weeks=4, hours=3)
    service.act(w.id, Acknowledge("T0001", t_ack))
    due = t_ack + timedelta(days=10)
    service.act(
        w.id, StartImprovement("T0001", t_ack, due, "调整上课时段，课前签到"), evidence=["https://pan.example.edu.cn/x"]
    )
    [imp] = store.read.improvements(w.id)
    assert (imp.owner_id, imp.value_before, imp.evidence) == ("T0001", 85.0, ["https://pan.example.edu.cn/x"])
    # escalation exactly at the due date, with a controlled clock
    assert service.tick(due - timedelta(minutes=1)) == []
    escalated = service.tick(due)
    assert [a.transition.kind.value for a in escalated] == ["escalated"]
    assert store.read.warning(w.id).escalation_level == 1
    # hysteresis: margin 1 over the inner line 95 → needs ≥ 96 for two consecutive weeks
    service.handle([V(rules, 42, 95.5)])  # normal, but short of the recovery line
    service.handle([V(rules, 43, 96.0)])  # counts 1
    assert store.read.warning(w.id).status == "escalated"
    service.handle([V(rules, 44, 99.0)])  # counts 2 → recovered
    assert store.read.warning(w.id).status == "recovered"
    store.measure_effects([w.id], T0 + timedelta(weeks=8))
    [imp] = store.read.improvements(w.id)
    assert imp.value_after == 99.0 and "85 变为 99" in imp.effect
    service.act(w.id, Review("Q001", T0 + timedelta(weeks=9), "复评通过"))
    final = store.read.warning(w.id)
    assert (final.status, final.resolution) == ("closed", "reviewed")
    assert kinds(store, w.id) == [
        "opened",
        "severity_up",
        "acknowledged",
        "improvement_started",
        "escalated",
        "recovered",
        "reviewed",
    ]
    events = store.read.events(w.id)
    assert events[2].actor == "T0001" and events[4].cause == "tick:escalated:1"


def test_hysteresis_at_the_boundary(service, store, rules):
    service.handle([V(rules, 40, 89.0)])
    # 95.99 is normal (≥ 95) but one hundredth short of the recovery line 96; 96.0 exactly counts
    service.handle([V(rules, 41, 95.99)])
    service.handle([V(rules, 42, 96.0)])
    assert store.read.warnings()[0].status == "open"
    service.handle([V(rules, 43, 96.0)])
    assert store.read.warnings()[0].status == "recovered"


def test_pending_periods(service, store, rules):
    pr = "course.pass_rate"
    service.handle([V(rules, 40, 70.0, rule=pr, period="2025-2026-1")])
    [w] = store.read.warnings()
    assert w.status == "pending" and store.read.count(OutboxRow) == 0  # not yet notified
    service.handle([V(rules, 40, 75.0, rule=pr, period="2025-2026-2")])
    assert store.read.warning(w.id).status == "open" and kinds(store, w.id) == ["pending", "opened"]
    assert store.read.count(OutboxRow) == 1
    # a pending breach that clears is closed as cleared
    service.handle(
        [
            V(rules, 40, 70.0, rule=pr, course="C0002", period="2025-2026-1"),
            V(rules, 40, 92.0, rule=pr, course="C0002", period="2025-2026-2"),
        ]
    )
    w2 = [x for x in store.read.warnings() if x.entity_id == "C0002"][0]
    assert (w2.status, w2.resolution) == ("closed", "cleared")


def test_stale_detection_and_false_positive(service, store, rules):
    service.handle([V(rules, 40, 80.0)])
    [w] = store.read.warnings()
    last = store.read.warning(w.id).last_data_at
    assert "stale" not in [a.transition.kind.value for a in service.tick(last + timedelta(days=14))]
    stale = service.tick(last + timedelta(days=15))
    assert "stale" in [a.transition.kind.value for a in stale] and store.read.warning(w.id).stale
    service.act(w.id, MarkFalsePositive("Q001", last + timedelta(days=16), "考勤机故障导致缺数"))
    final = store.read.warning(w.id)
    assert (final.status, final.resolution, final.close_reason) == ("closed", "false_positive", "考勤机故障导致缺数")


def test_replay_is_idempotent(service, store, rules):
    batch = [V(rules, 40, 93.0), V(rules, 41, 85.0), V(rules, 42, 99.0), V(rules, 43, 99.0)]
    first = service.handle(batch)
    assert [a.transition.kind.value for a in first] == ["opened", "severity_up", "recovered"]
    counts = (
        store.read.count(VerdictRow),
        store.read.count(WarningRow),
        store.read.count(WarningEventRow),
        store.read.count(OutboxRow),
    )
    assert service.handle(batch) == [] and service.handle(list(reversed(batch))) == []
    assert (
        store.read.count(VerdictRow),
        store.read.count(WarningRow),
        store.read.count(WarningEventRow),
        store.read.count(OutboxRow),
    ) == counts


def test_two_workers_racing_never_duplicate(pg_url, rules, directory):
    stores = [WarningStore(pg_url) for _ in range(4)]  # four workers, four connection pools
    stores[0].create_schema()
    services = [WarningService(s, lambda: rules, lambda: directory, channels=("memory",)) for s in stores]
    batches = [
        [V(rules, n, 80.0 if n % 3 else 99.0, course=c) for n in range(38, 50)] for c in ("C0001", "C0002", "C0003")
    ]
    flat = [v for b in batches for v in b]
    errors = []
    barrier = threading.Barrier(4)

    def worker(svc, verdicts):
        try:
            barrier.wait()
            for i in range(0, len(verdicts), 5):
                svc.handle(verdicts[i : i + 5])
        except Exception as exc:  # noqa: BLE001 — surfaced by the assertion below
            errors.append(exc)

    # four workers each process everything concurrently (redelivery after a rebalance)
    threads = [threading.Thread(target=worker, args=(services[i], flat)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    s = stores[0]
    with s.engine.connect() as c:
        dup_w = c.execute(
            text(
                "SELECT count(*) FROM (SELECT rule_id, entity_id, episode FROM warnings GROUP BY 1,2,3"
                " HAVING count(*) > 1) x"
            )
        ).scalar()
        dup_e = c.execute(
            text(
                "SELECT count(*) FROM (SELECT warning_id, kind, cause FROM warning_events GROUP BY 1,2,3"
                " HAVING count(*) > 1) x"
            )
        ).scalar()
        per_course = dict(c.execute(text("SELECT entity_id, count(*) FROM warnings GROUP BY 1")).all())
    assert dup_w == 0 and dup_e == 0
    # each course: breaches in 2 of every 3 weeks, a single good week (99) recovers only after 2 good periods
    # → the series never holds two good weeks in a row, so exactly one episode each
    assert per_course == {"C0001": 1, "C0002": 1, "C0003": 1}
    assert s.read.count(VerdictRow) == len(flat)
    for st in stores:
        st.engine.dispose()


def _fixture_for_views(service, store, rules):
    """Known answers: C0001 (D01) yellow→ack after 2 h→recovered after 2 weeks; C0002 (D01) red,
    improvement, false positive; C0003 (D02) red, open."""
    service.handle(
        [V(rules, 40, 93.0, course="C0001"), V(rules, 40, 80.0, course="C0002"), V(rules, 40, 70.0, course="C0003")]
    )
    ws = {w.entity_id: w for w in store.read.warnings()}
    opened = ws["C0001"].opened_at
    service.act(ws["C0001"].id, Acknowledge("T0001", opened + timedelta(hours=2)))
    service.act(
        ws["C0001"].id, StartImprovement("T0001", opened + timedelta(hours=2), opened + timedelta(days=20), "补课")
    )
    service.handle([V(rules, 41, 99.0, course="C0001"), V(rules, 42, 99.0, course="C0001")])
    service.act(
        ws["C0002"].id, StartImprovement("T0002", opened + timedelta(hours=5), opened + timedelta(days=20), "核查")
    )
    service.act(ws["C0002"].id, MarkFalsePositive("Q001", opened + timedelta(days=1), "课程停开，名单未更新"))
    return ws, opened


def test_reporting_views_have_the_expected_numbers(service, store, rules):
    ws, opened = _fixture_for_views(service, store, rules)
    with store.engine.connect() as c:

        def q(sql):
            return c.execute(text(sql)).mappings().all()

        open_rows = q(
            "SELECT entity_id, entity_name, department_name, responsible_name, status, band"
            " FROM reporting.open_warnings ORDER BY entity_id"
        )
        assert [
            (r["entity_id"], r["department_name"], r["responsible_name"], r["status"], r["band"]) for r in open_rows
        ] == [
            ("C0001", "智能制造学院", "教师1", "recovered", "excellent"),
            ("C0003", "信息工程学院", "教师3", "open", "red"),
        ]
        daily = q(
            "SELECT day, level, band, department_name, opened"
            " FROM reporting.daily_counts ORDER BY department_name, band"
        )
        day = (opened + timedelta(hours=8)).date()
        assert [(r["day"], r["level"], r["band"], r["department_name"], r["opened"]) for r in daily] == [
            (day, "course", "red", "信息工程学院", 1),
            (day, "course", "red", "智能制造学院", 1),
            (day, "course", "yellow", "智能制造学院", 1),
        ]
        timing = q("SELECT id, hours_to_acknowledge, hours_to_recover FROM reporting.warning_timings ORDER BY id")
        first = next(r for r in timing if r["id"] == ws["C0001"].id)
        assert first["hours_to_acknowledge"] == pytest.approx(2.0)
        assert first["hours_to_recover"] == pytest.approx(14 * 24.0)
        rt = q("SELECT warnings, acknowledged, recovered, avg_hours_to_acknowledge FROM reporting.response_times")
        assert [(r["warnings"], r["acknowledged"], r["recovered"]) for r in rt] == [(3, 2, 1)]
        closure = q(
            "SELECT department_name, improvements, closed, closure_rate"
            " FROM reporting.improvement_closure ORDER BY department_name"
        )
        assert [(r["department_name"], r["improvements"], r["closed"], float(r["closure_rate"])) for r in closure] == [
            ("智能制造学院", 2, 1, 50.0)
        ]
        fp = q(
            "SELECT rule_id, warnings, false_positives, false_positive_rate, reasons"
            " FROM reporting.false_positive_rules"
        )
        assert [
            (r["rule_id"], r["warnings"], r["false_positives"], float(r["false_positive_rate"]), r["reasons"])
            for r in fp
        ] == [("course.attendance_rate", 3, 1, 33.3, "课程停开，名单未更新")]


@contextmanager
def readonly_engine(store, pg_url):
    """A Grafana-like login that is a member of zhengai_readonly, for the duration of a test."""
    url = make_url(pg_url)
    login = f"grafana_{url.database[-8:]}"
    with store.engine.begin() as c:
        c.execute(text(f"DROP ROLE IF EXISTS {login}"))
        c.execute(text(f"CREATE ROLE {login} LOGIN PASSWORD 'grafana-test' IN ROLE zhengai_readonly"))
        c.execute(text(f"GRANT CONNECT ON DATABASE {url.database} TO {login}"))
    reader = create_engine(url.set(username=login, password="grafana-test"))
    try:
        yield reader
    finally:
        reader.dispose()
        with store.engine.begin() as c:
            c.execute(text(f"REVOKE CONNECT ON DATABASE {url.database} FROM {login}"))
            c.execute(text(f"DROP ROLE {login}"))


def test_readonly_role_reads_views_only(service, store, rules, pg_url):
    _fixture_for_views(service, store, rules)
    with readonly_engine(store, pg_url) as reader, reader.connect() as c:
        assert c.execute(text("SELECT count(*) FROM reporting.open_warnings")).scalar() == 2
        for sql in (
            "SELECT * FROM warnings",
            "SELECT * FROM persons",
            "SELECT * FROM improvements",
            "INSERT INTO warnings (id) VALUES (999)",
            "UPDATE warnings SET status = 'closed'",
            "CREATE TABLE reporting.x (a int)",
            "CREATE TABLE public.x (a int)",
        ):
            with pytest.raises(ProgrammingError, match="permission denied"):
                c.execute(text(sql))
            c.rollback()
        # the views themselves are read-only (joins and aggregates are not updatable)
        with pytest.raises(DBAPIError, match="permission denied|not automatically updatable"):
            c.execute(text("DELETE FROM reporting.open_warnings"))
        c.rollback()


DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards" / "zhengai-overview.json"


def _expand(sql: str, departments: list[str]) -> str:
    """Grafana's macros and template variables, expanded as Grafana's PostgreSQL source does."""
    import re

    sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 BETWEEN '2026-01-01T00:00:00Z' AND '2027-01-01T00:00:00Z'", sql)
    quoted = ",".join("'" + d.replace("'", "''") + "'" for d in departments)
    return sql.replace("${department}", quoted).replace("$department", quoted)


def test_every_dashboard_panel_runs_as_the_readonly_role(service, store, rules, pg_url):
    import json

    _fixture_for_views(service, store, rules)
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dash["title"].startswith("诊改") and all(not p["title"].isascii() for p in dash["panels"])
    with readonly_engine(store, pg_url) as reader, reader.connect() as c:
        var = dash["templating"]["list"][0]
        departments = list(c.execute(text(var["query"])).scalars())
        assert departments == ["信息工程学院", "智能制造学院"]
        results = {}
        for panel in dash["panels"]:
            for t in panel["targets"]:
                rows = c.execute(text(_expand(t["rawSql"], departments))).all()
                assert rows, f"panel {panel['title']} returned nothing"
                results[panel["title"]] = rows
    assert results["未关闭预警（红色）"][0][0] == 1  # C0003
    assert results["改进闭环率（%）"][0][0] == 50.0
    assert [r[0] for r in results["误报最多的规则"]] == ["学生到课率"]
    assert sum(r[2] for r in results["每日新增预警"]) == 3


def test_storage_path_follows_the_detected_capability(store):
    """On plain PostgreSQL (CI: TimescaleDB is in no registry these machines reach): no extension,
    plain tables, date_trunc buckets in the views. Where the extension is usable (deploy/compose's
    timescale image; tests/test_store_timescale.py runs this test there) revision 0006 converts
    the time series and the views read continuous aggregates."""
    from zhengai.warnings.capabilities import day_bucket, detect

    with store.engine.connect() as c:
        caps = detect(c)
        hypertables = c.execute(text("SELECT count(*) FROM pg_class WHERE relname = 'hypertable'")).scalar()
        view_sql = c.execute(text("SELECT pg_get_viewdef('reporting.daily_counts'::regclass)")).scalar()
    if caps.timescale:
        assert "daily_counts_cagg" in view_sql and hypertables > 0
    else:
        assert hypertables == 0
        assert "date_trunc" in view_sql and "Asia/Shanghai" in view_sql
        assert day_bucket(caps, "x") == "date_trunc('day', x AT TIME ZONE 'Asia/Shanghai')::date"


def test_observations_upsert_latest_wins_on_postgres(store):
    from zhengai.ingest.records import Observation
    from zhengai.warnings.schema import ObservationRow

    def obs(key, value):
        return Observation(
            level="course",
            entity_id="C0001",
            metric="course.pass_rate",
            value=value,
            period="2025-2026-2",
            observed_at=T0,
            source="t",
            key=key,
        )

    assert store.observations.add([obs("k1", 70.0), obs("k2", 80.0), obs("k1", 71.0)]) == 2  # in-batch: latest wins
    assert store.observations.add([obs("k1", 71.0), obs("k2", 80.0)]) == 0  # replay writes nothing
    assert store.observations.add([obs("k2", 85.0)]) == 1  # a correction
    with store.session() as s:
        assert sorted((r.key, r.value) for r in s.query(ObservationRow)) == [("k1", 71.0), ("k2", 85.0)]


def _observation(course, value, period="2026-W40", key=None):
    from zhengai.ingest.records import Observation

    return Observation(
        level="course",
        entity_id=course,
        metric="course.attendance_rate",
        value=value,
        period=period,
        observed_at=T0,
        source="t",
        key=key or f"t|{course}|{period}",
    )


def test_indicator_values_per_period_level_department(service, store):
    """Known answers, on whichever backend the store runs (plain view, or TimescaleDB's aggregate)."""
    from zhengai.ingest.records import period_start

    store.observations.add(
        [
            _observation("C0001", 90.0),
            _observation("C0002", 80.0),
            _observation("C0003", 70.0),
            _observation("C0001", 60.0, period="2026-W41"),
        ]
    )
    store.observations.add([_observation("C0002", 84.0)])  # a correction: latest wins
    with store.engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT period, period_start, level, metric, department_name, observations, avg_value, "
                "min_value, max_value FROM reporting.indicator_values ORDER BY period, department_name"
            )
        ).all()
    w40, w41 = period_start("2026-W40"), period_start("2026-W41")
    assert [tuple(r) for r in rows] == [
        ("2026-W40", w40, "course", "course.attendance_rate", "信息工程学院", 1, 70.0, 70.0, 70.0),
        ("2026-W40", w40, "course", "course.attendance_rate", "智能制造学院", 2, 87.0, 84.0, 90.0),
        ("2026-W41", w41, "course", "course.attendance_rate", "智能制造学院", 1, 60.0, 60.0, 60.0),
    ]


def test_idempotency_keys_carry_the_period_start(store):
    from zhengai.ingest.records import period_start

    store.observations.add([_observation("C0001", 90.0, period="2025-2026-1")])
    with store.engine.connect() as c:
        assert c.execute(text("SELECT period_start FROM observations")).scalar() == period_start("2025-2026-1")
        uniques = set(
            c.execute(
                text(
                    "SELECT conname FROM pg_constraint WHERE contype = 'u'"
                    " AND conrelid IN ('observations'::regclass, 'verdicts'::regclass)"
                )
            ).scalars()
        )
    assert uniques == {"uq_observation_key", "uq_verdict_key"}
    assert period_start("2025-2026-1") == datetime(2025, 9, 1, tzinfo=timezone(timedelta(hours=8)))


def test_migrate_command_on_plain_postgres_says_what_it_did(pg_url):
    """`zhengai warnings migrate` where TimescaleDB is not packaged: plain tables, no warning, no
    traceback; the capability probe runs on its own connection and leaves the migration's alone."""
    import os
    import subprocess
    import sys

    from zhengai.warnings.capabilities import probe_timescale

    env = {**os.environ, "ZHENGAI_STORE_URL": pg_url, "PYTHONSAFEPATH": "1"}
    for _ in range(2):  # and again: a no-op
        done = subprocess.run(
            [sys.executable, "-m", "zhengai", "warnings", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "WARNING" not in done.stderr
        assert done.stdout.startswith(f"store schema at revision {head()} (postgresql); PostgreSQL ")
        assert "plain tables and reporting views" in done.stdout
    engine = create_engine(pg_url)
    try:
        with engine.connect() as mine:
            probe = probe_timescale(engine)
            assert (probe.usable, probe.problem) == (False, None)
            assert mine.execute(text("SELECT 1")).scalar() == 1  # still usable, nothing pending
    finally:
        engine.dispose()


def test_a_failing_notification_callback_writes_nothing(store, rules):
    """The lifecycle runs while the verdicts stream to the server: a callback that fails abandons
    the whole batch with its own error, and the batch can be applied again."""

    def boom(row, t):
        raise RuntimeError("通知模板渲染失败")

    batch = [V(rules, 40, 80.0), V(rules, 41, 85.0)]
    with pytest.raises(RuntimeError, match="通知模板渲染失败"):
        store.apply_verdicts(batch, rule_names={}, responsible=lambda v: (None, None), on_transition=boom)
    assert (store.read.count(VerdictRow), store.read.count(WarningRow), store.read.count(WarningEventRow)) == (0, 0, 0)
    applied = store.apply_verdicts(batch, rule_names={}, responsible=lambda v: (None, None))
    assert [a.transition.kind.value for a in applied] == ["opened"] and store.read.count(VerdictRow) == 2
