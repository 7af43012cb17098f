"""Table-driven tests of the rule kinds (trend, progress, composite, control): the pure judges,
the calendar they use, the batch entry (history merged with the batch) and the loader's lint."""

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from zhengai.ingest.records import Band, Level, Observation
from zhengai.rules.calendar import elapsed_share, last_year_period, period_days, previous_period, span_of
from zhengai.rules.kinds import CompositeRule, ControlRule, ProgressRule, TrendRule, parse_rule
from zhengai.rules.kinds_eval import (
    Point,
    evaluate_kinds,
    judge_composite,
    judge_control,
    judge_progress,
    judge_trend,
    merge,
)
from zhengai.rules.loader import RulebookError, load_rulebook

CST = timezone(timedelta(hours=8))
T = ["2023-2024-1", "2023-2024-2", "2024-2025-1", "2024-2025-2", "2025-2026-1"]


def trend(**kw) -> TrendRule:
    base = dict(
        kind="trend",
        id="course.pass_rate_trend",
        name="课程合格率连续下降",
        metric="course.pass_rate",
        level="course",
        unit="学期",
        value_unit="%",
        direction="higher_is_better",
        cycle="term",
        responsible="course_teacher",
        yellow=3,
        red=4,
    )
    base.update(kw)
    rule = parse_rule(base)
    assert isinstance(rule, TrendRule)
    return rule


# --- calendar -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "period, before, last_year",
    [
        ("2025-2026-1", "2024-2025-2", "2024-2025-1"),
        ("2025-2026-2", "2025-2026-1", "2024-2025-2"),
        ("2026-01", "2025-12", "2025-01"),
        ("2026", "2025", "2025"),
        ("2026-W01", "2025-W52", "2025-W01"),
        ("2021-W01", "2020-W53", "2020-W01"),
        ("2020-W53", "2020-W52", "2019-W52"),  # 2019 has no week 53
        ("2024-02-29", "2024-02-28", "2023-02-28"),
        ("2026-03-01", "2026-02-28", "2025-03-01"),
    ],
)
def test_period_steps(period, before, last_year):
    assert previous_period(period) == before
    assert last_year_period(period) == last_year


@pytest.mark.parametrize(
    "span, day, skip, share",
    [
        ("2026", date(2026, 1, 1), (), 1 / 365),  # the first day counts as one day done
        ("2026", date(2026, 12, 31), (), 1.0),  # the last day is the whole span
        ("2026", date(2026, 6, 30), (7, 8), 181 / 303),
        ("2026", date(2026, 7, 15), (7, 8), 181 / 303),  # a skipped month adds nothing
        ("2026", date(2026, 9, 1), (7, 8), 182 / 303),
        ("2025-2026-1", date(2025, 9, 1), (), 1 / 153),
        ("2025-2026-1", date(2026, 1, 31), (), 1.0),
        ("2025-2026-2", date(2026, 6, 30), (7, 8), 1.0),  # term 2 without the summer ends in June
        ("2026", date(2025, 12, 31), (), 0.0),  # before the span: nothing elapsed
    ],
)
def test_elapsed_share(span, day, skip, share):
    assert elapsed_share(span, day, skip) == pytest.approx(share)


def test_span_of_and_period_days():
    assert span_of(date(2026, 1, 20), "term") == "2025-2026-1"
    assert span_of(date(2026, 2, 1), "term") == "2025-2026-2"
    assert span_of(date(2026, 9, 1), "term") == "2026-2027-1"
    assert period_days("2026-02") == (date(2026, 2, 1), date(2026, 2, 28))
    assert period_days("2026-W37") == (date(2026, 9, 7), date(2026, 9, 13))


# --- trend --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values, value, band, count, words",
    [
        ({T[2]: 82, T[3]: 79}, 75, Band.yellow, 3, "连续 3 学期下降：82% → 79% → 75%"),  # exactly N (3)
        ({T[1]: 85, T[2]: 82, T[3]: 79}, 75, Band.red, 4, "连续 4 学期下降：85% → 82% → 79% → 75%"),
        ({T[2]: 80, T[3]: 79}, 75, Band.yellow, 3, "连续 3 学期下降：80% → 79% → 75%"),
        ({T[2]: 79, T[3]: 79}, 75, Band.normal, 2, "连续 2 学期下降：79% → 75%"),  # an equal value ends the run
        ({T[3]: 79}, 79, Band.excellent, 0, "较上期未下降：79% → 79%"),  # equal: no decline
        ({T[3]: 70}, 75, Band.excellent, 0, "较上期未下降：70% → 75%"),
        ({T[1]: 90, T[3]: 79}, 75, Band.normal, 2, None),  # a missing period breaks the run
    ],
)
def test_trend_consecutive(values, value, band, count, words):
    judged = judge_trend(trend(), T[4], value, values)
    assert judged is not None
    assert (judged.band, judged.value) == (band, count)
    if words:
        assert judged.explanation == words


