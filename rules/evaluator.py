"""The pure evaluator: (rule, thresholds, observation, now) → verdict.

No I/O, no clock: ``now`` is passed in. The Faust agent, the embedded runner and backtests all call
these functions, so a band means the same everywhere.

Bands (architecture "Thresholds and bands"): a value that meets the target is ``excellent``; one
that meets both the standard and the warning value is ``normal``; failing the *inner* of the two
(the one nearer the target) is ``yellow``; failing the *outer* is ``red``. Schools order standard
and warning both ways, so "inner" is decided by the numbers, not by the names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from zhengai.ingest.records import Band, Direction, Observation, Thresholds, Verdict
from zhengai.rules.model import Override, Rule

__all__ = [
    "EvaluationError",
    "resolve_thresholds",
    "classify",
    "evaluate",
    "evaluate_observation",
    "meets_recovery",
    "as_number",
    "as_pair",
]

_NAMES_ZH = {"target": "目标值", "standard": "标准值", "warning": "预警值"}


class EvaluationError(ValueError):
    """The observation cannot be evaluated under this rule (e.g. a boolean for a numeric rule).
    The caller dead-letters the observation with this message."""


def resolve_thresholds(rule: Rule, overrides: Mapping[str, Override], lineage: Sequence[str]) -> Thresholds:
    """Apply overrides down the directory: ``lineage`` is the entity ids from the school down to the
    entity itself; the most specific override wins, field by field. With ``floor: true`` a
    standard looser than the school's is raised back to it (the loader already rejects such
    static overrides; this guards values that arrive by other routes)."""
    values = {"target": rule.target, "standard": rule.standard, "warning": rule.warning}
    applied = ["school"]
    for entity_id in lineage:
        ov = overrides.get(entity_id)
        if ov is None:
            continue
        for name in values:
            v = getattr(ov, name)
            if v is not None:
                values[name] = v
        applied.append(entity_id)
    floored = False
    if rule.floor and rule.standard is not None and values["standard"] is not None:
        s, base = values["standard"], rule.standard
        if rule.direction is Direction.higher_is_better and as_number(s) < as_number(base):
            values["standard"], floored = base, True
        elif rule.direction is Direction.lower_is_better and as_number(s) > as_number(base):
            values["standard"], floored = base, True
        elif rule.direction is Direction.range and (
            as_pair(s)[0] < as_pair(base)[0] or as_pair(s)[1] > as_pair(base)[1]
        ):
            values["standard"], floored = (
                (max(as_pair(s)[0], as_pair(base)[0]), min(as_pair(s)[1], as_pair(base)[1])),
                True,
            )
    return Thresholds(
        direction=rule.direction,
        target=values["target"],
        standard=values["standard"],
        warning=values["warning"],
        expected=rule.expected,
        inclusive=rule.inclusive.model_dump(),
        applied_from=tuple(applied),
        floored=floored,
    )


def _fmt(x: float, unit: str) -> str:
    text = f"{x:.2f}".rstrip("0").rstrip(".") if isinstance(x, float) else str(x)
    return f"{text}{unit}"


@dataclass(frozen=True)
class _Side:
    """One-sided check: ``higher`` True means higher values are better."""

    higher: bool

    def meets(self, value: float, threshold: float, inclusive: bool) -> bool:
        if value == threshold:
            return inclusive
        return value > threshold if self.higher else value < threshold


def as_number(v: float | tuple[float, float] | None) -> float:
    """A one-sided threshold as the number it is (``Thresholds``/``Rule`` fields are typed for every
    direction; a pair or a missing value here is a bug, not bad input)."""
    assert isinstance(v, (int, float)), v  # one-sided rules have number thresholds (rules.model checks)
    return v


def as_pair(v: float | tuple[float, float] | None) -> tuple[float, float]:
    """A range rule's threshold as its [low, high] pair (as :func:`as_number`)."""
    assert isinstance(v, tuple), v  # range rules have [low, high] thresholds (rules.model checks)
    return v


def _one_sided(
    value: float, th: Mapping[str, float], incl: Mapping[str, bool], higher: bool, unit: str
) -> tuple[Band, str]:
    side = _Side(higher)
    s, w = th["standard"], th["warning"]
    # The inner threshold is the one nearer the target (harder to meet).
    if (s >= w) == higher:
        inner, outer = "standard", "warning"
    else:
        inner, outer = "warning", "standard"
    verb_fail = "低于" if higher else "高于"
    v = _fmt(value, unit)
    if not side.meets(value, th[outer], incl[outer]):
        return Band.red, f"{v}，{verb_fail}{_NAMES_ZH[outer]} {_fmt(th[outer], unit)}"
    if not side.meets(value, th[inner], incl[inner]):
        return (
            Band.yellow,
            f"{v}，{verb_fail}{_NAMES_ZH[inner]} {_fmt(th[inner], unit)}（{_NAMES_ZH[outer]} {_fmt(th[outer], unit)}）",
        )
    if side.meets(value, th["target"], incl["target"]):
        return Band.excellent, f"{v}，达到目标值 {_fmt(th['target'], unit)}"
    return Band.normal, f"{v}，达到标准值 {_fmt(s, unit)}，未达目标值 {_fmt(th['target'], unit)}"


