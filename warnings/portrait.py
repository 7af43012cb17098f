"""画像: one entity's indicators together — value, band, 目标值/标准值/预警值, the trend over recent
periods, its percentile among its peers in its 二级学院 and in the school, and the peers.

Peers are entities of the same kind (majors with majors, courses with courses) judged by the same
rule in the same period. The percentile is the share of the *other* peers this entity does at
least as well as — ``100 × not_better / (n − 1)`` — so the best is 100, the worst 0, entities tied
at the top all read 100 (most students with no absence at all are not "at 3 %"), and an entity
alone has none (None). "Better" follows the rule's direction (a lower 课表偏差 is better). In SQL it
is ``cume_dist()`` over the peers ordered from worst to best, rescaled to leave the entity itself
out; ``reporting.indicator_portrait`` computes the same figures that way.

Reads the verdicts (they carry the value, the band and the thresholds that applied), so the same
code serves SQLite (embedded) and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from zhengai.warnings.schema import VerdictRow
from zhengai.warnings.scopes import Placed, Scope, place

__all__ = ["percentile_rank", "Point", "PeerValue", "Indicator", "Portrait", "portrait", "TREND_PERIODS"]

TREND_PERIODS = 8
_DIRECTED = ("higher_is_better", "lower_is_better")


def percentile_rank(value: float, values: Sequence[float], higher_is_better: bool = True) -> float | None:
    """``value``'s percentile among ``values`` (which include it once): the share of the others
    that do no better. None when it has no peer."""
    if len(values) < 2:
        return None
    not_better = sum(1 for v in values if (v <= value if higher_is_better else v >= value)) - 1  # less itself
    return 100.0 * not_better / (len(values) - 1)


@dataclass(frozen=True)
class Point:
    period: str
    value: float | None
    band: str


@dataclass(frozen=True)
class PeerValue:
    entity_id: str  # as the viewer may read it (masked for students out of scope)
    name: str
    value: float
    band: str
    is_self: bool


@dataclass
class Indicator:
    rule_id: str
    name: str
    unit: str
    metric: str
    period: str
    value: float | None
    band: str
    target: float | None
    standard: float | None
    warning: float | None
    direction: str
    trend: list[Point]
    pct_department: float | None = None
    pct_school: float | None = None
    n_department: int = 0
    n_school: int = 0
    peers: list[PeerValue] = field(default_factory=list)  # department peers, best first


@dataclass
class Portrait:
    entity: Placed
    entity_ref: tuple[str, str]
    department_name: str
    indicators: list[Indicator]


def _latest(rows) -> dict[tuple[str, str], VerdictRow]:
    """The last evaluation of each (entity, period) (a re-evaluation replaces the earlier one)."""
    out: dict[tuple[str, str], VerdictRow] = {}
    for r in rows:
        key = (r.entity_id, r.period)
        if key not in out or (r.evaluated_at, r.id) > (out[key].evaluated_at, out[key].id):
            out[key] = r
    return out


def _num(th: dict, key: str) -> float | None:
    v = th.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def portrait(store, directory, rules, entity_id: str, scope: Scope, *, periods: int = TREND_PERIODS) -> Portrait | None:
    """The 画像 of ``entity_id`` as ``scope`` may see it (None: unknown entity). Percentiles count
    every peer; the peers *listed* are those the scope sees (students masked where it must)."""
    me = place(directory, entity_id)
    if me is None:
        return None
    with store.session() as s:
        own = s.scalars(select(VerdictRow).where(VerdictRow.entity_id == entity_id)).all()
    by_rule: dict[str, dict[tuple[str, str], VerdictRow]] = {}
    for r in own:
        by_rule.setdefault(r.rule_id, {})
    for rule_id in by_rule:
        by_rule[rule_id] = _latest([r for r in own if r.rule_id == rule_id])
    indicators = []
    for rule_id, latest in sorted(by_rule.items()):
        series = sorted(latest.values(), key=lambda r: (r.period_start, r.period))
        last = series[-1]
        th = last.thresholds if isinstance(last.thresholds, dict) else {}
        rule = rules.rules.get(rule_id) if rules is not None else None
        ind = Indicator(
            rule_id,
            rule.name if rule else rule_id,
            rule.unit if rule else "",
            last.metric,
            last.period,
            last.value,
            last.band,
            _num(th, "target"),
            _num(th, "standard"),
            _num(th, "warning"),
            str(th.get("direction", "")),
            [Point(r.period, r.value, r.band) for r in series[-periods:]],
        )
        _compare(store, directory, scope, me, ind)
        indicators.append(ind)
    dept = directory.get(me.department_id) if me.department_id else None
    return Portrait(me, scope.entity_ref(me), dept.name if dept else "全校", indicators)


def _compare(store, directory, scope: Scope, me: Placed, ind: Indicator) -> None:
    if ind.value is None or ind.direction not in _DIRECTED:
        return
    with store.session() as s:
        rows = s.scalars(
            select(VerdictRow).where(VerdictRow.rule_id == ind.rule_id, VerdictRow.period == ind.period)
        ).all()
    higher = ind.direction == "higher_is_better"
    school: list[tuple[Placed, VerdictRow, float]] = []  # (peer, its verdict, the verdict's value)
    for r in _latest(rows).values():
        p = place(directory, r.entity_id)
        if p is not None and p.kind == me.kind and r.value is not None:
            school.append((p, r, r.value))
    department = [(p, r, v) for p, r, v in school if p.department_id == me.department_id]
    ind.n_school, ind.n_department = len(school), len(department)
    ind.pct_school = percentile_rank(ind.value, [v for _, _, v in school], higher)
    ind.pct_department = percentile_rank(ind.value, [v for _, _, v in department], higher)
    ranked = sorted(department, key=lambda prv: (-prv[2] if higher else prv[2], prv[0].id))
    for p, r, v in ranked:
        if p.id == me.id or scope.sees(p):
            ref, name = scope.entity_ref(p)
            ind.peers.append(PeerValue(ref, name, v, r.band, p.id == me.id))