@pytest.mark.parametrize("values", [{}, {T[2]: 80}])  # the first period; the one before missing
def test_trend_without_a_base_judges_nothing(values):
    assert judge_trend(trend(), T[4], 75, values) is None


@pytest.mark.parametrize(
    "rule_kw, values, value, band, adverse",
    [
        (dict(measure="change", yellow=3, red=5, unit="个百分点"), {T[3]: 80}, 77, Band.yellow, 3),  # exactly yellow
        (dict(measure="change", yellow=3, red=5, unit="个百分点"), {T[3]: 80}, 77.5, Band.normal, 2.5),
        (dict(measure="change", yellow=3, red=5, unit="个百分点"), {T[3]: 80}, 75, Band.red, 5),
        (dict(measure="change", yellow=3, red=5, unit="个百分点"), {T[3]: 80}, 83, Band.excellent, -3),
        (dict(measure="change_pct", yellow=5, red=10, unit="%"), {T[3]: 80}, 76, Band.yellow, 5),
        (dict(measure="change_pct", yellow=5, red=10, unit="%"), {T[3]: 0}, 5, None, None),  # no base to divide by
        # "must improve year on year" (逐年提高): no improvement is yellow, equal included
        (dict(measure="change", compare="last_year", yellow=0, red=2, unit="个百分点"), {T[2]: 80}, 80, Band.yellow, 0),
        (
            dict(measure="change", compare="last_year", yellow=0, red=2, unit="个百分点"),
            {T[2]: 80},
            80.5,
            Band.excellent,
            -0.5,
        ),
        (dict(measure="change", compare="last_year", yellow=0, red=2, unit="个百分点"), {T[3]: 80}, 70, None, None),
        # lower is better: a rise is the adverse move
        (dict(measure="change", direction="lower_is_better", yellow=1, red=2, unit="起"), {T[3]: 1}, 3, Band.red, 2),
    ],
)
def test_trend_change(rule_kw, values, value, band, adverse):
    judged = judge_trend(trend(**rule_kw), T[4], value, values)
    if band is None:
        assert judged is None
    else:
        assert judged is not None and (judged.band, judged.value) == (band, adverse)


def test_trend_last_year_consecutive_and_words():
    r = trend(compare="last_year", yellow=2, red=3)
    judged = judge_trend(r, T[4], 70, {T[0]: 90, T[2]: 80})
    assert judged is not None and (judged.band, judged.value) == (Band.red, 3)
    assert judged.explanation == "连续 3 学期同期下降：90% → 80% → 70%"


# --- progress -----------------------------------------------------------------------------------
def progress(**kw) -> ProgressRule:
    base = dict(
        kind="progress",
        id="school.budget_progress",
        name="预算执行进度",
        metric="school.budget_execution_rate",
        level="school",
        unit="%",
        direction="higher_is_better",
        target=100,
        standard=75,
        warning=90,
        cycle="month",
        responsible="office",
        office="财务处",
    )
    base.update(kw)
    rule = parse_rule(base)
    assert isinstance(rule, ProgressRule)
    return rule


def at(y, m, d):
    return datetime(y, m, d, 12, tzinfo=CST)


@pytest.mark.parametrize(
    "rule_kw, period, observed, value, due, band",
    [
        ({}, "2026-01-01", at(2026, 1, 1), 0.0, 100 / 365, Band.red),  # first day: 1 day of 365 due
        ({}, "2026-01-01", at(2026, 1, 1), 100 / 365, 100 / 365, Band.excellent),
        ({}, "2026-12-31", at(2026, 12, 31), 100.0, 100.0, Band.excellent),  # last day: all of it due
        ({}, "2026-12-31", at(2026, 12, 31), 89.9, 100.0, Band.yellow),
        ({}, "2026-12-31", at(2026, 12, 31), 75.0, 100.0, Band.yellow),  # exactly the standard meets it
        ({}, "2026-12-31", at(2026, 12, 31), 74.9, 100.0, Band.red),
        ({}, "2026-06", at(2026, 7, 3), 35.0, 100 * 181 / 365, Band.red),  # as of the month's end
        ({}, "2026-06", at(2026, 6, 10), 38.0, 100 * 161 / 365, Band.yellow),  # observed mid-month: as of then
        ({"skip_months": [7, 8]}, "2026-08", at(2026, 9, 2), 50.0, 100 * 181 / 303, Band.yellow),
        ({"span": "term"}, "2025-2026-1", at(2026, 1, 31), 100.0, 100.0, Band.excellent),
        ({"span": "term", "plan": 64}, "2026-W37", at(2026, 9, 13), 4.0, 64 * 13 / 153, Band.red),
    ],
)
def test_progress_prorates(rule_kw, period, observed, value, due, band):
    judged = judge_progress(progress(**rule_kw), period, value, observed)
    assert judged.band is band
    assert judged.thresholds.target == pytest.approx(due, abs=1e-4)
    assert judged.explanation.startswith(f"已完成 {value:.2f}".rstrip("0").rstrip("."))


