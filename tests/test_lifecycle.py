"""The warning lifecycle as a pure state machine: every transition, table-driven where it fits."""

from datetime import UTC, datetime, timedelta

import pytest

from zhengai.ingest.records import Band, Direction, Thresholds, Verdict
from zhengai.rules.model import LifecyclePolicy
from zhengai.warnings.lifecycle import (
    Acknowledge,
    LifecycleError,
    MarkFalsePositive,
    Observe,
    Resolution,
    Review,
    StartImprovement,
    Status,
    Tick,
    Waive,
    step,
)
from zhengai.warnings.lifecycle import (
    TransitionKind as K,
)

T0 = datetime(2026, 9, 7, 8, tzinfo=UTC)
TH = Thresholds(direction=Direction.higher_is_better, target=98, standard=90, warning=95)
BAND_VALUE = {Band.excellent: 99.0, Band.normal: 96.0, Band.yellow: 93.0, Band.red: 80.0, Band.stale: None}


def week(n: int) -> str:
    return f"2026-W{n:02d}"


def verdict(n: int, band: Band, value: float | None = None, key: str | None = None) -> Verdict:
    value = BAND_VALUE[band] if value is None else value
    at = T0 + timedelta(weeks=n - 37)
    return Verdict(
        rule_id="course.attendance_rate",
        rule_version="v1",
        level="course",
        entity_id="C0001",
        metric="course.attendance_rate",
        period=week(n),
        value=value,
        thresholds=TH,
        band=band,
        reason=f"{band.value} {value}",
        observed_at=at,
        evaluated_at=at,
        observation_key=key or f"obs|C0001|{week(n)}",
    )


def run(series, policy=None, state=None):
    policy = policy or LifecyclePolicy()
    kinds = []
    for n, band, *value in series:
        state, ts = step(state, Observe(verdict(n, band, *value), policy))
        kinds += [t.kind for t in ts]
    return state, kinds


P2 = LifecyclePolicy(pending_periods=2)
R2 = LifecyclePolicy(recovery_periods=2)
MARGIN = LifecyclePolicy(recovery_margin=2.0)  # recovery needs ≥ 97 (inner line 95 + 2)


@pytest.mark.parametrize(
    "series, policy, kinds, status",
    [
        ([(40, Band.normal)], LifecyclePolicy(), [], None),
        ([(40, Band.yellow)], LifecyclePolicy(), [K.opened], Status.open),
        ([(40, Band.yellow), (41, Band.yellow)], LifecyclePolicy(), [K.opened], Status.open),
        ([(40, Band.yellow), (41, Band.red)], LifecyclePolicy(), [K.opened, K.severity_up], Status.open),
        ([(40, Band.red), (41, Band.yellow)], LifecyclePolicy(), [K.opened, K.severity_down], Status.open),
        ([(40, Band.red), (41, Band.excellent)], LifecyclePolicy(), [K.opened, K.recovered], Status.recovered),
        ([(40, Band.red), (41, Band.stale)], LifecyclePolicy(), [K.opened], Status.open),  # no data ≠ recovery
        ([(41, Band.red), (40, Band.normal)], LifecyclePolicy(), [K.opened], Status.open),  # late, older data
        ([(40, Band.red), (40, Band.red)], LifecyclePolicy(), [K.opened], Status.open),  # replay
        # pending: N consecutive breaching periods before opening; a normal period clears it
        ([(40, Band.yellow)], P2, [K.pending], Status.pending),
        ([(40, Band.yellow), (40, Band.yellow)], P2, [K.pending], Status.pending),  # same period twice ≠ 2 periods
        ([(40, Band.yellow), (41, Band.red)], P2, [K.pending, K.opened], Status.open),
        ([(40, Band.yellow), (41, Band.normal)], P2, [K.pending, K.cleared], Status.closed),
        # hysteresis: M consecutive periods past the recovery line
        ([(40, Band.red), (41, Band.normal)], R2, [K.opened], Status.open),
        ([(40, Band.red), (41, Band.normal), (42, Band.normal)], R2, [K.opened, K.recovered], Status.recovered),
        (
            [(40, Band.red), (41, Band.normal), (42, Band.yellow), (43, Band.normal)],
            R2,
            [K.opened, K.severity_down],
            Status.open,
        ),
        # margin: 96 is normal (≥ 95) but short of 97, so it does not count; 97 exactly does
        ([(40, Band.red), (41, Band.normal, 96.0)], MARGIN, [K.opened], Status.open),
        ([(40, Band.red), (41, Band.normal, 97.0)], MARGIN, [K.opened, K.recovered], Status.recovered),
        # a recovered warning that breaches again before review relapses into the same episode
        (
            [(40, Band.red), (41, Band.normal), (42, Band.yellow)],
            LifecyclePolicy(),
            [K.opened, K.recovered, K.relapsed],
            Status.open,
        ),
    ],
)
def test_observe(series, policy, kinds, status):
    state, got = run(series, policy)
    assert got == kinds
    assert (state.status if state else None) is status


