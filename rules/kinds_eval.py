"""The pure evaluator of the rule kinds (``zhengai.rules.kinds``): (rule, observation, the entity's
history) → verdict. No I/O and no clock, like ``evaluator.py``; the history is handed in.

Every kind ends in an ordinary :class:`~zhengai.ingest.records.Verdict`: the derived value, the
thresholds it was judged against and a band — so the lifecycle, hysteresis (``meets_recovery``),
the store and the notifications treat it like any other. The thresholds of a tiered kind (trend,
composite) are "lower is better" with strict ``yellow``/``red`` lines: a value *at* a line breaches.

:func:`evaluate_kinds` is the batch entry both runtimes call (through ``zhengai.warnings.history``):
it merges the batch's own observations into the stored history first, so a batch that carries
several periods of one entity (a first load, a replay) judges each against the ones before it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from zhengai.ingest.records import Band, Direction, Observation, Thresholds, Verdict, period_kind, period_sort_key
from zhengai.rules.calendar import china_date, elapsed_share, last_year_period, period_days, previous_period, span_of
from zhengai.rules.evaluator import as_number, classify, resolve_thresholds
from zhengai.rules.kinds import CompositeRule, ControlRule, ProgressRule, TrendRule, history_metrics, kind_of
from zhengai.rules.loader import RuleSet
from zhengai.rules.model import Rule

__all__ = [
    "Point",
    "History",
    "Judged",
    "KindResult",
    "judge_trend",
    "judge_progress",
    "judge_composite",
    "judge_control",
    "evaluate_kinds",
    "kind_rules_by_metric",
]


@dataclass(frozen=True)
class Point:
    value: float
    observed_at: datetime
    key: str = ""  # the observation's key (a later period judged again carries its own)


History = Mapping[tuple[str, str], Mapping[str, Point]]  # (metric, entity) → period → point


@dataclass(frozen=True)
class Judged:
    """What a kind decided, before it becomes a Verdict."""

    value: float
    thresholds: Thresholds
    band: Band
    explanation: str  # Chinese, without the rule name


@dataclass
class KindResult:
    verdicts: list[Verdict] = field(default_factory=list)
    rejected: list[tuple[Observation, str, str]] = field(default_factory=list)  # obs, code, reason


_STEP = {"term": "学期", "week": "周", "month": "个月", "year": "年", "day": "天"}
_STRICT = {"target": True, "standard": False, "warning": False}


def _fmt(x: float, unit: str = "") -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") + unit


@lru_cache(maxsize=256)
def _tier_thresholds(yellow: float, red: float) -> Thresholds:
    return Thresholds.trusted(
        direction=Direction.lower_is_better, target=min(0.0, yellow), standard=red, warning=yellow, inclusive=_STRICT
    )


def _tiered(value: float, yellow: float, red: float) -> tuple[Thresholds, Band]:
    """A value at or past ``yellow`` is yellow, at or past ``red`` red (lower is better): the band
    ``classify`` gives under these thresholds, decided without its words."""
    th = _tier_thresholds(yellow, red)
    if value >= red:
        return th, Band.red
    if value >= yellow:
        return th, Band.yellow
    return th, Band.excellent if value <= as_number(th.target) else Band.normal


def _diff_unit(unit: str) -> str:
    return "个百分点" if unit == "%" else unit


# --- trend ----------------------------------------------------------------------------------------
def judge_trend(rule: TrendRule, period: str, value: float, series: Mapping[str, float]) -> Judged | None:
    """None when there is nothing to compare with (the first period, or the one before missing)."""
    step = previous_period if rule.compare == "previous" else last_year_period
    higher = rule.direction is Direction.higher_is_better
    worse = "下降" if higher else "上升"
    vu = rule.value_unit
    where = "较上期" if rule.compare == "previous" else "较上年同期"
    try:
        before = step(period)
    except ValueError:
        return None
    if before not in series:
        return None
    base = series[before]
    if rule.measure == "consecutive":
        run = [value]
        cur, p = value, period
        while True:
            try:
                p = step(p)
            except ValueError:
                break
            if p not in series:
                break
            prev = series[p]
            if not (prev > cur if higher else prev < cur):  # equal is no decline: the run ends
                break
            run.append(prev)
            cur = prev
        n = len(run) if len(run) > 1 else 0
        th, band = _tiered(n, rule.yellow, rule.red)
        span = _STEP.get(period_kind(period), "期") + ("" if rule.compare == "previous" else "同期")
        chain = " → ".join(_fmt(v, vu) for v in reversed(run))
        text = f"连续 {n} {span}{worse}：{chain}" if n else f"{where}未{worse}：{_fmt(base, vu)} → {_fmt(value, vu)}"
        return Judged(float(n), th, band, text)
    adverse = (base - value) if higher else (value - base)
    if rule.measure == "change_pct":
        if base == 0:
            return None
        adverse = round(100 * adverse / abs(base), 6)
        size = f"{_fmt(abs(adverse))}%"
    else:
        adverse = round(adverse, 9)
        size = _fmt(abs(adverse), _diff_unit(vu))
    th, band = _tiered(adverse, rule.yellow, rule.red)
    moved = worse if adverse > 0 else ("持平" if adverse == 0 else ("提高" if higher else "降低"))
    text = f"{where}{moved}" + (f" {size}" if adverse else "") + f"：{_fmt(base, vu)} → {_fmt(value, vu)}"
    if rule.yellow <= 0 and band.is_breach:
        text += "（要求逐期改善）"
    return Judged(adverse, th, band, text)


# --- progress -------------------------------------------------------------------------------------
def judge_progress(rule: ProgressRule, period: str, value: float, observed_at: datetime) -> Judged:
    """As of the earlier of the period's last day and the day it was observed."""
    first, last = period_days(period)
    as_of = min(last, max(first, china_date(observed_at)))
    span = period if period_kind(period) == rule.span else span_of(as_of, rule.span)
    share = elapsed_share(span, as_of, rule.skip_months)
    due = rule.plan * share
    th = Thresholds.trusted(
        direction=Direction.higher_is_better,
        target=due * as_number(rule.target) / 100,
        standard=due * as_number(rule.standard) / 100,
        warning=due * as_number(rule.warning) / 100,
        inclusive=rule.inclusive.model_dump(),
    )
    band = classify(value, th)[0]
    u = rule.unit
    text = (
        f"已完成 {_fmt(value, u)}，按时间应完成 {_fmt(due, u)}"
        f"（{span} 截至 {as_of:%m-%d} 已过 {_fmt(100 * share, '%')}）"
    )
    return Judged(value, th, band, text)


