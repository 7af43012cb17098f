"""The 自我诊断要素一览表 (004 附件3) as an Excel workbook, both ways.

``export_workbook`` writes the rulebook as the quality office's own working document: the 附件3
columns (诊断项目 | 诊断要素 | 诊断点/质控指标 | 主要工作 | 诊断标准 | 测量数据内涵 | 预警值 | 测量结果 |
表现形式), then the columns the round trip needs (规则编号, 目标值, 标准值, 启用, 出处 …), a sheet of
overrides and a legend (说明). ``read_workbook`` reads an edited copy back: every bad cell is an
error located by sheet, row and column, Chinese first; the good edits come back as a diff
(``Change``) and nothing is written. ``apply_changes_to_yaml`` then edits the YAML files line by
line — comments, order and provenance notes stay as they were — and the caller lints the result.

Editable: 目标值, 标准值, 预警值 (a number, or ``[下限, 上限]`` for a range rule) and 启用 (是/否).
Everything else is for reading; a change there is reported, not applied.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from pydantic import ValidationError

from zhengai.ingest.located_yaml import parse_located
from zhengai.ingest.records import Direction, Level
from zhengai.rules.kinds import kind_of
from zhengai.rules.loader import RuleSet
from zhengai.rules.messages import FIELD_ZH, explain
from zhengai.rules.model import Rule

__all__ = ["COLUMNS", "Change", "CellError", "export_workbook", "read_workbook", "apply_changes_to_yaml"]

SHEET, OVERRIDES, LEGEND = "诊断要素一览表", "覆盖", "说明"
# 附件3's nine columns, then the round-trip columns. (header, key); key None = read-only text.
COLUMNS = [
    ("诊断项目", "project"),
    ("诊断要素", "element"),
    ("诊断点/质控指标", "name"),
    ("主要工作", "work"),
    ("诊断标准", "criteria"),
    ("测量数据内涵", "description"),
    ("预警值", "warning"),
    ("测量结果", "measured"),
    ("表现形式", "form"),
    ("规则编号", "id"),
    ("层面", "level"),
    ("方向", "direction"),
    ("目标值", "target"),
    ("标准值", "standard"),
    ("单位", "unit"),
    ("周期", "cycle"),
    ("启用", "enabled"),
    ("出处", "provenance"),
]
EDITABLE = ("target", "standard", "warning", "enabled")
_DIRECTION_ZH = {"higher_is_better": "越高越好", "lower_is_better": "越低越好", "range": "区间", "boolean": "是/否"}
_YES, _NO = ("是", "true", "1", "启用", "yes"), ("否", "false", "0", "停用", "no")
_EDIT_FILL = PatternFill("solid", fgColor="FFF2CC")


@dataclass(frozen=True)
class Change:
    rule_id: str
    name: str
    field: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.rule_id}「{self.name}」{FIELD_ZH[self.field]}：{_show(self.old)} → {_show(self.new)}"


@dataclass(frozen=True, order=True)
class CellError:
    sheet: str
    row: int
    column: str  # letter and header, e.g. "N 列（标准值）"
    message: str

    def __str__(self) -> str:
        return f"{self.sheet}!第 {self.row} 行 {self.column}：{self.message}"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


_CYCLE_ZH = {"day": "每日", "week": "每周", "month": "每月", "term": "每学期", "year": "每年"}


def _cell(value: Any) -> Any:
    """A threshold as Excel should hold it: a number stays a number (sorting, formulas)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    return _show(value)


def _criteria(rule: Rule) -> str:
    if rule.direction is Direction.boolean:
        return f"应为「{'是' if rule.expected else '否'}」"
    u = rule.unit
    return (
        f"目标值 {_show(rule.target)}{u}；标准值 {_show(rule.standard)}{u}；预警值 {_show(rule.warning)}{u}"
        f"（{_DIRECTION_ZH[rule.direction.value]}）"
    )


def _form(rule: Rule) -> str:
    if rule.direction is Direction.boolean:
        return "是/否"
    return "百分比" if rule.unit == "%" else f"数值{f'（{rule.unit}）' if rule.unit else ''}"


def _row(rule: Rule, measured: str, provenance: str, diagnosis: Callable[[str], tuple[str, str]] | None) -> dict:
    project, element = diagnosis(rule.id) if diagnosis else ("", "")
    work = rule.responsible.zh + (f"（{rule.office}）" if rule.office else "")
    return {
        "project": project,
        "element": element,
        "name": rule.name,
        "work": work,
        "criteria": _criteria(rule),
        "description": rule.description or "",
        "warning": _cell(rule.warning),
        "measured": measured,
        "form": _form(rule),
        "id": rule.id,
        "level": rule.level.zh,
        "direction": _DIRECTION_ZH[rule.direction.value],
        "target": _cell(rule.target),
        "standard": _cell(rule.standard),
        "unit": rule.unit,
        "cycle": _CYCLE_ZH[rule.cycle],
        "enabled": _show(rule.enabled),
        "provenance": provenance,
    }