def test_progress_words():
    judged = judge_progress(progress(), "2026-08", 40, at(2026, 9, 1))
    assert judged.explanation.startswith("已完成 40%，按时间应完成 66.58%")


# --- composite ----------------------------------------------------------------------------------
def composite(**kw) -> CompositeRule:
    base = dict(
        kind="composite",
        id="student.composite_risk",
        name="学生综合风险",
        metric="student.composite_risk",
        level="student",
        unit="项",
        direction="lower_is_better",
        cycle="week",
        responsible="counsellor",
        components=[
            {"metric": "student.attendance_rate", "weight": 2},
            {"metric": "student.failed_courses"},
            {"metric": "student.gpa"},
            {"metric": "student.card_inactivity_days"},
        ],
        yellow=2,
        red=3,
    )
    base.update(kw)
    rule = parse_rule(base)
    assert isinstance(rule, CompositeRule)
    return rule


R, Y, N = Band.red, Band.yellow, Band.normal


@pytest.mark.parametrize(
    "rule_kw, bands, score, band",
    [
        ({}, [R, R, N, N], 2, Band.yellow),  # exactly k of n
        ({}, [R, Y, Y, N], 3, Band.red),
        ({}, [N, Y, N, N], 1, Band.normal),
        ({}, [N, N, N, N], 0, Band.excellent),
        ({}, [R, None, None, N], 1, Band.normal),  # unknown components count as not breaching
        ({"mode": "weighted", "yellow": 2, "red": 3}, [R, Y, N, N], 2.5, Band.yellow),  # 2×1 + 0.5
        ({"mode": "weighted", "yellow": 2, "red": 3}, [R, R, N, N], 3, Band.red),
        ({"mode": "weighted", "yellow": 2, "red": 3}, [Y, Y, Y, N], 2, Band.yellow),  # 2×0.5 + 0.5 + 0.5
    ],
)
def test_composite_tiers(rule_kw, bands, score, band):
    parts = [("指标", "", None if b is None else 1.0, b) for b in bands]
    judged = judge_composite(composite(**rule_kw), parts)
    assert (judged.value, judged.band) == (score, band)


def test_composite_lists_the_contributing_values():
    parts = [
        ("学生到课率", "%", 62.0, R),
        ("不及格课程门数", "门", 3.0, R),
        ("GPA", "", 3.1, N),
        ("一卡通未使用天数", "天", None, None),
    ]
    judged = judge_composite(composite(), parts)
    assert judged.explanation == (
        "4 项中 2 项预警：学生到课率 62%（红色预警）、不及格课程门数 3门（红色预警）、"
        "一卡通未使用天数 无数据（3 项有数据）"
    )


# --- control ------------------------------------------------------------------------------------
W = [f"2026-W{w:02d}" for w in range(30, 45)]


def control(**kw) -> ControlRule:
    base = dict(
        kind="control",
        id="course.attendance_control",
        name="到课率控制限",
        metric="course.attendance_rate",
        level="course",
        unit="%",
        direction="higher_is_better",
        cycle="week",
        responsible="course_teacher",
        window=8,
        min_history=5,
        k_yellow=2,
        k_red=3,
    )
    base.update(kw)
    rule = parse_rule(base)
    assert isinstance(rule, ControlRule)
    return rule


HIST = {W[i]: v for i, v in enumerate([88, 92, 88, 92, 88, 92])}  # mean 90, σ 2: limits 86 (2σ), 84 (3σ)