# --- composite ------------------------------------------------------------------------------------
_WEIGHT = {Band.red: 1.0, Band.yellow: 0.5}


def judge_composite(rule: CompositeRule, parts: Sequence[tuple[str, str, float | None, Band | None]]) -> Judged:
    """``parts``: (component name, its unit, value or None when unknown, its band)."""
    score, listed, known = 0.0, [], 0
    for (name, unit, value, band), comp in zip(parts, rule.components, strict=True):
        if value is None or band is None:
            listed.append(f"{name} 无数据")
            continue
        known += 1
        if band.is_breach:
            score += 1 if rule.mode == "count" else comp.weight * _WEIGHT[band]
            listed.append(f"{name} {_fmt(value, unit)}（{band.zh}）")
    th, band = _tiered(score, rule.yellow, rule.red)
    breaching = sum(1 for p in parts if p[3] is not None and p[3].is_breach)
    head = f"{len(parts)} 项中 {breaching} 项预警" + ("" if rule.mode == "count" else f"，加权分 {_fmt(score)}")
    return Judged(
        score,
        th,
        band,
        head + ("：" + "、".join(listed) if listed else "") + (f"（{known} 项有数据）" if known < len(parts) else ""),
    )


# --- control --------------------------------------------------------------------------------------
def judge_control(rule: ControlRule, period: str, value: float, series: Mapping[str, float]) -> Judged | None:
    """None until ``min_history`` earlier periods exist."""
    key = period_sort_key(period)
    earlier = sorted((p for p in series if period_kind(p) == key[0] and period_sort_key(p) < key), key=period_sort_key)
    past = [series[p] for p in earlier[-rule.window :]]
    if len(past) < rule.min_history:
        return None
    mean = statistics.fmean(past)
    sigma = max(statistics.pstdev(past), rule.min_sigma)
    lo = lambda k: mean - k * sigma  # noqa: E731
    hi = lambda k: mean + k * sigma  # noqa: E731
    d, on = rule.direction, {"target": True, "standard": True, "warning": True}  # on a limit is inside
    if d is Direction.higher_is_better:
        th = Thresholds.trusted(
            direction=d, target=mean, warning=lo(rule.k_yellow), standard=lo(rule.k_red), inclusive=on
        )
    elif d is Direction.lower_is_better:
        th = Thresholds.trusted(
            direction=d, target=mean, warning=hi(rule.k_yellow), standard=hi(rule.k_red), inclusive=on
        )
    else:
        th = Thresholds.trusted(
            direction=d,
            target=(lo(rule.k_yellow), hi(rule.k_yellow)),
            inclusive=on,
            warning=(lo(rule.k_yellow), hi(rule.k_yellow)),
            standard=(lo(rule.k_red), hi(rule.k_red)),
        )
    band = classify(value, th)[0]
    if band is Band.excellent:
        band = Band.normal  # inside the limits is "in control", not a target met
    u = rule.unit
    k = rule.k_red if band is Band.red else rule.k_yellow
    if d is Direction.higher_is_better:
        limits = f"{'低于' if band.is_breach else '不低于'}控制下限 {_fmt(mean - k * sigma, u)}"
    elif d is Direction.lower_is_better:
        limits = f"{'高于' if band.is_breach else '不高于'}控制上限 {_fmt(mean + k * sigma, u)}"
    else:
        within = f"控制限 {_fmt(mean - k * sigma, u)}–{_fmt(mean + k * sigma, u)}"
        limits = f"超出{within}" if band.is_breach else f"在{within}内"
    text = f"{_fmt(value, u)}，{limits}（近 {len(past)} 期均值 {_fmt(mean, u)}，σ {_fmt(sigma)}，k={_fmt(k)}）"
    return Judged(value, th, band, text)