def test_value_hovering_at_the_line_does_not_flap():
    # 94.9 / 95.1 alternate around the warning line: with a margin of 2 the warning stays open
    series = [(40, Band.yellow, 94.9)] + [
        (41 + i, Band.yellow if i % 2 else Band.normal, 94.9 if i % 2 else 95.1) for i in range(8)
    ]
    state, kinds = run(series, MARGIN)
    assert kinds == [K.opened] and state.status is Status.open and state.episode == 1
    # without hysteresis the same series flaps: recover, relapse, recover …
    _, flapping = run(series, LifecyclePolicy())
    assert flapping.count(K.recovered) == 4 and flapping.count(K.relapsed) == 4


def test_episode_numbering_and_late_history():
    state, _ = run([(40, Band.red), (41, Band.normal)])
    state, ts = step(state, Review("质量办", T0 + timedelta(weeks=5), require_measure=False))
    assert [t.kind for t in ts] == [K.reviewed] and state.resolution is Resolution.reviewed
    again, ts = step(state, Observe(verdict(40, Band.red, key="late")))  # a late breach from the closed episode
    assert ts == [] and again is state
    new, ts = step(state, Observe(verdict(43, Band.yellow)))
    assert [t.kind for t in ts] == [K.opened] and new.episode == 2 and new.opened_period == week(43)


def test_due_date_from_band_and_escalation_with_a_controlled_clock():
    policy = LifecyclePolicy(escalate_every_days=7)
    state, _ = run([(40, Band.red)], policy)
    opened = T0 + timedelta(weeks=3)
    assert state.due_date == opened + timedelta(days=7)  # red: 7 days to improve
    before, ts = step(state, Tick(state.due_date - timedelta(seconds=1), policy, timedelta(days=30)))
    assert ts == [] and before.status is Status.open
    esc, ts = step(state, Tick(state.due_date, policy, timedelta(days=30)))
    assert [t.kind for t in ts] == [K.escalated] and esc.status is Status.escalated and esc.escalation_level == 1
    same, ts = step(esc, Tick(state.due_date + timedelta(days=3), policy, timedelta(days=30)))
    assert ts == []  # not again until the next step
    esc2, ts = step(esc, Tick(state.due_date + timedelta(days=7), policy, timedelta(days=30)))
    assert esc2.escalation_level == 2 and ts[0].cause == "tick:escalated:2"


def test_a_late_tick_escalates_step_by_step_through_every_skipped_level():
    policy = LifecyclePolicy(escalate_every_days=7)
    state, _ = run([(40, Band.red)], policy)
    late, ts = step(state, Tick(state.due_date + timedelta(days=15), policy, timedelta(days=400)))
    # due, +7, +14 have passed: levels 1, 2 and 3, in order, each once
    assert [(t.kind, t.escalation_level, t.cause) for t in ts] == [
        (K.escalated, n, f"tick:escalated:{n}") for n in (1, 2, 3)
    ]
    assert late.escalation_level == 3 and late.next_escalation_at == state.due_date + timedelta(days=21)
    again, ts = step(late, Tick(state.due_date + timedelta(days=15, minutes=1), policy, timedelta(days=400)))
    assert ts == []
    top, ts = step(state, Tick(state.due_date + timedelta(days=300), policy, timedelta(days=400)))
    assert top.escalation_level == 4 and [t.escalation_level for t in ts] == [1, 2, 3, 4]
    assert step(top, Tick(state.due_date + timedelta(days=400), policy, timedelta(days=900)))[1] == []


def test_yellow_gets_the_longer_due_date():
    state, _ = run([(40, Band.yellow)])
    assert state.due_date == T0 + timedelta(weeks=3, days=14)


def test_people_actions():
    state, _ = run([(40, Band.red)])
    t1 = T0 + timedelta(weeks=3, hours=5)
    ack, ts = step(state, Acknowledge("T0001", t1))
    assert [t.kind for t in ts] == [K.acknowledged] and ack.acknowledged_at == t1 and ts[0].actor == "T0001"
    due = t1 + timedelta(days=20)
    imp, ts = step(ack, StartImprovement("T0001", t1, due, "调整授课时间，增加课堂签到"))
    assert [t.kind for t in ts] == [K.improvement_started] and imp.status is Status.improving
    assert imp.due_date == due and imp.next_escalation_at == due
    with pytest.raises(LifecycleError):
        step(imp, Acknowledge("T0001", t1))  # already acting on it
    with pytest.raises(LifecycleError):
        step(imp, Review("质量办", t1))  # 复评 only after recovery
    with pytest.raises(LifecycleError):
        step(ack, StartImprovement("T0001", t1, t1 - timedelta(days=1), "过去的期限"))
    rec, ts = step(imp, Observe(verdict(44, Band.excellent)))
    assert [t.kind for t in ts] == [K.recovered]
    closed, ts = step(rec, Review("Q001", t1 + timedelta(days=30), "复评：连续两周达标", measures=1))
    assert closed.status is Status.closed and closed.resolution is Resolution.reviewed


