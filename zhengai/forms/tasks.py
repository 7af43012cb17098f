"""任务能跟踪: the department task table (部门工作任务完成情况一览表, seeds 004:233–238) read
from Excel, and the two metrics computed from it.

- ``school.task_ontime_completion`` (month M): of the 部门 tasks due in M (up to ``as_of``), the
  share whose completion reached 100 % by the month column of their 完成时限;
- ``teacher.plan_completion`` (teacher T, month M): of T's 个人 tasks (教师个人发展计划) due by the
  end of M (up to ``as_of``), the share completed (100 % in any month up to M).

An overdue task — past its 完成时限, not at 100 % — lowers these, and so warns its owner through the
rules (the teacher for 个人 tasks, 党政办 for 部门 tasks); ``overdue`` lists them by owner.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from zhengai.connectors.values import parse_number
from zhengai.forms.sheets import LocatedError, Sheet, cell_text, parse_date
from zhengai.forms.templates import MONTHS
from zhengai.forms.values import ValueIn
from zhengai.ingest.units import CST

__all__ = ["Task", "read_tasks", "task_values", "overdue", "task_id", "parse_completion"]

REQUIRED = ("工作任务", "属性", "完成时限", "责任人工号")
_DONE_WORDS = {"完成": 100.0, "已完成": 100.0, "√": 100.0, "未完成": 0.0, "未开始": 0.0}


@dataclass(frozen=True)
class Task:
    id: str
    year: int
    unit: str
    title: str
    attribute: str  # 重点 | 常规
    kind: str  # 部门 | 个人
    due: date
    owner_id: str
    months: Mapping[int, float] = field(default_factory=dict)

    def done_by(self, month: int) -> bool:
        return any(v >= 100 for m, v in self.months.items() if m <= month)


def task_id(year: int, unit: str, title: str, owner: str) -> str:
    """Stable across re-imports: the same task of the same unit and owner in the same year."""
    return "T" + hashlib.sha256(f"{year}|{unit}|{title}|{owner}".encode()).hexdigest()[:20]


def parse_completion(raw: object) -> float | None:
    """``60%`` / ``60`` / ``0.6`` (a percentage cell) / ``完成`` → percent; blank → None."""
    text = cell_text(raw)
    if not text:
        return None
    if text in _DONE_WORDS:
        return _DONE_WORDS[text]
    value = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else parse_number(text)
    if isinstance(raw, float) and 0 < raw <= 1 and not raw.is_integer():
        value = raw * 100  # a cell formatted as a percentage holds the fraction
    if not 0 <= value <= 100:
        raise ValueError(f"{value:g} 不在 0–100 之间")
    return float(value)


def read_tasks(sheet: Sheet, year: int) -> tuple[list[Task], list[LocatedError], int]:
    """Tasks, located errors and the number of data rows (a bad row is reported, the rest kept)."""
    missing = sheet.find_header(REQUIRED)
    if missing:
        return [], [missing], 0
    tasks: list[Task] = []
    errors: list[LocatedError] = []
    rows = 0
    seen: dict[str, int] = {}
    for n, cells in sheet.data():
        rows += 1
        title = cell_text(sheet.get(cells, "工作任务"))
        unit = cell_text(sheet.get(cells, "部门"))
        attribute = cell_text(sheet.get(cells, "属性"))
        kind = cell_text(sheet.get(cells, "类型")) or "部门"
        owner = cell_text(sheet.get(cells, "责任人工号"))
        due = parse_date(sheet.get(cells, "完成时限"))
        problem = (
            ("工作任务", "未填写工作任务")
            if not title
            else ("属性", f"属性须为“重点”或“常规”，不是“{attribute}”")
            if attribute not in ("重点", "常规")
            else ("类型", f"类型须为“部门”或“个人”，不是“{kind}”")
            if kind not in ("部门", "个人")
            else ("完成时限", f"“{cell_text(sheet.get(cells, '完成时限'))}”不是日期（如 2026-06-30）")
            if due is None
            else ("完成时限", f"完成时限 {due} 不在 {year} 年")
            if due.year != year
            else ("责任人工号", "未填写责任人工号")
            if not owner
            else None
        )
        if problem:
            errors.append(sheet.error(n, *problem))
            continue
        months: dict[int, float] = {}
        bad = None
        for m in MONTHS:
            name = f"{m}月"
            try:
                value = parse_completion(sheet.get(cells, name))
            except ValueError as exc:
                bad = sheet.error(n, name, f"完成情况“{cell_text(sheet.get(cells, name))}”无法识别：{exc}")
                break
            if value is not None:
                months[m] = value
        if bad:
            errors.append(bad)
            continue
        tid = task_id(year, unit, title, owner)
        if tid in seen:
            errors.append(sheet.error(n, "工作任务", f"与第 {seen[tid]} 行重复（同一部门、同一任务、同一责任人）"))
            continue
        seen[tid] = n
        tasks.append(Task(tid, year, unit, title, attribute, kind, due, owner, months))  # type: ignore[arg-type]
    return tasks, errors, rows


def _month(at: datetime) -> tuple[int, int]:
    local = at.astimezone(CST)
    return local.year, local.month


def task_values(tasks: Iterable[Task], school_id: str, as_of: datetime) -> list[ValueIn]:
    """The two metrics for every month of each task year up to ``as_of``."""
    today = as_of.astimezone(CST).date()
    by_year: dict[int, list[Task]] = {}
    for t in tasks:
        by_year.setdefault(t.year, []).append(t)
    out: list[ValueIn] = []
    for year, items in sorted(by_year.items()):
        last = 12 if year < today.year else today.month if year == today.year else 0
        for m in range(1, last + 1):
            period = f"{year}-{m:02d}"
            due = [t for t in items if t.kind == "部门" and t.due.month == m and t.due <= today]
            if due:
                on_time = sum(t.done_by(m) for t in due)
                out.append(
                    ValueIn("school.task_ontime_completion", school_id, period, round(100 * on_time / len(due), 4))
                )
            owners: dict[str, list[Task]] = {}
            for t in items:
                if t.kind == "个人" and t.due.month <= m and t.due <= today:
                    owners.setdefault(t.owner_id, []).append(t)
            for owner, mine in sorted(owners.items()):
                done = sum(t.done_by(m) for t in mine)
                out.append(ValueIn("teacher.plan_completion", owner, period, round(100 * done / len(mine), 4)))
    return out


def overdue(tasks: Sequence[Task], as_of: datetime) -> dict[str, list[Task]]:
    """Tasks past their 完成时限 and not complete, by owner."""
    today = as_of.astimezone(CST).date()
    out: dict[str, list[Task]] = {}
    for t in tasks:
        if t.due < today and not t.done_by(12):
            out.setdefault(t.owner_id, []).append(t)
    return out