def export_workbook(
    rules: RuleSet,
    path: Path,
    *,
    measured: Mapping[str, str] | None = None,
    provenance: Mapping[str, str] | None = None,
    diagnosis: Callable[[str], tuple[str, str]] | None = None,
) -> Path:
    """Write the 一览表. ``measured``: rule id → the latest measured value in words (from the
    store); ``provenance``: rule id → file:line; ``diagnosis``: rule id → (诊断项目, 诊断要素)."""
    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    ws.append([h for h, _ in COLUMNS])
    for rule in sorted(rules.rules.values(), key=lambda r: (list(Level).index(r.level), r.id)):
        row = _row(rule, (measured or {}).get(rule.id, ""), (provenance or {}).get(rule.id, ""), diagnosis)
        ws.append([row[k] for _, k in COLUMNS])
    for i, (_, key) in enumerate(COLUMNS, start=1):
        ws.cell(1, i).font = Font(bold=True)
        ws.column_dimensions[get_column_letter(i)].width = 28 if key in ("criteria", "description") else 14
        if key in EDITABLE:
            for r in range(1, ws.max_row + 1):
                ws.cell(r, i).fill = _EDIT_FILL
    ws.freeze_panes = "D2"
    ov = wb.create_sheet(OVERRIDES)
    ov.append(["规则编号", "诊断点/质控指标", "单位编号", "目标值", "标准值", "预警值", "原因", "出处"])
    for rule_id, by_entity in sorted(rules.overrides.items()):
        for entity, o in sorted(by_entity.items()):
            file, line = rules.override_lines.get((rule_id, entity), ("", 0))
            ov.append(
                [
                    rule_id,
                    rules.rules[rule_id].name,
                    entity,
                    _show(o.target),
                    _show(o.standard),
                    _show(o.warning),
                    o.reason,
                    f"{file}:{line}" if file else "",
                ]
            )
    legend = wb.create_sheet(LEGEND)
    for text in _LEGEND:
        legend.append([text])
    legend.column_dimensions["A"].width = 110
    for row in legend.iter_rows():
        row[0].alignment = Alignment(wrap_text=True)
    wb.save(path)
    return path


_LEGEND = [
    "自我诊断要素一览表（004 附件3 的栏目）· 由 zhengai rules export 生成",
    "前九列为附件3 栏目：诊断项目、诊断要素、诊断点/质控指标、主要工作（责任人）、诊断标准、"
    "测量数据内涵、预警值、测量结果（最近一次测得值）、表现形式。",
    "后面各列用于导回规则库：规则编号（勿改）、层面、方向、目标值、标准值、单位、周期、启用、出处（规则所在文件:行）。",
    "可以修改的只有黄色底纹的四列：目标值、标准值、预警值（数字；区间型规则写 [下限, 上限]）"
    "和 启用（是/否）。其他列的改动不会导回。",
    "色带：达到目标值为「达成目标」；同时满足标准值和预警值为「达标」；"
    "未满足两者中离目标较近的一条为「黄色预警」，较远的一条为「红色预警」。",
    "导回：zhengai rules import 一览表.xlsx —— 先列出每一处改动（旧值 → 新值）和每一处错误"
    "（工作表、行、列），确认后加 --write 才写回 YAML。",
    "「覆盖」工作表列出各单位的阈值覆盖（只读，修改请在规则库 YAML 的 overrides: 段落中进行）。",
]


def _cell_value(raw: Any, field: str) -> Any:
    if field == "enabled":
        text = str(raw).strip().lower() if raw is not None else ""
        if text in _YES:
            return True
        if text in _NO:
            return False
        raise ValueError(f"应为「是」或「否」，现为 {raw!r}")
    if isinstance(raw, bool):
        raise ValueError(f"应为数字，现为 {raw!r}")
    if isinstance(raw, (int, float)):
        return float(raw)
    text = str(raw).strip().replace("，", ",")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return (float(value[0]), float(value[1]))
    raise ValueError(f"应为数字（区间型规则写 [下限, 上限]），现为 {raw!r}")