_SEVERITY = {Band.excellent: 0, Band.normal: 1, Band.yellow: 2, Band.red: 3, Band.stale: 1}


def classify(value: float | bool | None, thresholds: Thresholds, unit: str = "") -> tuple[Band, str]:
    """The band of a value and the reason in Chinese (without the rule name)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Band.stale, "无有效数值（缺失或非数字）"
    d = thresholds.direction
    incl = thresholds.inclusive
    if d is Direction.boolean:
        if not isinstance(value, bool):
            raise EvaluationError(f"boolean rule got a number ({value!r})")
        if value == thresholds.expected:
            return Band.normal, f"为「{'是' if value else '否'}」，符合要求"
        return Band.red, f"为「{'是' if value else '否'}」，应为「{'是' if thresholds.expected else '否'}」"
    if isinstance(value, bool):
        raise EvaluationError(f"numeric rule got a boolean ({value!r})")
    if isinstance(value, float) and math.isinf(value):
        raise EvaluationError("value is infinite")
    if d is Direction.range:
        lo = {k: getattr(thresholds, k)[0] for k in _NAMES_ZH}
        hi = {k: getattr(thresholds, k)[1] for k in _NAMES_ZH}
        low_band, low_reason = _one_sided(value, lo, incl, True, unit)
        high_band, high_reason = _one_sided(value, hi, incl, False, unit)
        if _SEVERITY[high_band] > _SEVERITY[low_band]:
            return high_band, high_reason + "（偏高）"
        if low_band in (Band.yellow, Band.red):
            return low_band, low_reason + "（偏低）"
        if low_band is Band.excellent and high_band is Band.excellent:
            t = as_pair(thresholds.target)
            return Band.excellent, f"{_fmt(value, unit)}，在目标区间 {_fmt(t[0], unit)}–{_fmt(t[1], unit)} 内"
        s = as_pair(thresholds.standard)
        return Band.normal, f"{_fmt(value, unit)}，在标准区间 {_fmt(s[0], unit)}–{_fmt(s[1], unit)} 内"
    th = {
        "target": as_number(thresholds.target),
        "standard": as_number(thresholds.standard),
        "warning": as_number(thresholds.warning),
    }
    return _one_sided(float(value), th, incl, d is Direction.higher_is_better, unit)


def evaluate(
    rule: Rule,
    thresholds: Thresholds,
    *,
    value: float | bool | None,
    entity_id: str,
    period: str,
    observed_at: datetime | None,
    now: datetime,
    observation_key: str,
) -> Verdict:
    """Evaluate one value. Stale when there is no value or it is older than the rule's freshness."""
    if observed_at is not None and now - observed_at > rule.freshness_window:
        days = (now - observed_at).days
        band, reason = Band.stale, f"最近数据采集于 {days} 天前，超过更新时限 {rule.freshness_window.days} 天"
    else:
        band, reason = classify(value, thresholds, rule.unit)
        if band is Band.red and rule.direction is Direction.boolean and rule.fail_band == "yellow":
            band = Band.yellow
    # The inputs are validated already (the observation at the edge, the rule at load): building
    # the record without a second validation is a third of an evaluation's cost.
    return Verdict.trusted(
        rule_id=rule.id,
        rule_version=rule.version,
        level=rule.level,
        entity_id=entity_id,
        metric=rule.metric,
        period=period,
        value=value if not (isinstance(value, float) and math.isnan(value)) else None,
        thresholds=thresholds,
        band=band,
        reason=f"{rule.name}{reason}" if band is Band.stale else f"{rule.name}为{reason}，{band.zh}",
        observed_at=observed_at,
        evaluated_at=now,
        observation_key=observation_key,
    )


def evaluate_observation(
    rule: Rule, overrides: Mapping[str, Override], lineage: Sequence[str], obs: Observation, now: datetime
) -> Verdict:
    """Convenience for the pipelines: resolve thresholds for the entity, then evaluate."""
    if obs.level is not rule.level:
        raise EvaluationError(
            f"metric {obs.metric} is a {rule.level.value}-level metric, observation says {obs.level.value}"
        )
    return evaluate(
        rule,
        resolve_thresholds(rule, overrides, lineage),
        value=obs.value,
        entity_id=obs.entity_id,
        period=obs.period,
        observed_at=obs.observed_at,
        now=now,
        observation_key=obs.key,
    )


def meets_recovery(value: float | bool | None, thresholds: Thresholds, margin: float = 0.0) -> bool:
    """Hysteresis: does the value clear the inner threshold by ``margin`` (towards the target)?
    A warning recovers only on values that do, so one hovering at the line does not flap."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    d = thresholds.direction
    if d is Direction.boolean:
        return value == thresholds.expected
    if isinstance(value, bool):
        return False
    if d is Direction.range:
        lo = max(as_pair(thresholds.standard)[0], as_pair(thresholds.warning)[0]) + margin
        hi = min(as_pair(thresholds.standard)[1], as_pair(thresholds.warning)[1]) - margin
        return lo <= value <= hi
    if d is Direction.higher_is_better:
        return value >= max(as_number(thresholds.standard), as_number(thresholds.warning)) + margin
    return value <= min(as_number(thresholds.standard), as_number(thresholds.warning)) - margin