@pytest.mark.parametrize("status_series", [[(40, Band.red)], [(40, Band.yellow)]])
def test_false_positive_from_any_live_status_needs_a_reason(status_series):
    state, _ = run(status_series, P2 if status_series[0][1] is Band.yellow else LifecyclePolicy())
    with pytest.raises(LifecycleError):
        step(state, MarkFalsePositive("Q001", T0, " "))
    closed, ts = step(state, MarkFalsePositive("Q001", T0 + timedelta(days=30), "考勤机故障，数据缺失导致误报"))
    assert [t.kind for t in ts] == [K.false_positive]
    assert closed.resolution is Resolution.false_positive and closed.close_reason == "考勤机故障，数据缺失导致误报"
    with pytest.raises(LifecycleError):
        step(closed, MarkFalsePositive("Q001", T0, "again"))


def test_stale_and_data_resumed():
    policy = LifecyclePolicy(due_days={"red": 60, "yellow": 60})  # keep escalation out of this test
    state, _ = run([(40, Band.red)], policy)
    last = state.last_data_at
    fresh, ts = step(state, Tick(last + timedelta(days=14), policy, timedelta(days=14)))
    assert ts == [] and not fresh.stale  # exactly at the window is still fresh
    stale, ts = step(state, Tick(last + timedelta(days=15), policy, timedelta(days=14)))
    assert [t.kind for t in ts] == [K.stale] and stale.stale and stale.status is Status.open
    again, ts = step(stale, Tick(last + timedelta(days=16), policy, timedelta(days=14)))
    assert ts == []  # stale once
    resumed, ts = step(stale, Observe(verdict(44, Band.red)))
    assert [t.kind for t in ts] == [K.data_resumed] and not resumed.stale
    recovered, _ = run([(40, Band.red), (41, Band.excellent)], policy)
    assert step(recovered, Tick(recovered.last_data_at + timedelta(days=60), policy, timedelta(days=14)))[1] == []


def test_rule_versions_record_who_changed_which_threshold(tmp_path):
    import shutil

    from zhengai.rules.loader import default_rulebook_path, load_rulebook
    from zhengai.warnings.store import WarningStore

    store = WarningStore(f"sqlite:///{tmp_path / 'w.sqlite'}")
    store.create_schema()
    shutil.copytree(default_rulebook_path(), tmp_path / "rb")
    first = store.record_rule_versions(load_rulebook(tmp_path / "rb"), author="质量办 王老师", reason="首次发布", at=T0)
    assert len(first) >= 50 and all(r.changes == {} for r in first)
    assert store.record_rule_versions(load_rulebook(tmp_path / "rb"), author="x", reason="无变化", at=T0) == []
    course = tmp_path / "rb" / "course.yaml"
    text = course.read_text(encoding="utf-8")
    i = text.index("id: course.attendance_rate")
    j = text.index("standard: 90", i)
    course.write_text(text[:j] + "standard: 88" + text[j + len("standard: 90") :], encoding="utf-8")
    changed = store.record_rule_versions(
        load_rulebook(tmp_path / "rb"), author="质量办 王老师", reason="实训周口径调整", at=T0
    )
    assert [(r.rule_id, r.changes["standard"], r.reason) for r in changed] == [
        ("course.attendance_rate", [90.0, 88.0], "实训周口径调整")
    ]
    with pytest.raises(ValueError):
        store.record_rule_versions(load_rulebook(tmp_path / "rb"), author=" ", reason="x", at=T0)


def test_directory_upsert_latest_wins_and_keeps_contacts(tmp_path):
    from zhengai.ingest.records import Entity, Person
    from zhengai.warnings.store import WarningStore

    store = WarningStore(f"sqlite:///{tmp_path / 'd.sqlite'}")
    store.create_schema()
    store.directory.upsert(
        [
            Entity(id="SCH", kind="school", name="示范学院"),
            Person(id="T1", name="王老师", mobile="13812345678", email="w@example.edu.cn"),
        ]
    )
    store.directory.upsert(
        [
            Entity(id="SCH", kind="school", name="示范职业技术学院"),
            Person(id="T1", name="王老师", email="w2@example.edu.cn"),
        ]
    )
    d = store.directory.load()
    assert d.get("SCH").name == "示范职业技术学院"
    p = d.person("T1")
    assert (p.mobile, p.email) == ("13812345678", "w2@example.edu.cn")


