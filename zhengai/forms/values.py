"""A filled 填报 form read back: every row checked against the form and the rulebook, every
problem located in Chinese; the good rows as values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from zhengai.connectors.values import parse_number
from zhengai.forms.sheets import LocatedError, Sheet, cell_text
from zhengai.forms.spec import FormsConfig, FormSpec, allowed_range
from zhengai.forms.templates import FILLER, VALUE_COLUMNS, range_text
from zhengai.rules.loader import RuleSet

__all__ = ["ValueIn", "ReadForm", "read_form", "check_value"]


@dataclass(frozen=True)
class ValueIn:
    metric: str
    entity_id: str
    period: str
    value: float
    sheet: str | None = None
    row: int | None = None


@dataclass
class ReadForm:
    form: FormSpec | None
    period: str
    filler: str | None
    values: list[ValueIn] = field(default_factory=list)
    errors: list[LocatedError] = field(default_factory=list)
    rows: int = 0  # data rows seen


def check_value(rule, form: FormSpec | None, raw: object) -> tuple[float | None, str | None]:
    """The number in ``raw``, or why it is not acceptable for ``rule`` (Chinese)."""
    text = cell_text(raw)
    if not text:
        return None, "未填写填报值（无事件请填 0）"
    try:
        value = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else parse_number(text)
    except (ValueError, TypeError):
        value = None
    if value is None:
        return None, f"“{text[:20]}”不是数字"
    low, high, integer = allowed_range(rule, form)
    if integer and not float(value).is_integer():
        return None, f"{value:g} 不是整数（{rule.name}按{rule.unit}计）"
    if (low is not None and value < low) or (high is not None and value > high):
        return None, f"{value:g} 超出允许范围（{range_text(low, high, integer)}）"
    return float(value), None


def read_form(
    sheets: Mapping[str, Sheet],
    meta: Mapping[str, str],
    config: FormsConfig,
    rules: RuleSet,
    known: Callable[[str], bool] | None = None,
) -> ReadForm:
    """Read a 填报 workbook generated for one of ``config``'s forms. ``known(entity_id)`` says
    whether the directory holds an entity (None: not checked)."""
    try:
        form = config.form(meta.get("form", ""))
    except KeyError:
        return ReadForm(
            None,
            meta.get("period", ""),
            None,
            errors=[
                LocatedError(
                    "_zhengai", None, None, None, f"填报表“{meta.get('form', '')}”未在填报配置中，请使用最新下发的模板"
                )
            ],
        )
    period = meta.get("period", "")
    out = ReadForm(form, period, None)
    sheet = sheets.get("填报") or next(iter(sheets.values()), None)
    if sheet is None:
        out.errors.append(LocatedError("填报", None, None, None, "工作簿中没有“填报”工作表"))
        return out
    missing = sheet.find_header(("指标编号", "对象编号", "填报值"))
    if missing:
        out.errors.append(missing)
        return out
    for cells in sheet.rows[: sheet.header_row or 0]:
        names = [cell_text(c) for c in cells]
        if FILLER in names:
            i = names.index(FILLER)
            out.filler = cell_text(cells[i + 1]) if i + 1 < len(cells) else None
    seen: dict[tuple[str, str], int] = {}
    for n, cells in sheet.data():
        out.rows += 1
        metric = cell_text(sheet.get(cells, "指标编号"))
        entity = cell_text(sheet.get(cells, "对象编号"))
        row_period = cell_text(sheet.get(cells, "期间")) or period
        if metric not in form.metrics:
            out.errors.append(sheet.error(n, "指标编号", f"指标“{metric or '（空）'}”不在本表（{form.name}）中"))
            continue
        if not entity:
            out.errors.append(sheet.error(n, "对象编号", "未填写对象编号"))
            continue
        if known is not None and not known(entity):
            out.errors.append(sheet.error(n, "对象编号", f"对象编号“{entity}”不在学校的单位目录中"))
            continue
        if row_period != period:
            out.errors.append(sheet.error(n, "期间", f"期间“{row_period}”与本表的期间 {period} 不一致"))
            continue
        if (metric, entity) in seen:
            out.errors.append(sheet.error(n, "对象编号", f"与第 {seen[(metric, entity)]} 行重复（同一指标、同一对象）"))
            continue
        seen[(metric, entity)] = n
        value, why = check_value(rules.rules[metric], form, sheet.get(cells, "填报值"))
        if why:
            out.errors.append(sheet.error(n, "填报值", why))
            continue
        out.values.append(ValueIn(metric, entity, period, value, sheet.title, n))  # type: ignore[arg-type]
    if not out.rows:
        out.errors.append(sheet.error(None, None, "表中没有数据行"))
    return out


assert VALUE_COLUMNS[0] == "指标编号"  # the reader and the writer agree on the header