@pytest.mark.parametrize(
    "rule_kw, history, value, band",
    [
        ({}, HIST, 86, Band.normal),  # exactly on the 2σ limit: inside
        ({}, HIST, 85.9, Band.yellow),
        ({}, HIST, 84, Band.yellow),  # exactly on the 3σ limit
        ({}, HIST, 83.9, Band.red),
        ({}, HIST, 99, Band.normal),  # higher is better: only the lower limit is watched
        ({"direction": "range"}, HIST, 96.5, Band.red),
        ({}, {W[i]: 90 for i in range(6)}, 89.99, Band.red),  # flat history, σ 0: any drop is out
        ({"min_sigma": 1}, {W[i]: 90 for i in range(6)}, 88.5, Band.normal),
        ({"min_sigma": 1}, {W[i]: 90 for i in range(6)}, 90, Band.normal),  # equal values
    ],
)
def test_control_limits(rule_kw, history, value, band):
    judged = judge_control(control(**rule_kw), W[10], value, history)
    assert judged is not None and judged.band is band


def test_control_needs_min_history_and_uses_only_the_window_before():
    few = {W[i]: 90 for i in range(4)}
    assert judge_control(control(), W[10], 10, few) is None
    later = {**HIST, W[12]: 10.0, W[13]: 10.0}  # periods after the judged one do not count
    judged = judge_control(control(window=4, min_history=4), W[10], 85.9, later)
    assert judged is not None and judged.band is Band.yellow  # the last 4 before W40: 88 92 88 92
    assert "近 4 期均值 90%" in judged.explanation


# --- the batch ----------------------------------------------------------------------------------
def obs(metric, entity, period, value, when, level=Level.course):
    return Observation(
        level=level, entity_id=entity, metric=metric, value=value, period=period, observed_at=when, source="test"
    )