# --- the loop policy (issue 12) -------------------------------------------------------------------


def test_recovery_needs_the_configured_periods_and_cycle_defaults():
    from zhengai.rules.model import CYCLE_RECOVERY_PERIODS

    weekly = LifecyclePolicy().for_cycle("week")
    assert weekly.recovery_periods == CYCLE_RECOVERY_PERIODS["week"] == 4 and weekly.max_due_days == 60
    assert LifecyclePolicy().for_cycle("term").recovery_periods == 1
    assert LifecyclePolicy(recovery_periods=2).for_cycle("week").recovery_periods == 2  # the rule's own wins
    good = [(41 + i, Band.normal) for i in range(3)]
    state, kinds = run([(40, Band.red)] + good, weekly)
    assert kinds == [K.opened] and state.status is Status.open and state.recovery_count == 3
    state, kinds = run([(44, Band.excellent)], weekly, state)
    assert kinds == [K.recovered] and state.status is Status.recovered
    # a breach in between restarts the count
    state, kinds = run(
        [
            (40, Band.red),
            (41, Band.normal),
            (42, Band.normal),
            (43, Band.red),
            (44, Band.normal),
            (45, Band.normal),
            (46, Band.normal),
        ],
        weekly,
    )
    assert K.recovered not in kinds and state.recovery_count == 3


def test_shipped_weekly_rules_need_more_than_one_week():
    from zhengai.rules.loader import load_rulebook

    rules = load_rulebook().rules.values()
    weekly = [r for r in rules if r.cycle == "week"]
    assert weekly and all(r.policy.recovery_periods > 1 for r in weekly)
    assert all(r.policy.max_due_days >= max(r.policy.due_days.red, r.policy.due_days.yellow) for r in rules)


def _recovered(acknowledge: bool):
    state, _ = run([(40, Band.red)])
    t1 = T0 + timedelta(weeks=3, hours=5)
    if acknowledge:
        state, _ = step(state, Acknowledge("T0001", t1))
    state, _ = run([(41, Band.normal)], LifecyclePolicy(), state)
    assert state.status is Status.recovered
    return state, t1


def test_no_close_without_acknowledgement_and_a_measure_or_a_waiver():
    state, t1 = _recovered(acknowledge=False)
    review = T0 + timedelta(weeks=6)
    with pytest.raises(LifecycleError) as exc:
        step(state, Review("Q001", review))
    assert "确认预警" in str(exc.value) and "登记改进措施" in str(exc.value)
    with pytest.raises(LifecycleError):
        step(state, Review("Q001", review, measures=1))  # a measure but no acknowledgement
    acked, ts = step(state, Acknowledge("T0001", review))  # a recovered warning can still be acknowledged
    assert [t.kind for t in ts] == [K.acknowledged] and acked.status is Status.recovered
    with pytest.raises(LifecycleError) as exc:
        step(acked, Review("Q001", review))
    assert "登记改进措施" in str(exc.value) and "确认预警" not in str(exc.value)
    closed, _ = step(acked, Review("Q001", review, measures=1))
    assert closed.status is Status.closed
    # or 质量办 waives, with a reason
    with pytest.raises(LifecycleError):
        step(state, Waive("Q001", review, " "))
    waived, ts = step(state, Waive("Q001", review, "数据口径调整所致，非教学问题"))
    assert (
        [t.kind for t in ts] == [K.waived] and waived.status is Status.recovered and ts[0].reason.startswith("数据口径")
    )
    closed, _ = step(waived, Review("Q001", review, waived=True))
    assert closed.resolution is Resolution.reviewed


def test_measures_on_recovered_and_improving_warnings_and_a_bounded_due_date():
    state, t1 = _recovered(acknowledge=True)
    due = t1 + timedelta(days=20)
    more, ts = step(state, StartImprovement("T0001", t1 + timedelta(days=1), due, "巩固：每周课前点名"))
    assert [t.kind for t in ts] == [K.measure_added] and more.status is Status.recovered
    opened, _ = run([(40, Band.red)])
    imp, ts = step(opened, StartImprovement("T0001", t1, due, "第一项措施"))
    assert [t.kind for t in ts] == [K.improvement_started]
    second, ts = step(imp, StartImprovement("T0001", t1 + timedelta(days=2), due + timedelta(days=5), "第二项措施"))
    assert [t.kind for t in ts] == [K.measure_added] and second.status is Status.improving
    assert second.due_date == due + timedelta(days=5)
    with pytest.raises(LifecycleError) as exc:
        step(
            opened,
            StartImprovement("T0001", t1, datetime(9999, 12, 31, tzinfo=UTC), "措施", max_due=t1 + timedelta(days=60)),
        )
    assert "最长限期" in str(exc.value)
    with pytest.raises(LifecycleError):
        step(opened, StartImprovement("T0001", t1, due, " "))  # an empty measure
