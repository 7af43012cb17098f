"""误报 feeding tuning: the false-positive rate per rule and rule version, and a tuning report.

``false_positive_rates`` counts, per (rule, rule version), the warnings that version opened and
how many the quality office closed as 误报 (with their reasons) — the version is the one named by
the verdict that opened the warning, so a threshold change shows as a new row, and the
publication that introduced it is named.

``tuning_report`` shows for one rule over a period: the distribution of the measured values
(every entity's every value in the period — a breach in week 5 counts even if week 16 was fine),
where the standard and the warning value sit in it (the share of values on the failing side), and
how many warnings each nearby threshold would have opened — from the backtest
(``warnings.backtest``), so the answer is the one the runtimes would give.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, select

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Direction, Observation
from zhengai.rules.evaluator import as_number
from zhengai.rules.loader import RuleSet
from zhengai.rules.model import Rule
from zhengai.warnings.backtest import simulate
from zhengai.warnings.schema import RuleVersionRow, VerdictRow, WarningEventRow, WarningRow

__all__ = ["false_positive_rates", "TuningReport", "tuning_report", "nearby"]


def false_positive_rates(session, rule_id: str | None = None) -> list[dict]:
    """[{rule_id, rule_version, warnings, false_positives, rate, reasons, published_at, author}]"""
    opened = (
        select(WarningRow.rule_id, VerdictRow.rule_version, WarningRow.resolution, WarningRow.close_reason)
        .join(WarningEventRow, and_(WarningEventRow.warning_id == WarningRow.id, WarningEventRow.kind == "opened"))
        .join(VerdictRow, VerdictRow.key == WarningEventRow.cause)
    )
    if rule_id:
        opened = opened.where(WarningRow.rule_id == rule_id)
    rows: dict[tuple[str, str], dict] = {}
    with session() as s:
        for rid, version, resolution, reason in s.execute(opened):
            r = rows.setdefault(
                (rid, version), dict(rule_id=rid, rule_version=version, warnings=0, false_positives=0, reasons=[])
            )
            r["warnings"] += 1
            if resolution == "false_positive":
                r["false_positives"] += 1
                if reason and reason not in r["reasons"]:
                    r["reasons"].append(reason)
        published = {(v.rule_id, v.version): v for v in s.scalars(select(RuleVersionRow))}
    out = []
    for key in sorted(rows):
        r = rows[key]
        v = published.get(key)
        r["rate"] = round(100.0 * r["false_positives"] / r["warnings"], 1)
        r["published_at"] = v.published_at.isoformat() if v else None
        r["author"] = v.author if v else None
        out.append(r)
    return out


def nearby(rule: Rule, field_name: str, steps: int = 2) -> list[float]:
    """Thresholds around the rule's current one: ±1 and ±2 steps of a unit-sensible size."""
    value = getattr(rule, field_name)
    if not isinstance(value, (int, float)):
        return []
    target = as_number(rule.target) if rule.target is not None else 0  # a number threshold: no range pair here
    span = abs(target - value) or abs(value) * 0.1 or 1.0
    step = 1.0 if span >= 4 else 0.5 if span >= 1 else round(span / 4, 3) or 0.01
    return [round(value + k * step, 3) for k in range(-steps, steps + 1)]


@dataclass
class TuningReport:
    rule_id: str
    name: str
    unit: str
    entities: int
    values: int  # measured values (entity × period) in the distribution
    quantiles: dict[str, float]  # p10 … p90
    below: dict[str, float]  # standard / warning → share of values on the failing side, %
    trials: dict[str, list[tuple[float, int, int]]] = field(default_factory=dict)  # field → (value, opened, red)
    false_positives: list[dict] = field(default_factory=list)


def tuning_report(
    rules: RuleSet, rule_id: str, history: list[Observation], directory: Directory, now: datetime, fp_rates: list[dict]
) -> TuningReport:
    rule = rules.rules[rule_id]
    measured = [o for o in history if o.metric == rule.metric and not isinstance(o.value, bool)]
    values = sorted(float(o.value) for o in measured)
    quantiles: dict[str, float] = {}
    if len(values) >= 2:
        cuts = statistics.quantiles(values, n=10, method="inclusive")
        quantiles = {f"p{10 * i}": round(cuts[i - 1], 2) for i in (1, 3, 5, 7, 9)}
    elif values:
        quantiles = {"p50": values[0]}
    below: dict[str, float] = {}
    if values and rule.direction in (Direction.higher_is_better, Direction.lower_is_better):
        higher = rule.direction is Direction.higher_is_better
        for name in ("standard", "warning"):
            t = getattr(rule, name)
            failing = sum(1 for v in values if (v < t if higher else v > t))
            below[name] = round(100.0 * failing / len(values), 1)
    report = TuningReport(
        rule.id,
        rule.name,
        rule.unit,
        len({o.entity_id for o in measured}),
        len(values),
        quantiles,
        below,
        false_positives=[r for r in fp_rates if r["rule_id"] == rule.id],
    )
    for name in ("standard", "warning"):
        for value in nearby(rule, name):
            try:
                candidate = Rule.model_validate(rule.model_dump() | {name: value})
            except ValueError:
                continue  # e.g. a standard past the target: not a threshold the linter would take
            trial = RuleSet.of({**rules.rules, rule.id: candidate}, rules.overrides, rules.version)
            out = simulate(trial, [rule.id], history, directory, now)
            red = sum(1 for o in out.opened if o.band == "red")
            report.trials.setdefault(name, []).append((value, out.counts[(rule.id, "opened")], red))
    return report