def test_batch_merges_its_own_periods_and_the_stored_history(tmp_path):
    rules = _rulebook(tmp_path)
    stored = {("course.pass_rate", "K1"): {T[1]: Point(85.0, at(2024, 7, 1))}}
    batch = [
        obs("course.pass_rate", "K1", p, v, at(2024 + i // 2, 2 + 5 * (i % 2), 1))
        for i, (p, v) in enumerate([(T[2], 82), (T[3], 79), (T[4], 75)])
    ]
    out = evaluate_kinds(rules, batch, stored, lambda e: ("SCH", e), at(2026, 1, 1), replay=True)
    trend_verdicts = [v for v in out.verdicts if v.rule_id == "course.pass_rate_trend"]
    assert [(v.period, v.value, v.band) for v in trend_verdicts] == [
        (T[2], 2.0, Band.normal),
        (T[3], 3.0, Band.yellow),
        (T[4], 4.0, Band.red),
    ]
    assert trend_verdicts[-1].reason == "课程合格率连续下降：连续 4 学期下降：85% → 82% → 79% → 75%，红色预警"


def test_composite_in_a_batch_reads_the_other_components_as_of_the_trigger(tmp_path):
    rules = _rulebook(tmp_path)
    s = Level.student
    batch = [
        obs("student.failed_courses", "S1", T[3], 3, at(2026, 7, 10), s),
        obs("student.gpa", "S1", T[3], 1.5, at(2026, 9, 20), s),  # after the trigger: not yet known
        obs("student.attendance_rate", "S1", "2026-W37", 60, at(2026, 9, 13), s),
    ]
    out = evaluate_kinds(rules, batch, {}, lambda e: ("SCH", e), at(2026, 10, 1), replay=True)
    (v,) = [v for v in out.verdicts if v.rule_id == "student.risk"]
    assert (v.value, v.band, v.period) == (2.0, Band.red, "2026-W37")
    assert "学生到课率 60%（红色预警）" in v.reason and "GPA 无数据" in v.reason


RULEBOOK = """
rules:
  - id: course.pass_rate
    name: 课程合格率
    metric: course.pass_rate
    level: course
    unit: "%"
    direction: higher_is_better
    target: 95
    standard: 80
    warning: 85
    cycle: term
    responsible: course_teacher
  - id: course.pass_rate_trend
    kind: trend
    name: 课程合格率连续下降
    metric: course.pass_rate
    level: course
    unit: 学期
    value_unit: "%"
    direction: higher_is_better
    cycle: term
    yellow: 3
    red: 4
    responsible: course_teacher
  - {id: student.attendance_rate, name: 学生到课率, metric: student.attendance_rate, level: student, unit: "%",
     direction: higher_is_better, target: 95, standard: 80, warning: 90, cycle: week, responsible: counsellor}
  - {id: student.failed_courses, name: 不及格课程门数, metric: student.failed_courses, level: student, unit: 门,
     direction: lower_is_better, target: 0, standard: 3, warning: 1, cycle: term, responsible: counsellor}
  - {id: student.gpa, name: GPA, metric: student.gpa, level: student, direction: higher_is_better, target: 3,
     standard: 2, warning: 2.3, cycle: term, responsible: counsellor}
  - id: student.risk
    kind: composite
    name: 学生综合风险
    metric: student.risk_score
    level: student
    unit: 项
    direction: lower_is_better
    cycle: week
    responsible: counsellor
    components: [{metric: student.attendance_rate}, {metric: student.failed_courses}, {metric: student.gpa}]
    yellow: 1
    red: 2
"""


def _rulebook(tmp_path: Path):
    (tmp_path / "r.yaml").write_text(RULEBOOK, encoding="utf-8")
    return load_rulebook(tmp_path)


def test_kind_rules_are_not_threshold_rules_in_the_hot_path(tmp_path):
    rules = _rulebook(tmp_path)
    assert [r.id for r in rules.for_metric("course.pass_rate")] == ["course.pass_rate"]


# --- lint: located errors -----------------------------------------------------------------------
BAD = """
rules:
  - id: course.pass_rate
    name: 课程合格率
    metric: course.pass_rate
    level: course
    unit: "%"
    direction: higher_is_better
    target: 95
    standard: 80
    warning: 85
    cycle: term
    responsible: course_teacher
  - id: course.pass_rate_trend
    kind: trend
    name: 课程合格率连续下降
    metric: course.pass_rate
    level: course
    direction: higher_is_better
    cycle: term
    yellow: 4
    red: 3
    responsible: course_teacher
  - id: course.x_control
    kind: control
    name: 控制限
    metric: course.pass_rate
    level: course
    direction: higher_is_better
    cycle: term
    window: 4
    min_history: 6
    responsible: course_teacher
  - id: course.risk
    kind: composite
    name: 课程综合风险
    metric: course.risk
    level: course
    direction: lower_is_better
    cycle: term
    components: [{metric: course.pass_rate}, {metric: course.nothing}]
    yellow: 1
    red: 2
    responsible: course_teacher
  - id: course.odd
    kind: tilt
    name: 未知
    metric: course.pass_rate
    level: course
    direction: higher_is_better
    cycle: term
    responsible: course_teacher
overrides:
  - rule: course.risk
    entity: D01
    standard: 3
    reason: 试一下覆盖
"""


def test_kind_errors_are_located(tmp_path):
    (tmp_path / "bad.yaml").write_text(BAD, encoding="utf-8")
    with pytest.raises(RulebookError) as info:
        load_rulebook(tmp_path)
    found = {(e.line, e.field): e.message for e in info.value.errors}
    assert "red is the worse tier" in found[(14, "rules[1]")]
    assert "min_history (6) exceeds window (4)" in found[(24, "rules[2]")]
    assert "course.nothing" in found[(34, "course.risk.components")]
    assert (46, "rules[4].kind") in found
    assert "不能覆盖阈值" in found[(54, "overrides[0].rule")]
    assert len(found) == 5


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1], [2, 1, 0], [1, 2, 0]])
def test_the_order_periods_arrive_in_does_not_change_the_verdicts(tmp_path, order):
    """One batch per period, in any order, with the history kept between batches (as the store
    does): a late earlier period judges the later ones again, so the latest verdict per period
    equals the one a single batch gives."""
    rules = _rulebook(tmp_path)
    at3 = [at(2025, 7, 10), at(2026, 1, 20), at(2026, 7, 10)]
    series = [obs("course.pass_rate", "K1", T[2 + i], v, at3[i]) for i, v in enumerate([82, 79, 75])]
    series = [obs("course.pass_rate", "K1", T[1], 85, at(2025, 1, 20))] + series  # four falling terms
    lineage = lambda e: ("SCH", e)  # noqa: E731
    now = at(2026, 9, 1)

    def latest(verdicts):
        return {(v.rule_id, v.period): (v.value, v.band) for v in verdicts if v.rule_id == "course.pass_rate_trend"}

    whole = latest(evaluate_kinds(rules, series, {}, lineage, now, replay=True).verdicts)
    history: dict = {}
    got: dict = {}
    for i in [0] + [j + 1 for j in order]:
        out = evaluate_kinds(rules, [series[i]], history, lineage, now, replay=True)
        got.update(latest(out.verdicts))
        history = merge(history, [series[i]], {"course.pass_rate"})
    assert got == whole and whole[("course.pass_rate_trend", T[4])] == (4.0, Band.red)
