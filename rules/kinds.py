"""Rule kinds beyond one value: ``trend``, ``progress``, ``composite``, ``control``.

A rule without ``kind`` (or with ``kind: threshold``) is today's :class:`~zhengai.rules.model.Rule`:
one value against 目标值/标准值/预警值. The other kinds are subclasses of it — they share the
fields that route, time and word a warning (``id``, ``name``, ``level``, ``responsible``, ``cycle``,
``lifecycle`` …) — and each judges a *derived* value:

==========  ==================================================================  ==================
kind        derived value (the verdict's ``value``)                              needs
==========  ==================================================================  ==================
trend       consecutive adverse periods (连续 N 期下降), or the adverse change      the entity's own
            against the previous period / the same period last year              history
progress    completion so far, judged against the target prorated over the       the calendar
            elapsed part of the term or year (过程值)
composite   how many component metrics breach ("k of n") or their weighted       the entity's other
            severity, in tiers                                                   metrics
control     the value, judged against mean ± kσ of its own last N periods        the entity's own
            (SPC control limits), once there is enough history                   history
==========  ==================================================================  ==================

``unit`` is the unit of the derived value as people read it in notifications (期, 个百分点, 项, %);
``value_unit`` the unit of the underlying metric in the explanation ("82% → 79% → 75%").
The pure evaluation is ``zhengai.rules.kinds_eval``; the history it needs is kept by
``zhengai.warnings.history``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from zhengai.ingest.located_yaml import LocatedError
from zhengai.ingest.records import Direction
from zhengai.rules.model import Rule

__all__ = [
    "TrendRule",
    "ProgressRule",
    "CompositeRule",
    "Component",
    "ControlRule",
    "KIND_CLASSES",
    "parse_rule",
    "kind_of",
    "history_metrics",
    "lint_kinds",
]

Number = Annotated[float, Field(allow_inf_nan=False)]
_METRIC = r"^[a-z]+\.[a-z0-9_]{1,63}$"


def _no_triple(rule: Rule, kind: str) -> None:
    given = [k for k in ("target", "standard", "warning", "expected") if getattr(rule, k) is not None]
    if given:
        raise ValueError(f"a {kind} rule takes yellow/red, not {', '.join(given)}")


def _prefix(rule: Rule, metric: str) -> None:
    if metric.split(".")[0] != rule.level.value:
        raise ValueError(f"metric {metric!r} does not belong to level {rule.level.value!r}")


def _tiers(yellow: float, red: float) -> None:
    if yellow > red:
        raise ValueError(f"yellow ({yellow:g}) must not be above red ({red:g}): red is the worse tier")


class TrendRule(Rule):
    """发展态势. ``direction`` is the metric's (a decline is a move against it). ``compare``: the
    previous period, or the same period last year (逐年). ``measure``: ``consecutive`` — the number
    of periods in the run of adverse moves ending now (82 → 79 → 75 is 3); ``change`` — the adverse
    change in the metric's unit; ``change_pct`` — in percent of the earlier value. A value at or
    past ``yellow``/``red`` is that band; ``yellow: 0`` with a change measure = "must improve"."""

    kind: Literal["trend"]
    compare: Literal["previous", "last_year"] = "previous"
    measure: Literal["consecutive", "change", "change_pct"] = "consecutive"
    yellow: Number
    red: Number
    value_unit: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> TrendRule:
        _prefix(self, self.metric)
        _no_triple(self, "trend")
        if self.direction not in (Direction.higher_is_better, Direction.lower_is_better):
            raise ValueError("a trend rule needs direction higher_is_better or lower_is_better")
        _tiers(self.yellow, self.red)
        if self.measure == "consecutive" and (
            self.yellow < 2 or self.yellow != int(self.yellow) or self.red != int(self.red)
        ):
            raise ValueError("consecutive periods are whole numbers of at least 2 (连续 N 期, N ≥ 2)")
        if self.responsible.value == "office" and not self.office:
            raise ValueError("responsible: office needs `office:` (the 职能部门 that owns it)")
        return self


class ProgressRule(Rule):
    """过程值. The metric is completion so far (percent of ``plan``, the whole period's goal).
    It is judged against ``plan`` prorated over the elapsed part of ``span`` (a term or a calendar
    year; ``skip_months`` do not count, e.g. [7, 8] for the summer), with ``target``, ``standard``
    and ``warning`` given in percent of that prorated plan (100 = on schedule)."""

    kind: Literal["progress"]
    span: Literal["term", "year"] = "year"
    plan: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 100.0
    skip_months: tuple[Annotated[int, Field(ge=1, le=12)], ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ProgressRule:
        if self.direction is not Direction.higher_is_better:
            raise ValueError("a progress rule is direction: higher_is_better (more done is better)")
        if len(set(self.skip_months)) >= 12:
            raise ValueError("skip_months leaves no month to make progress in")
        Rule._check_consistent(self)  # the threshold triple, checked as for any numeric rule
        return self


class Component(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    metric: Annotated[str, Field(pattern=_METRIC)]
    weight: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 1.0


class CompositeRule(Rule):
    """综合风险. Each component metric is banded by its own threshold rule (same rulebook, with the
    entity's overrides); ``mode: count`` counts the components in yellow or red ("k of n"),
    ``mode: weighted`` sums weight × (1 for red, 0.5 for yellow). The first component sets the
    rhythm: a composite is judged when it arrives, with the latest value of each other component
    known then (within that component rule's freshness). ``metric`` names the score."""

    kind: Literal["composite"]
    components: Annotated[tuple[Component, ...], Field(min_length=2, max_length=12)]
    mode: Literal["count", "weighted"] = "count"
    yellow: Number
    red: Number

    @model_validator(mode="after")
    def _consistent(self) -> CompositeRule:
        _prefix(self, self.metric)
        _no_triple(self, "composite")
        for c in self.components:
            _prefix(self, c.metric)
        metrics = [c.metric for c in self.components]
        if len(set(metrics)) != len(metrics):
            raise ValueError("a component metric is listed twice")
        _tiers(self.yellow, self.red)
        if self.yellow <= 0:
            raise ValueError("yellow must be above 0 (no breaching component is no risk)")
        return self

    @property
    def trigger(self) -> str:
        return self.components[0].metric


class ControlRule(Rule):
    """控制限 (SPC). The value against mean ± k·σ of the entity's own last ``window`` periods
    (before this one); judged only from ``min_history`` periods on. σ is at least ``min_sigma``
    (in the metric's unit), so a perfectly flat history does not turn every wobble red.
    ``direction`` picks the side: higher_is_better watches the lower limit, lower_is_better the
    upper, range both."""

    kind: Literal["control"]
    window: Annotated[int, Field(ge=3, le=104)] = 8
    min_history: Annotated[int, Field(ge=3, le=104)] = 5
    k_yellow: Annotated[float, Field(gt=0, le=6)] = 2.0
    k_red: Annotated[float, Field(gt=0, le=6)] = 3.0
    min_sigma: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0

    @model_validator(mode="after")
    def _consistent(self) -> ControlRule:
        _prefix(self, self.metric)
        _no_triple(self, "control")
        if self.direction is Direction.boolean:
            raise ValueError("a control rule needs a numeric direction")
        if self.min_history > self.window:
            raise ValueError(f"min_history ({self.min_history}) exceeds window ({self.window})")
        if self.k_yellow > self.k_red:
            raise ValueError(f"k_yellow ({self.k_yellow:g}) must not be above k_red ({self.k_red:g})")
        return self


KIND_CLASSES: Mapping[str, type[Rule]] = {
    "threshold": Rule,
    "trend": TrendRule,
    "progress": ProgressRule,
    "composite": CompositeRule,
    "control": ControlRule,
}


class _KindOnly(BaseModel):
    """Raises the located error for an unknown ``kind`` (the rest is not checked then)."""

    model_config = ConfigDict(extra="ignore")
    kind: Literal["threshold", "trend", "progress", "composite", "control"]


def parse_rule(raw: Mapping[str, Any]) -> Rule:
    """A rule of any kind from its YAML mapping; no ``kind`` is today's threshold rule (existing
    files are unchanged). Raises pydantic's ValidationError, located by the loader."""
    kind = raw.get("kind", "threshold")
    cls = KIND_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        _KindOnly.model_validate(raw)
        raise AssertionError("unreachable")  # pragma: no cover
    if cls is Rule:
        return Rule.model_validate({k: v for k, v in raw.items() if k != "kind"})
    return cls.model_validate(raw)


def kind_of(rule: Rule) -> str:
    return getattr(rule, "kind", "threshold")


def history_metrics(rule: Rule) -> tuple[str, ...]:
    """The metrics whose history a rule reads (nothing for a threshold or progress rule; a
    composite reads its other components — the first one is the observation judged)."""
    if isinstance(rule, CompositeRule):
        return tuple(c.metric for c in rule.components[1:])
    if isinstance(rule, (TrendRule, ControlRule)):
        return (rule.metric,)
    return ()


def lint_kinds(rules: Mapping[str, Rule], where: Mapping[str, tuple[str, int]]) -> list[LocatedError]:
    """Checks across rules: a composite's components are banded by their own threshold rules, so
    each must have one (enabled). ``where``: rule id → (file, line of its id)."""
    thresholds = {r.metric for r in rules.values() if kind_of(r) == "threshold" and r.enabled}
    out = []
    for rule in rules.values():
        if isinstance(rule, CompositeRule):
            file, line = where.get(rule.id, ("(rulebook)", 1))
            for c in rule.components:
                if c.metric not in thresholds:
                    out.append(
                        LocatedError(
                            file,
                            line,
                            f"{rule.id}.components",
                            f"组成指标 {c.metric} 没有启用的阈值规则（a component needs an enabled "
                            "threshold rule that bands it）",
                        )
                    )
    return out