def read_workbook(path: Path, rules: RuleSet) -> tuple[list[Change], list[CellError]]:
    """The edits in a workbook as a diff against ``rules``, and every bad cell, located."""
    wb = load_workbook(path, read_only=True, data_only=True)
    if SHEET not in wb.sheetnames:
        return [], [CellError(str(path), 1, "", f"缺少工作表「{SHEET}」（missing sheet {SHEET}）")]
    rows = list(wb[SHEET].iter_rows(values_only=True))
    header = [str(h).strip() if h is not None else "" for h in (rows[0] if rows else ())]
    col = {key: header.index(h) for h, key in COLUMNS if h in header}
    errors: list[CellError] = []
    missing = [h for h, key in COLUMNS if key in EDITABLE + ("id",) and key not in col]
    if missing:
        return [], [CellError(SHEET, 1, "", f"缺少列：{'、'.join(missing)}（missing columns）")]

    def where(key: str) -> str:
        return f"{get_column_letter(col[key] + 1)} 列（{header[col[key]]}）"

    changes: list[Change] = []
    for r, values in enumerate(rows[1:], start=2):
        if not any(v not in (None, "") for v in values):
            continue
        rule_id = str(values[col["id"]] or "").strip()
        rule = rules.rules.get(rule_id)
        if rule is None:
            errors.append(
                CellError(SHEET, r, where("id"), f"规则编号 {rule_id!r} 不在规则库中（unknown rule id; 请勿修改此列）")
            )
            continue
        label = f"规则 {rule.id}「{rule.name}」"
        update: dict[str, Any] = {}
        bad = False
        for field in EDITABLE:
            raw = values[col[field]] if col[field] < len(values) else None
            # a trend/progress/composite/control rule keeps its thresholds in fields of its kind (rules/kinds.py)
            required = field == "enabled" or (kind_of(rule) == "threshold" and rule.direction is not Direction.boolean)
            if raw is None or str(raw).strip() == "":
                if required:
                    errors.append(
                        CellError(
                            SHEET,
                            r,
                            where(field),
                            f"{label}：{FIELD_ZH[field]}为空，此项必填（required cell is empty）",
                        )
                    )
                    bad = True
                continue
            try:
                update[field] = _cell_value(raw, field)
            except ValueError as exc:
                errors.append(
                    CellError(SHEET, r, where(field), f"{label}：{FIELD_ZH[field]}{exc}（not a valid value）")
                )
                bad = True
        if bad:
            continue
        try:
            new = type(rule).model_validate(rule.model_dump() | update)  # any kind
        except ValidationError as exc:
            for err in exc.errors():
                field = str(err["loc"][0]) if err["loc"] else ""
                errors.append(
                    CellError(
                        SHEET, r, where(field) if field in col else where("standard"), f"{label}：{explain(err, field)}"
                    )
                )
            continue
        for field in EDITABLE:
            if getattr(new, field) != getattr(rule, field):
                changes.append(Change(rule.id, rule.name, field, getattr(rule, field), getattr(new, field)))
    return changes, sorted(errors)


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return _show(value)


def apply_changes_to_yaml(folder: Path, changes: list[Change]) -> list[Path]:
    """Edit the rule files in place, one line per change; comments and order stay. Returns the
    files written. The caller lints the folder afterwards."""
    todo: dict[str, list[Change]] = {}
    for c in changes:
        todo.setdefault(c.rule_id, []).append(c)
    written = []
    for path in sorted(Path(folder).glob("*.yaml")):
        data, located = parse_located(path, str(path), top_keys=("rules", "overrides"), lists=("rules", "overrides"))
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        inserts: list[tuple[int, str]] = []
        for i, raw in enumerate(data.get("rules", [])):
            if not isinstance(raw, dict) or raw.get("id") not in todo:
                continue
            for c in todo.pop(raw["id"]):
                if c.field in raw:
                    n = located.line_of(("rules", i, c.field)) - 1
                    m = re.match(rf"^(\s*{c.field}:\s*)([^#\n]*?)(\s*(#.*)?)$", lines[n].rstrip("\n"))
                    if m is not None:  # `key: value  # comment` → the value replaced, the comment kept
                        lines[n] = m.group(1) + _yaml_value(c.new) + (m.group(3) or "") + "\n"
                else:
                    n = located.line_of(("rules", i, "id")) - 1
                    indent = lines[n].index("id:")
                    inserts.append((n + 1, " " * indent + f"{c.field}: {_yaml_value(c.new)}\n"))
        for n, text in sorted(inserts, reverse=True):
            lines.insert(n, text)
        if inserts or any(
            c for c in changes if c.rule_id in {r.get("id") for r in data.get("rules", []) if isinstance(r, dict)}
        ):
            path.write_text("".join(lines), encoding="utf-8")
            written.append(path)
    return written