# --- the batch ------------------------------------------------------------------------------------
def kind_rules_by_metric(rules: RuleSet) -> dict[str, list[Rule]]:
    """Enabled kind rules by the metric that triggers them (a composite's first component)."""
    out: dict[str, list[Rule]] = {}
    for rule in rules.rules.values():
        if not rule.enabled:
            continue
        if isinstance(rule, CompositeRule):
            out.setdefault(rule.trigger, []).append(rule)
        elif isinstance(rule, (TrendRule, ProgressRule, ControlRule)):
            out.setdefault(rule.metric, []).append(rule)
    return out


def watched_metrics(rules: Iterable[Rule]) -> set[str]:
    return {m for r in rules for m in history_metrics(r)}


def merge(
    history: History, observations: Iterable[Observation], watched: set[str]
) -> dict[tuple[str, str], dict[str, Point]]:
    """Stored history plus the batch's numeric observations of watched metrics (per period the
    latest observed wins, as in the store)."""
    out = {k: dict(v) for k, v in history.items()}
    for o in observations:
        if o.metric not in watched or isinstance(o.value, bool):
            continue
        series = out.setdefault((o.metric, o.entity_id), {})
        old = series.get(o.period)
        if old is None or o.observed_at >= old.observed_at:
            series[o.period] = Point(float(o.value), o.observed_at, o.key)
    return out


def _later(rule: Rule, period: str, series: Mapping[str, Point]) -> list[str]:
    """Stored periods after ``period`` whose trend or control verdict ``period`` can change: a
    period that arrives late (or is corrected) is judged, and so are these again — the result
    does not depend on the order the periods arrive in."""
    key = period_sort_key(period)
    after = sorted((p for p in series if period_kind(p) == key[0] and period_sort_key(p) > key), key=period_sort_key)
    if isinstance(rule, ControlRule):
        return after[: rule.window]
    if isinstance(rule, TrendRule):
        if rule.measure == "consecutive":
            return after[: int(rule.red) + 1]
        step = previous_period if rule.compare == "previous" else last_year_period
        return [p for p in after if _step(step, p) == period]
    return []


def _step(step: Callable[[str], str], period: str) -> str | None:
    try:
        return step(period)
    except ValueError:
        return None


def _latest(series: Mapping[str, Point], at: datetime, freshness) -> Point | None:
    best = None
    for p in series.values():
        if (
            p.observed_at <= at
            and at - p.observed_at <= freshness
            and (best is None or p.observed_at > best.observed_at)
        ):
            best = p
    return best


