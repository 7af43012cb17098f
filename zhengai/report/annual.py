"""The data tables of the 质量年度报告 (seeds: 定期发布质量年度报告, 004:680), one per level: every
indicator of the rulebook over the year — entities evaluated, mean / lowest / highest of their
latest values, how many at target and at standard, and the warnings it raised, closed and left
overdue. Markdown and Excel (one sheet per level)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from statistics import mean

from sqlalchemy import select

from zhengai.ingest.records import Level
from zhengai.report.selfreport import latest_verdicts, period_window
from zhengai.rules.diagnosis import Catalog, load_catalog
from zhengai.rules.loader import RuleSet
from zhengai.warnings.lifecycle import ACTIVE
from zhengai.warnings.messages import format_value
from zhengai.warnings.schema import WarningRow
from zhengai.warnings.store import WarningStore

__all__ = ["AnnualRow", "ANNUAL_HEADER", "annual_tables", "render_annual_markdown", "render_annual_xlsx"]

ANNUAL_HEADER = (
    "诊断要素",
    "指标",
    "对象数",
    "均值",
    "最低",
    "最高",
    "达成目标",
    "达标及以上",
    "达标率",
    "预警",
    "已关闭",
    "逾期",
)
_ACTIVE = {s.value for s in ACTIVE}


@dataclass
class AnnualRow:
    element: str
    rule_id: str
    name: str
    unit: str
    entities: int
    mean: float | None
    low: float | None
    high: float | None
    at_target: int
    meeting: int
    warnings: int
    closed: int
    overdue: int

    def cells(self) -> list:
        f = lambda v: format_value(v, self.unit)  # noqa: E731
        rate = f"{self.meeting / self.entities:.1%}" if self.entities else "—"
        return [
            self.element,
            self.name,
            self.entities,
            f(self.mean),
            f(self.low),
            f(self.high),
            self.at_target,
            self.meeting,
            rate,
            self.warnings,
            self.closed,
            self.overdue,
        ]


def annual_tables(
    store: WarningStore, rules: RuleSet, year: str, *, as_of: datetime, catalog: Catalog | None = None
) -> dict[Level, list[AnnualRow]]:
    catalog = catalog or load_catalog()
    start, end = period_window(year)
    rule_ids = {rid for rid, r in rules.rules.items() if r.enabled}
    with store.session() as s:
        per_rule: dict[str, list] = defaultdict(list)
        for v in latest_verdicts(s, rule_ids, None, start, end):
            per_rule[v.rule_id].append(v)
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for w in s.scalars(select(WarningRow).where(WarningRow.opened_at >= start, WarningRow.opened_at < end)):
            c = counts[w.rule_id]
            c[0] += 1
            c[1] += w.status == "closed"
            c[2] += w.status in _ACTIVE and w.due_date is not None and w.due_date < as_of
    out: dict[Level, list[AnnualRow]] = {level: [] for level in Level}
    for rid in sorted(rule_ids):
        rule = rules.rules[rid]
        vs = per_rule.get(rid, [])
        values = [v.value for v in vs if v.value is not None]
        el = catalog.element_of(rid)
        c = counts.get(rid, [0, 0, 0])
        out[rule.level].append(
            AnnualRow(
                el.label if el else "—",
                rid,
                rule.name,
                rule.unit,
                len(vs),
                round(mean(values), 4) if values else None,
                min(values) if values else None,
                max(values) if values else None,
                sum(v.band == "excellent" for v in vs),
                sum(v.band in ("excellent", "normal") for v in vs),
                *c,
            )
        )
    for rows in out.values():
        rows.sort(
            key=lambda r: (
                tuple(int(x) for x in r.element.split()[0].split(".")) if r.element != "—" else (99,),
                r.rule_id,
            )
        )
    return out


def render_annual_markdown(tables: dict[Level, list[AnnualRow]], *, school: str, year: str) -> str:
    out = [f"# {school} {year} 年质量年度报告 · 数据表", ""]
    for n, (level, rows) in enumerate(tables.items(), start=1):
        out += [
            f"## 表{n} {level.zh}层面",
            "",
            "| " + " | ".join(ANNUAL_HEADER) + " |",
            "|" + "---|" * len(ANNUAL_HEADER),
        ]
        out += ["| " + " | ".join(str(c) for c in r.cells()) + " |" for r in rows]
        out.append("")
    return "\n".join(out)


def render_annual_xlsx(tables: dict[Level, list[AnnualRow]], *, school: str, year: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    wb.remove(wb.active)
    for level, rows in tables.items():
        ws = wb.create_sheet(f"{level.zh}层面")
        ws.append([f"{school} {year} 年质量年度报告 · {level.zh}层面"])
        ws.append(list(ANNUAL_HEADER))
        for cell in ws[2]:
            cell.font = Font(bold=True)
        for r in rows:
            ws.append(r.cells())
    buf = BytesIO()
    wb.save(buf)
    return buf.getvalue()
