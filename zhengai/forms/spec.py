"""The forms configuration (``forms.yaml``): which 填报 forms exist, who fills them, by when, and
how strict the intake is; plus the period arithmetic every due date needs.

Validated at the edge (pydantic, unknown keys forbidden); errors name the file and the field.
Every metric a form names must be a rule of the rulebook, all of one level.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zhengai.ingest.plausibility import period_kind, period_start
from zhengai.ingest.records import Level
from zhengai.ingest.units import CST
from zhengai.rules.loader import RuleSet
from zhengai.rules.model import Rule

__all__ = [
    "FormSpec",
    "TasksSpec",
    "IncidentsSpec",
    "FormsConfig",
    "load_forms",
    "period_end",
    "allowed_range",
    "FormsConfigError",
    "SHIPPED",
]

SHIPPED = Path(__file__).resolve().parent / "forms.yaml"
_COUNT_UNITS = ("起", "人", "天", "次", "项", "篇", "门", "个", "本", "家")


class FormsConfigError(ValueError):
    """The forms configuration is wrong; the text names the file and field (Chinese first)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class FormSpec(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.]{1,62}$")]
    name: Annotated[str, Field(min_length=2, max_length=64)]
    office: Annotated[str, Field(min_length=2, max_length=64)]
    metrics: Annotated[list[str], Field(min_length=1)]
    due_days: Annotated[int, Field(ge=0, le=366)] = 10
    mode: Literal["per_row", "whole"] = "per_row"
    ranges: dict[str, tuple[float | None, float | None]] = Field(default_factory=dict)


class TasksSpec(_Strict):
    office: str = "党政办"
    due_days: Annotated[int, Field(ge=0, le=60)] = 5


Grade = Literal["一般", "较大", "重大"]
_NOTIFY: tuple[Grade, ...] = ("较大", "重大")


class IncidentsSpec(_Strict):
    office: str = "督导处"
    count_stability: bool = False
    notify_grades: list[Grade] = Field(default_factory=lambda: list(_NOTIFY))


class FormsConfig(_Strict):
    forms: list[FormSpec] = Field(default_factory=list)
    tasks: TasksSpec = TasksSpec()
    incidents: IncidentsSpec = IncidentsSpec()

    def form(self, form_id: str) -> FormSpec:
        for f in self.forms:
            if f.id == form_id:
                return f
        raise KeyError(form_id)

    def level(self, form: FormSpec, rules: RuleSet) -> Level:
        return rules.rules[form.metrics[0]].level


def load_forms(path: Path | None = None, rules: RuleSet | None = None) -> FormsConfig:
    """The forms configuration (default: the shipped one), checked against ``rules`` if given."""
    path = Path(path or SHIPPED)
    try:
        config = FormsConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise FormsConfigError(f"填报配置 {path.name} 有误：{errors}") from None
    if rules is not None:
        problems = []
        for f in config.forms:
            unknown = [m for m in f.metrics if m not in rules.rules]
            if unknown:
                problems.append(f"forms[{f.id}].metrics: 规则库中没有 {', '.join(unknown)}")
                continue
            if len({rules.rules[m].level for m in f.metrics}) > 1:
                problems.append(f"forms[{f.id}].metrics: 一张表只能填一个层面的指标")
        if problems:
            raise FormsConfigError(f"填报配置 {path.name} 有误：" + "；".join(problems))
    return config


def period_end(period: str) -> datetime:
    """The first instant after ``period`` (midnight China time)."""
    kind, start = period_kind(period), period_start(period).astimezone(CST)
    if kind == "day":
        return start + timedelta(days=1)
    if kind == "week":
        return start + timedelta(weeks=1)
    if kind == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    if kind == "year":
        return start.replace(year=start.year + 1)
    # term: term 1 runs to 1 February, term 2 to 1 September
    return start.replace(year=start.year + 1, month=2) if start.month == 9 else start.replace(month=9)


def allowed_range(rule: Rule, form: FormSpec | None = None) -> tuple[float | None, float | None, bool]:
    """(low, high, integer) a value of ``rule`` may take: the form's range, else one from the unit."""
    integer = any(u in rule.unit for u in _COUNT_UNITS)
    if form is not None and rule.metric in form.ranges:
        low, high = form.ranges[rule.metric]
        return low, high, integer
    if rule.unit == "%":
        return 0.0, 100.0, False
    if rule.unit.startswith("分"):
        return 0.0, 100.0, False
    return 0.0, None, integer
