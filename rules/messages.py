"""Rulebook errors people understand: Chinese first, English after, naming the rule.

``rule_errors`` turns a pydantic ``ValidationError`` of one rule or override into located errors
whose message reads::

    规则 course.attendance_rate「学生到课率」：标准值 standard 为 "九十"，应为数字或 [下限, 上限]
    （standard: Input should be a valid number …）

— the rule by id and 中文名, the field by its Chinese name, the offending value and what is
allowed; the original English follows in brackets for engineers and search engines. The Excel
import (``rules.workbook``) uses ``explain`` for its cells, so both say the same thing.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from zhengai.ingest.located_yaml import Located, LocatedError, Path_, dotted

__all__ = ["FIELD_ZH", "explain", "rule_label", "rule_errors", "zh_first"]

FIELD_ZH = {
    "id": "规则编号",
    "name": "中文名",
    "name_en": "英文名",
    "metric": "指标",
    "level": "层面",
    "unit": "单位",
    "direction": "方向",
    "target": "目标值",
    "standard": "标准值",
    "warning": "预警值",
    "expected": "期望值",
    "fail_band": "不符合时的色带",
    "inclusive": "是否含边界",
    "cycle": "评价周期",
    "freshness": "更新时限",
    "responsible": "责任人",
    "office": "职能部门",
    "floor": "不得低于学校标准",
    "source": "数据来源",
    "description": "说明",
    "enabled": "启用",
    "lifecycle": "预警流程",
    "rule": "规则",
    "entity": "单位",
    "reason": "原因",
    "applies_to": "适用范围",
    "pending_periods": "连续几期才开预警",
    "recovery_periods": "恢复所需期数",
    "recovery_margin": "恢复余量",
    "due_days": "整改期限（天）",
    "escalate_every_days": "逾期升级间隔（天）",
    "max_due_days": "最长整改期限（天）",
    "require_measure": "须登记改进措施",
}

# Messages of the model's own validators, in Chinese (the English stays after them).
_VALUE_ERRORS = [
    (
        r"higher_is_better needs target ≥ standard and target ≥ warning "
        r"\(got target (\S+), standard (\S+), warning (\S+)\)",
        "方向为越高越好（higher_is_better）时，目标值须不低于标准值和预警值（现为 目标值 {0}、标准值 {1}、预警值 {2}）",
    ),
    (
        r"lower_is_better needs target ≤ standard and target ≤ warning "
        r"\(got target (\S+), standard (\S+), warning (\S+)\)",
        "方向为越低越好（lower_is_better）时，目标值须不高于标准值和预警值（现为 目标值 {0}、标准值 {1}、预警值 {2}）",
    ),
    (r"missing (.+) \(", "缺少 {0}（目标值、标准值、预警值三者必填）"),
    (r"metric '(\S+)' does not belong to level '(\S+)'", "指标 {0} 不属于层面 {1}（指标名须以 {1}. 开头）"),
    (r"responsible: office needs", "责任人为 office（职能部门）时须写 office: 归口职能部门"),
    (r"a boolean rule takes `expected`, not (.+)", "是/否型规则（boolean）只写 expected，不写 {0}"),
    (r"a boolean rule needs", "是/否型规则（boolean）须写 expected: true 或 expected: false"),
    (r"`expected` is only for direction: boolean", "只有是/否型规则（direction: boolean）才写 expected"),
    (r"a range rule needs", "区间型规则（range）的目标值、标准值、预警值都须写成 [下限, 上限]"),
    (r"only direction: range takes", "只有区间型规则（direction: range）才写 [下限, 上限]"),
    (r"target range (.+) must lie inside the (\w+) range (.+)", "目标区间 {0} 须落在{1}区间 {2} 之内"),
    (r"(\w+): low (\S+) is above high (\S+)", "{0} 的下限 {1} 高于上限 {2}"),
    (r"duration '(.*)' must look like", "时长 {0!r} 应写成 36h、14d 或 2w 这样的形式"),
    (r"an override must set at least one of", "覆盖须至少写 target、standard、warning 之一"),
    (r"due_days \((.+)\) exceed max_due_days (\d+)", "整改期限 {0} 天超过最长整改期限 {1} 天"),
]


def _value(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "…"


def zh_first(zh: str, en: str) -> str:
    return f"{zh}（{en}）"


def explain(err: Any, field: str) -> str:
    """One pydantic error in Chinese: what is wrong with the value and what is allowed."""
    kind, ctx, given = err["type"], err.get("ctx") or {}, err.get("input")
    en = err["msg"].removeprefix("Value error, ")
    name = f"{FIELD_ZH.get(field, field)} {field}" if field else "规则"
    if kind == "extra_forbidden":
        return zh_first(
            f"未知字段 {field!r}（拼写是否有误？可用字段见 JSON Schema）", "unknown key (check the spelling)"
        )
    if kind == "missing":
        return zh_first(f"缺少必填字段{name}", "Field required")
    if kind in ("enum", "literal_error"):
        return zh_first(f"{name} 为 {_value(given)}，应为其中之一：{ctx.get('expected', '')}", en)
    if kind in (
        "float_parsing",
        "float_type",
        "int_parsing",
        "int_type",
        "finite_number",
        "tuple_type",
        "too_long",
        "too_short",
    ):
        return zh_first(f"{name} 为 {_value(given)}，应为数字（区间型规则写 [下限, 上限]）", en)
    if kind in ("bool_parsing", "bool_type"):
        return zh_first(f"{name} 为 {_value(given)}，应为 true 或 false", en)
    if kind == "string_pattern_mismatch":
        return zh_first(f"{name} 为 {_value(given)}，应为「层面.英文小写名」，如 course.attendance_rate", en)
    if kind in ("string_too_short", "string_too_long"):
        return zh_first(f"{name} 为 {_value(given)}，长度应在允许范围内", en)
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {
            "greater_than_equal": "不小于",
            "greater_than": "大于",
            "less_than_equal": "不大于",
            "less_than": "小于",
        }[kind]
        limit = next(iter(ctx.values()), "")
        return zh_first(f"{name} 为 {_value(given)}，应{bound} {limit}", en)
    if kind in ("string_type", "dict_type", "model_type", "list_type"):
        return zh_first(f"{name} 为 {_value(given)}，类型不对", en)
    for pattern, zh in _VALUE_ERRORS:
        m = re.search(pattern, en)
        if m:
            return zh_first(zh.format(*m.groups()), en)
    return zh_first(f"{name} 的值 {_value(given)} 不符合要求", en)


def rule_label(raw: Any) -> str:
    """「规则 <id>「<中文名>」」 from a raw rule mapping (whatever of it is there)."""
    if not isinstance(raw, dict):
        return "规则"
    rid, name = raw.get("id"), raw.get("name")
    label = f"规则 {rid}" if isinstance(rid, str) else "规则（无编号）"
    return label + (f"「{name}」" if isinstance(name, str) and name else "")


def _clean(loc: tuple) -> tuple:
    # pydantic's union-variant tags ('float', 'tuple[float, float]') are not fields
    return tuple(
        p
        for p in loc
        if isinstance(p, int)
        or not (any(c in str(p) for c in "[]") or p in ("float", "int", "bool", "str", "function-after"))
    )


def rule_errors(
    exc: ValidationError, located: Located, where: Path_, raw: Any, label: str | None = None
) -> list[LocatedError]:
    """Located errors of one rule (or override), Chinese first, each naming the rule. A union's
    several variant errors for one field become one error."""
    label = label or rule_label(raw)
    out: list[LocatedError] = []
    seen: set[Path_] = set()
    for err in exc.errors():
        clean = _clean(tuple(err["loc"]))
        path = where + clean
        if path in seen:
            continue
        seen.add(path)
        field = str(clean[-1]) if clean and not isinstance(clean[-1], int) else ""
        out.append(LocatedError(located.file, located.line_of(path), dotted(path), f"{label}：{explain(err, field)}"))
    return out
