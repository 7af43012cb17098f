"""Measured 改进效果: what the numbers did after a measure, beside what they did where nobody acted.

The seeds ask for the realised effect, "实施改进措施之后已经显现的实际效果，不是预测或估计成效"
(000:1154, 004 附件4). For a warning with measures this computes, from the stored observations:

- the metric's series from ``BEFORE`` periods before the warning opened to now;
- the change from the baseline (the breaching period the warning opened on — what the measures
  answer; people often record a measure after acting, so its timestamp is no baseline) to now, and
  the gap to the standard and to the target at both ends (signed so that + is better);
- the same change, over the same periods, for comparable entities without a measure: the same
  rule and level in the same department (二级学院) — so a reviewer can tell the measure from the
  semester.

``measure`` is a pure read; ``record_effects`` stores it with the review (``improvement_effects``)
and writes the summary onto the measures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from statistics import mean

from sqlalchemy import select

from zhengai.ingest.records import Direction, period_sort_key
from zhengai.rules.kinds import kind_of
from zhengai.warnings.improvement_schema import EffectRow
from zhengai.warnings.messages import format_value
from zhengai.warnings.schema import EntityRow, ImprovementRow, ObservationRow, VerdictRow, WarningRow

__all__ = ["Effect", "measure", "record_effects", "BEFORE"]

BEFORE = 4  # periods of history shown before the first measure


@dataclass
class Effect:
    rule_name: str
    unit: str
    series: list[tuple[str, float]]  # (period, value), oldest first
    baseline_period: str | None
    baseline: float | None
    latest_period: str | None
    latest: float | None
    change: float | None  # latest - baseline, signed so that + is better
    standard: float | None
    target: float | None
    gap_standard: tuple[float | None, float | None] = (None, None)  # (before, now), + = better than the line
    gap_target: tuple[float | None, float | None] = (None, None)
    peers: int = 0  # comparable entities without a measure that have both periods
    peer_change: float | None = None  # their mean change, signed so that + is better
    peer_ids: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if self.baseline is None or self.latest is None:
            return f"{self.rule_name}：措施前后缺少可比数据，暂无法计算改进效果"
        f = lambda v: format_value(v, self.unit)  # noqa: E731
        d = lambda v: "—" if v is None else f"{v:+.2f}".rstrip("0").rstrip(".")  # noqa: E731
        text = (
            f"{self.rule_name}由 {f(self.baseline)}（{self.baseline_period}，预警时）"
            f"变为 {f(self.latest)}（{self.latest_period}），"
            f"向好变化 {d(self.change)}{self.unit}"
        )
        if self.standard is not None:
            text += f"；距标准值 {f(self.standard)} 由 {d(self.gap_standard[0])} 变为 {d(self.gap_standard[1])}"
        if self.target is not None:
            text += f"；距目标值 {f(self.target)} 由 {d(self.gap_target[0])} 变为 {d(self.gap_target[1])}"
        if self.peers:
            diff = (self.change or 0) - (self.peer_change or 0)
            text += (
                f"；同二级学院同指标未采取措施的 {self.peers} 个对象同期平均变化 {d(self.peer_change)}{self.unit}，"
                f"措施对象{'好于' if diff > 0 else '不如' if diff < 0 else '等同于'}"
                f"同类 {d(abs(diff)).lstrip('+')}{self.unit}"
            )
        else:
            text += "；同二级学院没有可比的未采取措施对象"
        return text


def _signed(direction: str, delta: float) -> float:
    return -delta if direction == Direction.lower_is_better.value else delta


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def measure(service, warning_id: int) -> Effect | None:
    """The effect of the warning's measures, or None when it has none (or its rule is gone)."""
    store = service.store
    with store.session() as s:
        w = s.get(WarningRow, warning_id)
        if w is None:
            return None
        rule = service.rule(w.rule_id)
        measures = list(
            s.scalars(select(ImprovementRow).where(ImprovementRow.warning_id == warning_id).order_by(ImprovementRow.id))
        )
        if rule is None or not measures:
            return None
        own = [
            (o.period, o.value, o.observed_at)
            for o in s.scalars(
                select(ObservationRow).where(ObservationRow.metric == w.metric, ObservationRow.entity_id == w.entity_id)
            )
        ]
        own.sort(key=lambda r: period_sort_key(r[0]))
        baseline = next((r for r in own if r[0] == w.opened_period), None)
        start = max(0, own.index(baseline) - BEFORE + 1) if baseline in own else 0
        latest = own[-1] if own else None
        th = (
            s.scalars(
                select(VerdictRow.thresholds)
                .where(VerdictRow.rule_id == w.rule_id, VerdictRow.entity_id == w.entity_id)
                .order_by(VerdictRow.id.desc())
                .limit(1)
            ).first()
            or {}
        )
        standard = _number(th.get("standard", rule.standard))
        target = _number(th.get("target", rule.target))
        direction = rule.direction.value
        if kind_of(rule) in ("trend", "composite"):  # their thresholds count periods or components, not the metric
            standard = target = None
        effect = Effect(
            rule.name,
            rule.unit,
            [(p, v) for p, v, _ in own[start:]],
            baseline[0] if baseline else None,
            baseline[1] if baseline else None,
            latest[0] if latest else None,
            latest[1] if latest else None,
            None,
            standard,
            target,
        )
        if baseline is None or latest is None or direction in (Direction.boolean.value, Direction.range.value):
            return effect
        effect.change = _signed(direction, latest[1] - baseline[1])
        if standard is not None:
            effect.gap_standard = (_signed(direction, baseline[1] - standard), _signed(direction, latest[1] - standard))
        if target is not None:
            effect.gap_target = (_signed(direction, baseline[1] - target), _signed(direction, latest[1] - target))
        _peers(s, w, effect, direction, baseline[0], latest[0])
    return effect


