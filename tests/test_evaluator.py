"""Table-driven tests of the pure evaluator: bands, orderings, directions, inclusivity,
booleans, ranges, missing/NaN values, freshness, overrides and the floor."""

from datetime import UTC, datetime, timedelta

import pytest

from zhengai.ingest.records import Band
from zhengai.rules.evaluator import EvaluationError, classify, evaluate, resolve_thresholds
from zhengai.rules.model import Inclusive, Override, Rule

NOW = datetime(2026, 11, 6, 10, 0, tzinfo=UTC)


def rule(**kw) -> Rule:
    base = dict(
        id="course.attendance_rate",
        name="学生到课率",
        metric="course.attendance_rate",
        level="course",
        unit="%",
        direction="higher_is_better",
        target=98,
        standard=90,
        warning=95,
        cycle="week",
        responsible="course_teacher",
    )
    base.update(kw)
    return Rule.model_validate(base)


def band_of(r: Rule, value, overrides=None, lineage=()):
    th = resolve_thresholds(r, overrides or {}, lineage)
    return classify(value, th, r.unit)[0]


# higher_is_better, warning between standard and target (预警 before the standard is missed)
HIGHER_WARNING_INSIDE = rule()
# higher_is_better, warning beyond the standard (预警 only after the standard is missed)
HIGHER_WARNING_OUTSIDE = rule(standard=90, warning=85)
# lower_is_better, both orderings
LOWER_WARNING_INSIDE = rule(
    id="student.failed_courses",
    metric="student.failed_courses",
    level="student",
    direction="lower_is_better",
    target=0,
    standard=3,
    warning=1,
    responsible="counsellor",
    unit="门",
)
LOWER_WARNING_OUTSIDE = rule(
    id="student.failed_courses",
    metric="student.failed_courses",
    level="student",
    direction="lower_is_better",
    target=0,
    standard=3,
    warning=5,
    responsible="counsellor",
    unit="门",
)


@pytest.mark.parametrize(
    "r, value, expected",
    [
        (HIGHER_WARNING_INSIDE, 99.0, Band.excellent),
        (HIGHER_WARNING_INSIDE, 98.0, Band.excellent),  # exactly on target meets it
        (HIGHER_WARNING_INSIDE, 97.9, Band.normal),
        (HIGHER_WARNING_INSIDE, 95.0, Band.normal),  # exactly on the warning value meets it
        (HIGHER_WARNING_INSIDE, 94.99, Band.yellow),
        (HIGHER_WARNING_INSIDE, 90.0, Band.yellow),  # exactly on the standard meets it
        (HIGHER_WARNING_INSIDE, 89.99, Band.red),
        (HIGHER_WARNING_INSIDE, 0.0, Band.red),
        (HIGHER_WARNING_OUTSIDE, 91.0, Band.normal),
        (HIGHER_WARNING_OUTSIDE, 90.0, Band.normal),
        (HIGHER_WARNING_OUTSIDE, 89.0, Band.yellow),  # missed the standard, not yet the warning
        (HIGHER_WARNING_OUTSIDE, 85.0, Band.yellow),
        (HIGHER_WARNING_OUTSIDE, 84.9, Band.red),
        (LOWER_WARNING_INSIDE, 0.0, Band.excellent),
        (LOWER_WARNING_INSIDE, 1.0, Band.normal),
        (LOWER_WARNING_INSIDE, 2.0, Band.yellow),
        (LOWER_WARNING_INSIDE, 3.0, Band.yellow),
        (LOWER_WARNING_INSIDE, 4.0, Band.red),
        (LOWER_WARNING_OUTSIDE, 3.0, Band.normal),
        (LOWER_WARNING_OUTSIDE, 4.0, Band.yellow),
        (LOWER_WARNING_OUTSIDE, 5.0, Band.yellow),
        (LOWER_WARNING_OUTSIDE, 6.0, Band.red),
    ],
)
def test_bands(r, value, expected):
    assert band_of(r, value) is expected


@pytest.mark.parametrize(
    "inclusive, value, expected",
    [
        (Inclusive(standard=False), 90.0, Band.red),  # strict: 90 does not meet "> 90"
        (Inclusive(warning=False), 95.0, Band.yellow),
        (Inclusive(target=False), 98.0, Band.normal),
        (Inclusive(), 90.0, Band.yellow),
    ],
)
def test_inclusivity(inclusive, value, expected):
    assert band_of(rule(inclusive=inclusive), value) is expected


def test_equal_standard_and_warning_is_red_on_failure():
    r = rule(
        id="major.internship_insured",
        metric="major.internship_insured",
        level="major",
        target=100,
        standard=100,
        warning=100,
        responsible="major_leader",
    )
    assert band_of(r, 100.0) is Band.excellent
    assert band_of(r, 99.5) is Band.red


RANGE = rule(
    id="course.excellent_rate",
    metric="course.excellent_rate",
    direction="range",
    target=(15, 30),
    standard=(5, 45),
    warning=(10, 35),
)


@pytest.mark.parametrize(
    "value, expected",
    [
        (20, Band.excellent),
        (15, Band.excellent),
        (12, Band.normal),
        (40, Band.yellow),
        (8, Band.yellow),
        (46, Band.red),
        (3, Band.red),
        (35, Band.normal),
        (45, Band.yellow),
    ],
)
def test_range(value, expected):
    assert band_of(RANGE, float(value)) is expected


