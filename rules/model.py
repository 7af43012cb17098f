"""Typed models of the rulebook the quality office edits (YAML under ``rules/rulebook/``).

Parsing is kept apart from executing: ``loader.py`` turns YAML into these models (collecting every
error with file, line and field); ``evaluator.py`` executes them. Unknown keys are rejected.

A rule file looks like::

    rules:
      - id: course.attendance_rate
        name: 学生到课率
        metric: course.attendance_rate
        level: course
        unit: "%"
        direction: higher_is_better     # lower_is_better | boolean | range
        target: 98                      # 目标值
        standard: 90                    # 标准值
        warning: 95                     # 预警值 (either side of the standard)
        cycle: week
        freshness: 21d
        responsible: course_teacher
    overrides:
      - rule: course.attendance_rate
        entity: D03                     # any directory entity: department, major, class, course …
        standard: 88
        reason: 实训周到课统计口径不同
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from functools import cached_property
from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zhengai.ingest.durations import DurationTooLong
from zhengai.ingest.durations import parse_duration as _parse_duration
from zhengai.ingest.records import Direction, Level, Role
from zhengai.rules.applicability import AppliesTo

__all__ = [
    "Rule",
    "Override",
    "RuleFile",
    "Inclusive",
    "Cycle",
    "LifecyclePolicy",
    "DueDays",
    "parse_duration",
    "CYCLE_RECOVERY_PERIODS",
    "CYCLE_MAX_DUE_DAYS",
]

Cycle = Literal["day", "week", "month", "term", "year"]
Number = Annotated[float, Field(allow_inf_nan=False)]
Pair = tuple[Number, Number]

_CYCLE_FRESHNESS = {
    "day": timedelta(days=3),
    "week": timedelta(days=14),
    "month": timedelta(days=45),
    "term": timedelta(days=200),
    "year": timedelta(days=400),
}


def parse_duration(text: str) -> timedelta:
    try:
        return _parse_duration(text)
    except DurationTooLong:
        raise
    except ValueError:
        raise ValueError(f"duration {text!r} must look like 36h, 14d or 2w") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Inclusive(_Strict):
    """Whether a value exactly on a threshold meets it (default: yes, ≥ / ≤)."""

    target: bool = True
    standard: bool = True
    warning: bool = True


def _check_pair(name: str, value: object) -> None:
    if isinstance(value, tuple) and value[0] > value[1]:
        raise ValueError(f"{name}: low {value[0]} is above high {value[1]}")


class DueDays(_Strict):
    """限期改进: days from opening to the improvement due date, by band."""

    yellow: Annotated[int, Field(ge=1, le=365)] = 14
    red: Annotated[int, Field(ge=1, le=365)] = 7


# Consecutive good periods past the recovery line before a warning counts as recovered, by the
# rule's cycle, when the rule does not say. The seeds diagnose courses and teachers once a month
# (自主诊断每月实施一次, 004:406, 004:430, 004:457): a weekly metric must hold a month (4 weeks),
# a daily one two teaching weeks; a monthly one two months; a term or year metric one period (the
# next 考核性诊断 is a term away, 004:484).
CYCLE_RECOVERY_PERIODS = {"day": 10, "week": 4, "month": 2, "term": 1, "year": 1}
# The latest improvement due date (限期改进) a person may set, in days from when they record it, by
# cycle: far enough for the measure to show in the metric, near enough that escalation still comes.
CYCLE_MAX_DUE_DAYS = {"day": 30, "week": 60, "month": 120, "term": 200, "year": 365}


class LifecyclePolicy(_Strict):
    """How a rule's warnings live (architecture "Warning lifecycle").

    pending_periods: consecutive breaching periods before a warning opens (1 = at once).
    recovery_periods: consecutive periods the recovery threshold must hold before recovery;
        unset = the cycle's default (``CYCLE_RECOVERY_PERIODS``: a weekly metric 4 weeks).
    recovery_margin: hysteresis — how far past the inner threshold (towards the target, in the
        metric's unit) a value must be to count towards recovery, so a value hovering at the
        line does not flap.
    escalate_every_days: after the due date passes, escalate one level up the responsibility
        chain, and again every this many days while still unresolved.
    max_due_days: the latest improvement due date a person may set, in days from recording it;
        unset = the cycle's default (``CYCLE_MAX_DUE_DAYS``).
    require_measure: 复评 closes a warning only when it was acknowledged and a 改进措施 recorded
        (or 质量办 waived that with a reason). ``false`` only for purely informational rules.
    """

    pending_periods: Annotated[int, Field(ge=1, le=12)] = 1
    recovery_periods: Annotated[int, Field(ge=1, le=52)] | None = None
    recovery_margin: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    due_days: DueDays = DueDays()
    escalate_every_days: Annotated[int, Field(ge=1, le=365)] = 7
    max_due_days: Annotated[int, Field(ge=1, le=365)] | None = None
    require_measure: bool = True

    @model_validator(mode="after")
    def _due_within_max(self) -> LifecyclePolicy:
        if self.max_due_days is not None and max(self.due_days.red, self.due_days.yellow) > self.max_due_days:
            raise ValueError(
                f"due_days ({self.due_days.red}/{self.due_days.yellow}) exceed max_due_days {self.max_due_days}"
            )
        return self

    def for_cycle(self, cycle: str) -> LifecyclePolicy:
        """The policy with the cycle's defaults filled in where the rule left them unset."""
        return self.model_copy(
            update={
                "recovery_periods": self.recovery_periods or CYCLE_RECOVERY_PERIODS.get(cycle, 1),
                "max_due_days": self.max_due_days
                or max(CYCLE_MAX_DUE_DAYS.get(cycle, 365), self.due_days.red, self.due_days.yellow),
            }
        )

    @property
    def recovery_needed(self) -> int:
        return self.recovery_periods or 1


class Rule(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z]+\.[a-z0-9_]{1,63}$")]
    name: Annotated[str, Field(min_length=1, max_length=64)]  # Chinese name, shown to people
    name_en: str | None = None
    metric: Annotated[str, Field(pattern=r"^[a-z]+\.[a-z0-9_]{1,63}$")]
    level: Level
    unit: str = ""
    direction: Direction
    target: Number | Pair | None = None  # 目标值
    standard: Number | Pair | None = None  # 标准值
    warning: Number | Pair | None = None  # 预警值
    expected: bool | None = None  # boolean rules: the healthy value
    fail_band: Literal["yellow", "red"] = "red"  # boolean rules: band when not as expected
    inclusive: Inclusive = Inclusive()
    cycle: Cycle
    freshness: str | None = None  # e.g. 14d; default from the cycle
    responsible: Role
    office: str | None = None  # 职能部门 that owns the indicator (required for role `office`)
    floor: bool = False  # overrides may not be looser than the school's base standard
    source: str | None = None  # source system(s), e.g. 教务 / 评教
    description: str | None = None
    enabled: bool = True
    lifecycle: LifecyclePolicy = Field(default_factory=lambda: LifecyclePolicy())
    applies_to: AppliesTo | None = None  # institution types / province indicator sets (rules.applicability)

    @field_validator("freshness")
    @classmethod
    def _freshness(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        return self._check_consistent()

    def _check_consistent(self) -> Rule:
        """The checks of a rule with a threshold triple; a kind that keeps the triple calls them
        from its own validator (pydantic types a validator as its decorator, not as a method)."""
        if self.metric.split(".")[0] != self.level.value:
            raise ValueError(
                f"metric {self.metric!r} does not belong to level {self.level.value!r} "
                f"(its prefix must be {self.level.value}.)"
            )
        if self.responsible is Role.office and not self.office:
            raise ValueError("responsible: office needs `office:` (the 职能部门 that owns it)")
        values = {"target": self.target, "standard": self.standard, "warning": self.warning}
        if self.direction is Direction.boolean:
            given = [k for k, v in values.items() if v is not None]
            if given:
                raise ValueError(f"a boolean rule takes `expected`, not {', '.join(given)}")
            if self.expected is None:
                raise ValueError("a boolean rule needs `expected: true` or `expected: false`")
            return self
        if self.expected is not None:
            raise ValueError("`expected` is only for direction: boolean")
        missing = [k for k, v in values.items() if v is None]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} (目标值/标准值/预警值 are all required)")
        is_pair = [isinstance(v, tuple) for v in values.values()]
        if self.direction is Direction.range:
            if not all(is_pair):
                raise ValueError("a range rule needs [low, high] pairs for target, standard, warning")
            for k, v in values.items():
                _check_pair(k, v)
            tr, sr, wr = (cast(tuple[float, float], v) for v in (self.target, self.standard, self.warning))
            for name, outer in (("standard", sr), ("warning", wr)):
                if not (outer[0] <= tr[0] and tr[1] <= outer[1]):
                    raise ValueError(f"target range {list(tr)} must lie inside the {name} range {list(outer)}")
            return self
        if any(is_pair):
            raise ValueError("only direction: range takes [low, high] pairs")
        t, s, w = (cast(float, v) for v in (self.target, self.standard, self.warning))
        if self.direction is Direction.higher_is_better and not (t >= s and t >= w):
            raise ValueError(
                f"higher_is_better needs target ≥ standard and target ≥ warning (got target {t}, "
                f"standard {s}, warning {w})"
            )
        if self.direction is Direction.lower_is_better and not (t <= s and t <= w):
            raise ValueError(
                f"lower_is_better needs target ≤ standard and target ≤ warning (got target {t}, "
                f"standard {s}, warning {w})"
            )
        return self

    @cached_property
    def policy(self) -> LifecyclePolicy:
        """``lifecycle`` with the cycle's defaults (recovery periods, maximum due date) filled in."""
        return self.lifecycle.for_cycle(self.cycle)

    @cached_property
    def freshness_window(self) -> timedelta:
        return parse_duration(self.freshness) if self.freshness else _CYCLE_FRESHNESS[self.cycle]

    @cached_property
    def version(self) -> str:
        """Content hash: changes whenever anything about the rule changes."""
        # fields added later stay out of the hash while unset, so untagged rules keep their versions
        unset = {"applies_to"} if self.applies_to is None else set()
        blob = json.dumps(self.model_dump(mode="json", exclude=unset), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


class Override(_Strict):
    """A threshold override for one entity and everything below it in the directory."""

    rule: str
    entity: Annotated[str, Field(min_length=1, max_length=64)]
    target: Number | Pair | None = None
    standard: Number | Pair | None = None
    warning: Number | Pair | None = None
    reason: Annotated[str, Field(min_length=2)]  # why this unit differs — required for the audit

    @model_validator(mode="after")
    def _something(self) -> Override:
        if self.target is None and self.standard is None and self.warning is None:
            raise ValueError("an override must set at least one of target, standard, warning")
        return self


class RuleFile(_Strict):
    rules: list[dict] = Field(default_factory=list)  # validated one by one for located errors
    overrides: list[dict] = Field(default_factory=list)