def _peers(s, w: WarningRow, effect: Effect, direction: str, p0: str, p1: str) -> None:
    dept = s.scalar(select(EntityRow.department_id).where(EntityRow.id == w.entity_id))
    if dept is None:
        return
    siblings = set(
        s.scalars(
            select(EntityRow.id).where(
                EntityRow.department_id == dept, EntityRow.kind == w.level, EntityRow.id != w.entity_id
            )
        )
    )
    acted = set(
        s.scalars(
            select(WarningRow.entity_id)
            .join(ImprovementRow, ImprovementRow.warning_id == WarningRow.id)
            .where(WarningRow.rule_id == w.rule_id)
        )
    )
    candidates = sorted(siblings - acted)
    if not candidates:
        return
    values: dict[str, dict[str, float]] = {}
    for i in range(0, len(candidates), 500):
        for eid, period, value in s.execute(
            select(ObservationRow.entity_id, ObservationRow.period, ObservationRow.value).where(
                ObservationRow.metric == w.metric,
                ObservationRow.period.in_([p0, p1]),
                ObservationRow.entity_id.in_(candidates[i : i + 500]),
            )
        ):
            values.setdefault(eid, {})[period] = value
    changes = {eid: _signed(direction, v[p1] - v[p0]) for eid, v in values.items() if p0 in v and p1 in v}
    if changes:
        effect.peers, effect.peer_change, effect.peer_ids = len(changes), mean(changes.values()), sorted(changes)[:50]


def record_effects(service, warning_id: int, at: datetime, *, reviewed_by: str | None = None) -> list[EffectRow]:
    """Measure and store the effect with the review; the summary also goes onto each measure."""
    effect = measure(service, warning_id)
    if effect is None:
        return []
    with service.store.session() as s, s.begin():
        measures = list(
            s.scalars(select(ImprovementRow).where(ImprovementRow.warning_id == warning_id).order_by(ImprovementRow.id))
        )
        for imp in measures:
            if imp.effect_measured_at is None:
                imp.value_after, imp.effect_measured_at, imp.effect = effect.latest, at, effect.summary
        detail = asdict(effect)
        detail["series"] = [list(p) for p in effect.series]
        row = EffectRow(
            warning_id=warning_id,
            improvement_id=measures[0].id if measures else None,
            reviewed_by=reviewed_by,
            measured_at=at,
            summary=effect.summary,
            detail=detail,
        )
        s.add(row)
    return [row]