BOOL = rule(
    id="major.internship_insured_all",
    metric="major.internship_insured_all",
    level="major",
    direction="boolean",
    target=None,
    standard=None,
    warning=None,
    expected=True,
    responsible="major_leader",
)


def test_boolean():
    assert band_of(BOOL, True) is Band.normal
    assert band_of(BOOL, False) is Band.red
    yellow = rule(**{**BOOL.model_dump(), "fail_band": "yellow"})
    th = resolve_thresholds(yellow, {}, ())
    v = evaluate(yellow, th, value=False, entity_id="M1", period="2026", observed_at=NOW, now=NOW, observation_key="k")
    assert v.band is Band.yellow and "应为「是」" in v.reason
    with pytest.raises(EvaluationError):
        band_of(BOOL, 1.0)
    with pytest.raises(EvaluationError):
        band_of(HIGHER_WARNING_INSIDE, True)


@pytest.mark.parametrize("value", [None, float("nan")])
def test_missing_or_nan_is_stale(value):
    v = evaluate(
        HIGHER_WARNING_INSIDE,
        resolve_thresholds(HIGHER_WARNING_INSIDE, {}, ()),
        value=value,
        entity_id="C0001",
        period="2026-W40",
        observed_at=NOW,
        now=NOW,
        observation_key="k",
    )
    assert v.band is Band.stale
    assert v.value is None
    assert "无有效数值" in v.reason


def test_old_data_is_stale_and_fresh_data_is_not():
    th = resolve_thresholds(HIGHER_WARNING_INSIDE, {}, ())
    old = evaluate(
        HIGHER_WARNING_INSIDE,
        th,
        value=99.0,
        entity_id="C1",
        period="2026-W30",
        observed_at=NOW - timedelta(days=15),
        now=NOW,
        observation_key="k",
    )
    fresh = evaluate(
        HIGHER_WARNING_INSIDE,
        th,
        value=99.0,
        entity_id="C1",
        period="2026-W44",
        observed_at=NOW - timedelta(days=13),
        now=NOW,
        observation_key="k",
    )
    assert old.band is Band.stale and "超过更新时限 14 天" in old.reason
    assert fresh.band is Band.excellent


def test_reason_is_chinese_and_names_thresholds():
    v = evaluate(
        HIGHER_WARNING_INSIDE,
        resolve_thresholds(HIGHER_WARNING_INSIDE, {}, ()),
        value=86.5,
        entity_id="C1",
        period="2026-W40",
        observed_at=NOW,
        now=NOW,
        observation_key="k",
    )
    assert v.band is Band.red
    assert v.reason == "学生到课率为86.5%，低于标准值 90%，红色预警"
    y = evaluate(
        HIGHER_WARNING_INSIDE,
        resolve_thresholds(HIGHER_WARNING_INSIDE, {}, ()),
        value=93.0,
        entity_id="C1",
        period="2026-W40",
        observed_at=NOW,
        now=NOW,
        observation_key="k",
    )
    assert y.reason == "学生到课率为93%，低于预警值 95%（标准值 90%），黄色预警"


def ov(entity, **kw):
    return Override(rule="course.attendance_rate", entity=entity, reason="测试覆盖", **kw)


def test_overrides_inherit_down_and_most_specific_wins():
    r = HIGHER_WARNING_INSIDE
    overrides = {"D01": ov("D01", standard=85, warning=92), "M0101": ov("M0101", warning=93)}
    lineage = ("SCH", "D01", "M0101", "C0001")
    th = resolve_thresholds(r, overrides, lineage)
    assert (th.target, th.standard, th.warning) == (98, 85, 93)
    assert th.applied_from == ("school", "D01", "M0101")
    # 88 is red at school level but yellow under the department's standard of 85
    assert band_of(r, 88.0) is Band.red
    assert band_of(r, 88.0, overrides, lineage) is Band.yellow
    # a sibling department is unaffected
    assert band_of(r, 88.0, overrides, ("SCH", "D02", "M0201", "C0100")) is Band.red


def test_floor_forbids_an_override_below_the_school_standard():
    r = rule(floor=True)
    th = resolve_thresholds(r, {"S1": ov("S1", standard=80)}, ("SCH", "D01", "S1"))
    assert th.standard == 90 and th.floored
    # tightening is always allowed
    th2 = resolve_thresholds(r, {"S1": ov("S1", standard=93, warning=96)}, ("SCH", "S1"))
    assert (th2.standard, th2.warning, th2.floored) == (93, 96, False)
    # without the floor the looser override applies
    th3 = resolve_thresholds(rule(), {"S1": ov("S1", standard=80)}, ("SCH", "S1"))
    assert th3.standard == 80 and not th3.floored


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(target=90, standard=95), "higher_is_better needs target ≥ standard"),
        (dict(direction="lower_is_better"), "lower_is_better needs target ≤ standard"),
        (dict(target=None), "missing target"),
        (dict(direction="boolean"), "a boolean rule takes `expected`"),
        (dict(direction="range"), "a range rule needs [low, high] pairs"),
        (dict(metric="student.attendance_rate"), "does not belong to level"),
        (dict(responsible="office"), "needs `office:`"),
    ],
)
def test_rule_model_rejects_inconsistent_thresholds(bad, message):
    with pytest.raises(ValueError, match=__import__("re").escape(message)):
        rule(**bad)
