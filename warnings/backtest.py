"""Backtest: what would a rulebook have done over the stored observations of a period?

The quality office asks "if I move this standard, how many warnings would have opened last term,
and where?". ``backtest`` answers it by replaying the stored observations of the period through
the same pure code the runtimes use — ``rules.engine.evaluate_batch`` (in replay mode: each
observation judged as of the moment it was observed) and the lifecycle's ``step`` — once for the
current rulebook and once for the candidate, and comparing the two.

Only the rules whose content or overrides differ between the two rulebooks are replayed (an
unchanged rule gives the same answer twice); with no candidate, every enabled rule is replayed
and the report describes the current rulebook alone. Nobody acts in a backtest: no 确认, no
改进措施, no 复评 — so "escalated" counts the warnings that would have gone past their due date
unattended, and "recovered" (指标恢复) stands for closing (a recovered warning waits for 复评).

误报 avoided: warnings the quality office closed as 误报 in the period whose opening period the
candidate would not have judged a breach.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Band, EntityKind, Level, Observation
from zhengai.rules.engine import evaluate_batch
from zhengai.rules.loader import RuleSet
from zhengai.warnings.lifecycle import Observe, Tick, TransitionKind, WarningState, step
from zhengai.warnings.schema import ObservationRow, WarningRow

__all__ = ["Outcome", "Comparison", "changed_rules", "simulate", "backtest", "stored_history", "false_positives"]

# The transitions a backtest counts, with the words the report uses.
COUNTED = {
    TransitionKind.opened: "新开预警",
    TransitionKind.severity_up: "升为红色",
    TransitionKind.escalated: "逾期升级",
    TransitionKind.recovered: "指标恢复",
}


@dataclass(frozen=True)
class Opened:
    rule_id: str
    entity_id: str
    period: str
    band: str


@dataclass
class Outcome:
    """What one rulebook did over the history: transitions counted per rule, the warnings
    opened (with where), the latest band per (rule, entity) and the band per period."""

    counts: Counter = field(default_factory=Counter)  # (rule_id, kind) → n
    opened: list[Opened] = field(default_factory=list)
    final_band: dict[tuple[str, str], str] = field(default_factory=dict)
    band_at: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (rule, entity, period) → band
    verdicts: int = 0


def changed_rules(current: RuleSet, candidate: RuleSet) -> list[str]:
    """Rule ids whose content or overrides differ, or that exist in one rulebook only."""
    ids = set(current.rules) | set(candidate.rules)
    out = []
    for rid in sorted(ids):
        a, b = current.rules.get(rid), candidate.rules.get(rid)
        if a is None or b is None or a.version != b.version:
            out.append(rid)
        elif dict(current.overrides_for(rid)) != dict(candidate.overrides_for(rid)):
            out.append(rid)
    return out


def _subset(rules: RuleSet, rule_ids: Iterable[str]) -> RuleSet:
    keep = {rid: rules.rules[rid] for rid in rule_ids if rid in rules.rules}
    return RuleSet.of(keep, {rid: rules.overrides_for(rid) for rid in keep}, rules.version)


def simulate(
    rules: RuleSet, rule_ids: Iterable[str], observations: Iterable[Observation], directory: Directory, now: datetime
) -> Outcome:
    """Replay ``observations`` through the rules named (evaluator, then lifecycle); pure."""
    subset = _subset(rules, rule_ids)
    metrics = set(subset.by_metric)
    result = evaluate_batch(subset, [o for o in observations if o.metric in metrics], directory, now, replay=True)
    out = Outcome(verdicts=len(result.verdicts))
    states: dict[tuple[str, str], WarningState | None] = {}
    for v in result.verdicts:  # ordered by (rule, entity, period)
        rule = subset.rules[v.rule_id]
        pair = (v.rule_id, v.entity_id)
        state = states.get(pair)
        state, ticked = step(state, Tick(at=v.evaluated_at, policy=rule.policy, freshness=rule.freshness_window))
        state, seen = step(state, Observe(v, rule.policy))
        states[pair] = state
        out.final_band[pair] = v.band.value
        out.band_at[(v.rule_id, v.entity_id, v.period)] = v.band.value
        for t in ticked + seen:
            if t.kind in COUNTED:
                out.counts[(v.rule_id, t.kind.value)] += 1
            if t.kind is TransitionKind.opened:
                out.opened.append(Opened(v.rule_id, v.entity_id, t.period, t.to_band.value))
    return out


@dataclass(frozen=True)
class BandChange:
    rule_id: str
    entity_id: str
    name: str
    before: str | None
    after: str | None


@dataclass
class Comparison:
    """The backtest's answer. ``groups`` maps a dimension (rule, level, department, band) to
    {key: (opened now, opened with the candidate)}."""

    rule_ids: list[str]
    current: Outcome
    candidate: Outcome
    groups: dict[str, dict[str, tuple[int, int]]]
    more: list[Opened]  # opened with the candidate only (by rule, entity, period)
    fewer: list[Opened]  # opened now, not with the candidate
    band_changes: list[BandChange]
    avoided: list[dict]  # 误报 the candidate would not have raised
    observations: int

    def kinds(self, rule_id: str) -> dict[str, tuple[int, int]]:
        return {
            k.value: (self.current.counts[(rule_id, k.value)], self.candidate.counts[(rule_id, k.value)])
            for k in COUNTED
        }

    def as_json(self) -> dict:
        return {
            "rules": {rid: self.kinds(rid) for rid in self.rule_ids},
            "groups": self.groups,
            "more": [o.__dict__ for o in self.more],
            "fewer": [o.__dict__ for o in self.fewer],
            "band_changes": [c.__dict__ for c in self.band_changes],
            "false_positives_avoided": self.avoided,
            "observations": self.observations,
            "verdicts": [self.current.verdicts, self.candidate.verdicts],
        }


def _department(directory: Directory, entity_id: str) -> str:
    dept = directory.ancestor(entity_id, EntityKind.department)
    return dept.name if dept else "（全校）"


def _group(opened: list[Opened], rules: Mapping[str, RuleSet], directory: Directory) -> dict[str, Counter]:
    out: dict[str, Counter] = {"rule": Counter(), "level": Counter(), "department": Counter(), "band": Counter()}
    for o in opened:
        rule = rules["current"].rules.get(o.rule_id) or rules["candidate"].rules[o.rule_id]
        out["rule"][f"{o.rule_id} {rule.name}"] += 1
        out["level"][Level(rule.level).zh] += 1
        out["department"][_department(directory, o.entity_id)] += 1
        out["band"][Band(o.band).zh] += 1
    return out


def backtest(
    current: RuleSet,
    candidate: RuleSet | None,
    observations: list[Observation],
    directory: Directory,
    now: datetime,
    false_positive_rows: Iterable[Mapping] = (),
) -> Comparison:
    """Compare ``candidate`` with ``current`` over ``observations`` (see the module docstring)."""
    cand = candidate if candidate is not None else current
    rule_ids = (
        changed_rules(current, cand)
        if candidate is not None
        else sorted(rid for rid, r in current.rules.items() if r.enabled)
    )
    now_out = simulate(current, rule_ids, observations, directory, now)
    cand_out = now_out if candidate is None else simulate(cand, rule_ids, observations, directory, now)
    a, b = (
        _group(now_out.opened, {"current": current, "candidate": cand}, directory),
        _group(cand_out.opened, {"current": current, "candidate": cand}, directory),
    )
    groups = {dim: {k: (a[dim][k], b[dim][k]) for k in sorted(set(a[dim]) | set(b[dim]))} for dim in a}
    key = lambda o: (o.rule_id, o.entity_id, o.period)  # noqa: E731
    before, after = {key(o): o for o in now_out.opened}, {key(o): o for o in cand_out.opened}
    more = [after[k] for k in sorted(set(after) - set(before))]
    fewer = [before[k] for k in sorted(set(before) - set(after))]
    changes = []
    for pair in sorted(set(now_out.final_band) | set(cand_out.final_band)):
        x, y = now_out.final_band.get(pair), cand_out.final_band.get(pair)
        if x != y:
            entity = directory.get(pair[1])
            changes.append(BandChange(pair[0], pair[1], entity.name if entity else pair[1], x, y))
    avoided = []
    for fp in false_positive_rows:
        if fp["rule_id"] not in rule_ids:
            continue
        band = cand_out.band_at.get((fp["rule_id"], fp["entity_id"], fp["opened_period"]))
        if band is not None and not Band(band).is_breach:
            avoided.append(dict(fp) | {"candidate_band": band})
    return Comparison(rule_ids, now_out, cand_out, groups, more, fewer, changes, avoided, len(observations))


# --- reading the store -------------------------------------------------------------------------


def stored_history(session, start: datetime, end: datetime, metrics: Iterable[str] | None = None) -> list[Observation]:
    """The stored observations whose period starts within [start, end), as records."""
    q = select(
        ObservationRow.level,
        ObservationRow.entity_id,
        ObservationRow.metric,
        ObservationRow.value,
        ObservationRow.is_bool,
        ObservationRow.period,
        ObservationRow.observed_at,
        ObservationRow.source,
        ObservationRow.key,
    ).where(ObservationRow.period_start >= start, ObservationRow.period_start < end)
    if metrics is not None:
        q = q.where(ObservationRow.metric.in_(sorted(set(metrics))))
    out = []
    with session() as s:
        for level, entity, metric, value, is_bool, period, observed_at, source, key in s.execute(q):
            out.append(
                Observation.model_construct(
                    v=1,
                    level=Level(level),
                    entity_id=entity,
                    metric=metric,
                    value=bool(value) if is_bool else value,
                    period=period,
                    observed_at=observed_at,
                    source=source,
                    key=key,
                )
            )
    return out


def false_positives(session, rule_ids: Iterable[str], start: datetime, end: datetime) -> list[dict]:
    """Warnings closed as 误报 whose episode opened within the period."""
    q = select(
        WarningRow.id, WarningRow.rule_id, WarningRow.entity_id, WarningRow.opened_period, WarningRow.close_reason
    ).where(
        WarningRow.resolution == "false_positive",
        WarningRow.rule_id.in_(sorted(set(rule_ids))),
        WarningRow.opened_at >= start,
        WarningRow.opened_at < end,
    )
    with session() as s:
        return [dict(warning_id=i, rule_id=r, entity_id=e, opened_period=p, reason=c) for i, r, e, p, c in s.execute(q)]