def evaluate_kinds(
    rules: RuleSet,
    observations: Sequence[Observation],
    history: History,
    lineage: Callable[[str], Sequence[str]],
    now: datetime,
    *,
    replay: bool = False,
    by_metric: Mapping[str, Sequence[Rule]] | None = None,
    batch: Sequence[Observation] | None = None,
) -> KindResult:
    """Verdicts of the kind rules the observations trigger, ordered by (rule, entity, period).
    ``batch``: every observation of the batch that adds to the history (default: ``observations``)."""
    by_metric = by_metric if by_metric is not None else kind_rules_by_metric(rules)
    result = KindResult()
    merged = merge(
        history, observations if batch is None else batch, watched_metrics(r for rs in by_metric.values() for r in rs)
    )
    resolved: dict[tuple[str, ...], Thresholds] = {}  # a component's thresholds, per override chain
    work: list[tuple[Observation, Sequence[Rule]]] = [(o, by_metric.get(o.metric, ())) for o in observations]
    in_batch = {(o.metric, o.entity_id, o.period) for o in observations}
    for obs in observations:
        series_of = merged.get((obs.metric, obs.entity_id), {})
        for rule in by_metric.get(obs.metric, ()):
            for q in _later(rule, obs.period, series_of):
                pt = series_of[q]
                if (obs.metric, obs.entity_id, q) not in in_batch and pt.key:
                    in_batch.add((obs.metric, obs.entity_id, q))
                    again = Observation.trusted(
                        level=obs.level,
                        entity_id=obs.entity_id,
                        metric=obs.metric,
                        value=pt.value,
                        period=q,
                        observed_at=pt.observed_at,
                        source="history",
                        key=pt.key,
                    )
                    work.append((again, [r for r in by_metric[obs.metric] if isinstance(r, (TrendRule, ControlRule))]))
    for obs, triggered in work:
        for rule in triggered:
            if obs.level is not rule.level:
                result.rejected.append(
                    (
                        obs,
                        "evaluation_error",
                        f"rule {rule.id}: metric {obs.metric} is a "
                        f"{rule.level.value}-level metric, observation says {obs.level.value}",
                    )
                )
                continue
            if isinstance(obs.value, bool) or (isinstance(obs.value, float) and math.isnan(obs.value)):
                result.rejected.append(
                    (obs, "evaluation_error", f"rule {rule.id}: a {kind_of(rule)} rule needs a number")
                )
                continue
            value = float(obs.value)
            judged: Judged | None
            if isinstance(rule, (TrendRule, ControlRule)):
                series = {p: pt.value for p, pt in merged.get((obs.metric, obs.entity_id), {}).items()}
                if isinstance(rule, TrendRule):
                    judged = judge_trend(rule, obs.period, value, series)
                else:
                    judged = judge_control(rule, obs.period, value, series)
            elif isinstance(rule, ProgressRule):
                judged = judge_progress(rule, obs.period, value, obs.observed_at)
            else:
                assert isinstance(rule, CompositeRule)
                judged = judge_composite(rule, _parts(rule, obs, merged, rules, lineage, resolved))
            if judged is None:
                continue
            result.verdicts.append(
                Verdict.trusted(
                    rule_id=rule.id,
                    rule_version=rule.version,
                    level=rule.level,
                    entity_id=obs.entity_id,
                    metric=rule.metric,
                    period=obs.period,
                    value=judged.value,
                    thresholds=judged.thresholds,
                    band=judged.band,
                    reason=f"{rule.name}：{judged.explanation}，{judged.band.zh}",
                    observed_at=obs.observed_at,
                    evaluated_at=obs.observed_at if replay else now,
                    observation_key=obs.key,
                )
            )
    result.verdicts.sort(key=lambda v: (v.rule_id, v.entity_id, period_sort_key(v.period)))
    return result


def _parts(
    rule: CompositeRule,
    obs: Observation,
    merged: Mapping[tuple[str, str], Mapping[str, Point]],
    rules: RuleSet,
    lineage: Callable[[str], Sequence[str]],
    resolved: dict[tuple[str, ...], Thresholds],
) -> list[tuple[str, str, float | None, Band | None]]:
    parts: list[tuple[str, str, float | None, Band | None]] = []
    line: Sequence[str] | None = None
    for i, comp in enumerate(rule.components):
        base = next(iter(rules.for_metric(comp.metric)), None)
        name, unit = (base.name, base.unit) if base else (comp.metric, "")
        if i == 0:
            point: Point | None = Point(float(obs.value), obs.observed_at)
        else:
            fresh = base.freshness_window if base else rule.freshness_window
            point = _latest(merged.get((comp.metric, obs.entity_id), {}), obs.observed_at, fresh)
        if point is None or base is None:
            parts.append((name, unit, None, None))
            continue
        overrides = rules.overrides_for(base.id)
        if overrides and line is None:
            line = lineage(obs.entity_id)
        chain = (base.id, *(e for e in line if e in overrides)) if overrides and line else (base.id,)
        th = resolved.get(chain)
        if th is None:
            th = resolved[chain] = resolve_thresholds(base, overrides, line or ())
        parts.append((name, unit, point.value, classify(point.value, th, unit)[0]))
    return parts
