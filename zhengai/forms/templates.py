"""Excel templates generated from the rulebook: the 填报 forms, the department task table and the
quality-incident register. Each carries a hidden ``_zhengai`` sheet (kind, form, period, office,
due) so that a filled copy is recognised wherever it arrives (upload page or drop folder).

Layout of a 填报 form (sheet ``填报``): a title row, a row with the office, due date and a cell
for the filler's staff id, the header, one row per (indicator, entity) with the unit and allowed
range, and notes and signature lines under the table (which the reader skips).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation

from zhengai.forms.sheets import META_SHEET
from zhengai.forms.spec import FormSpec, allowed_range
from zhengai.ingest.units import CST
from zhengai.rules.loader import RuleSet

__all__ = [
    "VALUE_COLUMNS",
    "TASK_COLUMNS",
    "INCIDENT_COLUMNS",
    "MONTHS",
    "write_form",
    "write_tasks",
    "write_incidents",
    "range_text",
    "FILLER",
]

VALUE_COLUMNS = ("指标编号", "指标名称", "对象编号", "对象名称", "期间", "单位", "允许范围", "填报值", "说明")
MONTHS = (1, 2, 3, 4, 5, 6, 9, 10, 11, 12)  # 寒暑假 (7、8 月) have no column (seed 004:233–238)
TASK_COLUMNS = (
    "序号",
    "部门",
    "工作任务",
    "属性",
    "类型",
    "完成时限",
    *(f"{m}月" for m in MONTHS),
    "责任人工号",
    "责任人",
)
INCIDENT_COLUMNS = (
    "事故编号",
    "发生时间",
    "责任单位编号",
    "课程编号",
    "类别",
    "等级",
    "一票否决",
    "事故经过",
    "处理情况",
)
FILLER = "填报人工号"
_BOLD, _FILL = Font(bold=True), PatternFill("solid", fgColor="FFF2CC")  # the cells people fill


def range_text(low: float | None, high: float | None, integer: bool) -> str:
    def num(x: float) -> str:
        return f"{x:g}"

    kind = "整数" if integer else "数值"
    if low is not None and high is not None:
        return f"{num(low)}–{num(high)} 的{kind}"
    if low is not None:
        return f"≥ {num(low)} 的{kind}"
    return kind


def _meta(wb: Workbook, **values: str) -> None:
    ws = wb.create_sheet(META_SHEET)
    for k, v in values.items():
        ws.append([k, v])
    ws.sheet_state = "hidden"


def _head(ws, title: str, office: str, due: datetime, width: int) -> None:
    ws.append([title])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append(["填报部门", office, "截止时间", due.astimezone(CST).strftime("%Y-%m-%d"), FILLER, None])
    ws["F2"].fill = _FILL
    ws.append([])
    ws.column_dimensions["A"].width = 24
    for col in "BCDEFGHI"[: width - 1]:
        ws.column_dimensions[col].width = 16


def _foot(ws, notes: Sequence[str]) -> None:
    ws.append([])
    for n in notes:
        ws.append([n])
    ws.append(["填表人：", None, "审核人：", None, "负责人：", None])


def write_form(
    form: FormSpec,
    rules: RuleSet,
    period: str,
    entities: Sequence[tuple[str, str]],
    due: datetime,
    path: Path,
    school_name: str = "",
) -> Path:
    """A 填报 template for ``form`` and ``period``: one row per (indicator, entity)."""
    wb = Workbook()
    ws = wb.active
    ws.title = "填报"
    _head(ws, f"{school_name}{form.name}（{period}）", form.office, due, len(VALUE_COLUMNS))
    ws.append(list(VALUE_COLUMNS))
    for c in ws[4]:
        c.font = _BOLD
    for metric in form.metrics:
        rule = rules.rules[metric]
        low, high, integer = allowed_range(rule, form)
        for eid, ename in entities:
            ws.append(
                [
                    metric,
                    rule.name,
                    eid,
                    ename,
                    period,
                    rule.unit,
                    range_text(low, high, integer),
                    None,
                    rule.description or "",
                ]
            )
            ws.cell(ws.max_row, 8).fill = _FILL
            dv = DataValidation(
                type="whole" if integer else "decimal",
                operator="between" if high is not None else "greaterThanOrEqual",
                formula1=f"{low if low is not None else -1e15:g}",
                formula2=f"{high:g}" if high is not None else None,
                showErrorMessage=True,
                errorTitle="超出允许范围",
                error=f"{rule.name}：请填写{range_text(low, high, integer)}",
            )
            ws.add_data_validation(dv)
            dv.add(ws.cell(ws.max_row, 8))
    _foot(
        ws,
        [
            f"注：1. 只填写“填报值”列（黄色），并在第 2 行填写填报人工号；无事件的指标填 0。"
            f"2. 请于 {due.astimezone(CST):%Y-%m-%d} 前上传或放入投递目录。3. 请勿改动表头和编号。"
        ],
    )
    _meta(wb, kind="values", form=form.id, period=period, office=form.office, due=due.isoformat())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def write_tasks(
    path: Path,
    year: int,
    office: str,
    due: datetime,
    rows: Sequence[Sequence] = (),
    period: str | None = None,
    school_name: str = "",
) -> Path:
    """部门工作任务完成情况一览表: one row per task; completion (%) per month, 1–6 and 9–12 月."""
    wb = Workbook()
    ws = wb.active
    ws.title = "任务"
    _head(ws, f"{school_name}{year} 年部门工作任务完成情况一览表", office, due, len(TASK_COLUMNS))
    ws.append(list(TASK_COLUMNS))
    for c in ws[4]:
        c.font = _BOLD
    for r in rows:
        ws.append(list(r))
    _foot(
        ws,
        [
            "注：属性填“重点”或“常规”；类型填“部门”（部门工作任务）或“个人”（教师个人发展计划任务）；"
            "完成时限填日期（如 2026-06-30）；各月填截至该月的完成百分比（如 60% 或 100），完成填 100。"
        ],
    )
    _meta(wb, kind="tasks", form="tasks", period=period or f"{year}", office=office, due=due.isoformat())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def write_incidents(
    path: Path, period: str, office: str, due: datetime, rows: Sequence[Sequence] = (), school_name: str = ""
) -> Path:
    """质量事故登记表: 编号, time, unit, course, category, grade, 一票否决, what happened, handling."""
    wb = Workbook()
    ws = wb.active
    ws.title = "事故登记"
    _head(ws, f"{school_name}教学/质量事故登记表（{period}）", office, due, len(INCIDENT_COLUMNS))
    ws.append(list(INCIDENT_COLUMNS))
    for c in ws[4]:
        c.font = _BOLD
    for r in rows:
        ws.append(list(r))
    _foot(
        ws,
        [
            "注：类别填 教学事故 / 质量事故 / 校园不稳定事件 / 违规办学事件；等级填 一般 / 较大 / 重大；"
            "一票否决填 是 或 否；发生时间填 2026-10-12 或 2026-10-12 14:30。本期无事故请提交空表。"
        ],
    )
    _meta(wb, kind="incidents", form="incidents", period=period, office=office, due=due.isoformat())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path
