"""The 自我诊改报告 (004 附件4, 000 附录2) of one unit for one period, drafted from the store.

One row per 诊断要素 that has indicators or warnings in the unit (``zhengai.rules.diagnosis``):

- 自我诊断意见 — 目标达成程度 (each indicator against its target: latest value per entity in the
  period, how many at target / at standard / in warning), 主要成绩 (indicators at target), 存在问题
  (the warnings, with their values) and 原因分析, which only people write (``self_diagnoses``,
  filled through the 自主诊断 form; left as a prompt otherwise);
- 改进措施 — the measures recorded on those warnings (``improvements``);
- 改进效果 — the measured effects stored with the review (``improvement_effects``); a measure with
  no measured effect yet says so ("措施尚未实施或尚未复评，特此说明", as 004:1100 asks).

Length rules (004:1090–1100) are checked and reported, never enforced by cutting text: the whole
report (院(部) ≤ 8000 字, 职能部门 2000–3000, 专业 3000, 课程/教师 2000) and, per element, 改进措施
and 改进效果 ≤ 200 字. 字 are counted as Word counts them (``count_zi``).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from statistics import mean

from sqlalchemy import func, select

from zhengai.ingest.plausibility import period_start
from zhengai.ingest.privacy import mask_student_id
from zhengai.ingest.records import Band, EntityKind
from zhengai.report.units import LIMITS, UNIT_KINDS, Unit, UnitError, period_window, resolve_unit, signer_of
from zhengai.rules.diagnosis import Catalog, Element, load_catalog
from zhengai.rules.loader import RuleSet
from zhengai.warnings.diagnosis_schema import SelfDiagnosisRow
from zhengai.warnings.improvement_schema import EffectRow
from zhengai.warnings.lifecycle import ACTIVE
from zhengai.warnings.messages import format_value
from zhengai.warnings.schema import EntityRow, ImprovementRow, VerdictRow, WarningRow
from zhengai.warnings.store import WarningStore

__all__ = [
    "UNIT_KINDS",
    "LIMITS",
    "ITEM_LIMIT",
    "Unit",
    "UnitError",
    "Indicator",
    "Problem",
    "LengthCheck",
    "ElementRow",
    "SelfReport",
    "count_zi",
    "period_window",
    "resolve_unit",
    "build_self_report",
    "latest_verdicts",
]

ITEM_LIMIT = 200  # 改进措施, 改进效果 per element (004:1099–1100)
PROBLEMS_SHOWN = 5  # warnings quoted per element; the rest are counted
_ACTIVE = {s.value for s in ACTIVE}
_ZI = re.compile(r"[A-Za-z0-9_.%+\-/:]+|\S")
CAUSE_PROMPT = "（原因分析：请负责人结合实际填写）"


def count_zi(text: str) -> int:
    """字数 as Word counts it: each Chinese character or punctuation mark is one, a run of Latin
    letters and digits (a number, 82.5%) is one, white space is none."""
    return len(_ZI.findall(text or ""))


@dataclass
class Indicator:
    rule_id: str
    name: str
    unit: str
    entities: int = 0
    bands: Counter = field(default_factory=Counter)  # band → entities (latest verdict in the period)
    value: float | None = None  # the value (one entity) or the mean of the latest values
    period: str | None = None
    target: object = None
    standard: object = None

    @property
    def at_target(self) -> int:
        return self.bands.get("excellent", 0)

    @property
    def meeting(self) -> int:
        return self.at_target + self.bands.get("normal", 0)

    @property
    def in_warning(self) -> int:
        return self.bands.get("yellow", 0) + self.bands.get("red", 0)

    def line(self) -> str:
        f = lambda v: format_value(v, self.unit)  # noqa: E731
        lines = f"目标值 {f(self.target)}" + (f"、标准值 {f(self.standard)}" if self.standard is not None else "")
        if self.entities == 1:
            band = next(iter(self.bands))
            return f"{self.name} {f(self.value)}（{self.period}，{lines}，{Band(band).zh}）"
        parts = [f"达成目标 {self.at_target}", f"达标 {self.bands.get('normal', 0)}"]
        parts += [f"{Band(b).zh} {self.bands[b]}" for b in ("yellow", "red", "stale") if self.bands.get(b)]
        return f"{self.name}：{self.entities} 个对象，均值 {f(self.value)}（{lines}），" + "、".join(parts)


@dataclass
class Problem:
    warning_id: int
    entity: str  # display name (student ids masked)
    rule_name: str
    band: str
    value: str
    period: str
    status: str
    overdue: bool

    def line(self) -> str:
        tail = "，已逾期" if self.overdue else ""
        return f"{self.entity} {self.rule_name} {self.value}（{self.period}，{Band(self.band).zh}{tail}）"


@dataclass(frozen=True)
class LengthCheck:
    what: str  # 全文 / 3.5 改进措施 …
    count: int
    low: int | None
    high: int

    @property
    def ok(self) -> bool:
        return self.count <= self.high and (self.low is None or self.count >= self.low)

    def text(self) -> str:
        rule = f"{self.low}–{self.high} 字" if self.low else f"≤ {self.high} 字"
        verdict = "符合" if self.ok else ("超出" if self.count > self.high else "不足")
        return f"{self.what}：{self.count} 字（要求 {rule}）{verdict}"


@dataclass
class ElementRow:
    element: Element
    indicators: list[Indicator] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    measures: list[str] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)
    pending_effects: int = 0  # measures with no measured effect yet
    causes: list[str] = field(default_factory=list)  # 原因分析 people wrote
    opinions: list[str] = field(default_factory=list)

    @property
    def opinion_text(self) -> str:
        inds = self.indicators
        parts = []
        if inds:
            evaluated = sum(i.entities for i in inds)
            met = sum(i.meeting for i in inds)
            at_target = sum(i.at_target for i in inds)
            parts.append(
                f"目标达成程度：{len(inds)} 项指标、{evaluated} 个对象次，达成目标 {at_target}，达标及以上 {met}"
                f"（{met / evaluated:.1%}）。" + "；".join(i.line() for i in inds) + "。"
            )
            good = [i.name for i in inds if i.entities and i.at_target == i.entities]
            fine = [i.name for i in inds if i.entities and i.at_target < i.entities == i.meeting]
            said = ([f"{'、'.join(good)}全部达成目标"] if good else []) + (
                [f"{'、'.join(fine)}全部达标"] if fine else []
            )
            parts.append(f"主要成绩：{'；'.join(said)}。" if said else "主要成绩：本期各指标均有未达标对象。")
        if self.problems:
            shown = "；".join(p.line() for p in self.problems[:PROBLEMS_SHOWN])
            more = f"；另有 {len(self.problems) - PROBLEMS_SHOWN} 条" if len(self.problems) > PROBLEMS_SHOWN else ""
            parts.append(f"存在问题：预警 {len(self.problems)} 条——{shown}{more}。")
        else:
            parts.append("存在问题：本期无预警。")
        parts.append("原因分析：" + "；".join(self.causes) if self.causes else CAUSE_PROMPT)
        parts += self.opinions
        return "\n".join(parts)

    @property
    def measures_text(self) -> str:
        return (
            "；".join(self.measures)
            if self.measures
            else ("无需改进措施。" if not self.problems else "尚未登记改进措施。")
        )

    @property
    def effects_text(self) -> str:
        out = "；".join(self.effects)
        if self.pending_effects:
            note = f"{self.pending_effects} 项措施尚未复评，效果尚未显现或尚未实测，特此说明。"
            out = f"{out}；{note}" if out else note
        return out or ("—" if not self.measures else "")


@dataclass
class SelfReport:
    unit: Unit
    period: str
    as_of: datetime
    rows: list[ElementRow]
    signer: str | None = None  # 部门负责人 known from the directory
    overview: str = ""

    @property
    def total_zi(self) -> int:
        return count_zi(self.overview) + sum(
            count_zi(r.opinion_text) + count_zi(r.measures_text) + count_zi(r.effects_text) for r in self.rows
        )

    @property
    def checks(self) -> list[LengthCheck]:
        low, high = self.unit.limit
        out = [LengthCheck("全文", self.total_zi, low, high)]
        for r in self.rows:
            out.append(LengthCheck(f"{r.element.code} 改进措施", count_zi(r.measures_text), None, ITEM_LIMIT))
            out.append(LengthCheck(f"{r.element.code} 改进效果", count_zi(r.effects_text), None, ITEM_LIMIT))
        return out

    @property
    def failed_checks(self) -> list[LengthCheck]:
        return [c for c in self.checks if not c.ok]


def _scope(s, unit: Unit, rules: RuleSet) -> tuple[list[str] | None, set[str]]:
    """(entity ids or None for all, rule ids) of a unit."""
    enabled = {rid for rid, r in rules.rules.items() if r.enabled}
    if unit.kind == "school":
        return None, enabled
    if unit.kind == "office":
        return None, {rid for rid in enabled if rules.rules[rid].office == unit.id}
    if unit.kind == "department":
        ids = list(s.scalars(select(EntityRow.id).where(EntityRow.department_id == unit.id)))
        return sorted({*ids, unit.id}), enabled
    if unit.kind == "major":
        ids = list(s.scalars(select(EntityRow.id).where(EntityRow.major_id == unit.id)))
        return sorted({*ids, unit.id}), enabled
    return [unit.id], {rid for rid in enabled if rid.startswith(f"{unit.kind}.")}


def latest_verdicts(s, rule_ids: set[str], ids: list[str] | None, start: datetime, end: datetime) -> list:
    """The newest verdict per (rule, entity) with its period starting in [start, end)."""
    ranked = (
        select(
            VerdictRow,
            func.row_number()
            .over(
                partition_by=(VerdictRow.rule_id, VerdictRow.entity_id),
                order_by=(VerdictRow.period_start.desc(), VerdictRow.evaluated_at.desc(), VerdictRow.id.desc()),
            )
            .label("n"),
        )
        .where(VerdictRow.rule_id.in_(sorted(rule_ids)), _in(VerdictRow.entity_id, ids))
        .where(VerdictRow.period_start >= start, VerdictRow.period_start < end)
        .subquery()
    )
    return list(s.execute(select(ranked).where(ranked.c.n == 1)).all())


def _in(column, ids: list[str] | None):
    return True if ids is None else column.in_(ids)


def _display(s, names: dict[str, tuple[str, str]], entity_id: str) -> str:
    kind, name = names.get(entity_id, ("", entity_id))
    return f"{name}（{mask_student_id(entity_id)}）" if kind == EntityKind.student.value else name


def build_self_report(
    store: WarningStore,
    rules: RuleSet,
    unit: Unit,
    period: str,
    *,
    as_of: datetime,
    catalog: Catalog | None = None,
) -> SelfReport:
    """The 附件4 table for ``unit`` over ``period`` (a year, a term, a month …) as the store has it."""
    catalog = catalog or load_catalog()
    start, end = period_window(period)
    projects = {"2", "3", "4", "5", "6"} if unit.kind == "department" else None  # 004:1090 第 2—6 项
    rows: dict[str, ElementRow] = {}

    def row_of(rule_id: str) -> ElementRow | None:
        el = catalog.element_of(rule_id)
        if el is None or (projects is not None and el.project_code not in projects):
            return None
        return rows.setdefault(el.code, ElementRow(catalog.element(el.code) or el))

    with store.session() as s:
        ids, rule_ids = _scope(s, unit, rules)
        names = {e.id: (e.kind, e.name) for e in s.execute(select(EntityRow.id, EntityRow.kind, EntityRow.name))}
        verdicts = latest_verdicts(s, rule_ids, ids, start, end)
        per_rule: dict[str, list] = defaultdict(list)
        for v in verdicts:
            per_rule[v.rule_id].append(v)
        for rule_id in sorted(per_rule):
            row = row_of(rule_id)
            if row is None:
                continue
            vs = per_rule[rule_id]
            rule = rules.rules[rule_id]
            newest = max(vs, key=lambda v: v.period_start)
            values = [v.value for v in vs if v.value is not None]
            th = newest.thresholds or {}
            row.indicators.append(
                Indicator(
                    rule_id,
                    rule.name,
                    rule.unit,
                    len(vs),
                    Counter(v.band for v in vs),
                    round(mean(values), 4) if values else None,
                    newest.period,
                    th.get("target"),
                    th.get("standard"),
                )
            )
        warnings = s.scalars(
            select(WarningRow)
            .where(WarningRow.rule_id.in_(sorted(rule_ids)), _in(WarningRow.entity_id, ids))
            .where(WarningRow.opened_at < end)
            .where((WarningRow.closed_at.is_(None)) | (WarningRow.closed_at >= start))
            .order_by(WarningRow.rule_id, WarningRow.entity_id, WarningRow.id)
        ).all()
        warnings = sorted(warnings, key=lambda w: w.worst_band != "red")  # red first, stable otherwise
        by_warning: dict[int, ElementRow] = {}
        for w in warnings:
            row = row_of(w.rule_id)
            if row is None:
                continue
            by_warning[w.id] = row
            warned = rules.rules.get(w.rule_id)  # None: a rule no longer in the rulebook
            overdue = w.status in _ACTIVE and w.due_date is not None and w.due_date < as_of
            row.problems.append(
                Problem(
                    w.id,
                    _display(s, names, w.entity_id),
                    w.rule_name,
                    w.worst_band if w.worst_band in ("yellow", "red") else w.band,
                    format_value(w.value, warned.unit if warned else ""),
                    w.last_period,
                    w.status,
                    overdue,
                )
            )
        if by_warning:
            measured = {
                e.improvement_id for e in s.scalars(select(EffectRow).where(EffectRow.warning_id.in_(by_warning)))
            }
            for m in s.scalars(
                select(ImprovementRow).where(ImprovementRow.warning_id.in_(by_warning)).order_by(ImprovementRow.id)
            ):
                by_warning[m.warning_id].measures.append(m.text.strip())
                if m.id not in measured and not m.effect:
                    by_warning[m.warning_id].pending_effects += 1
            for e in s.scalars(select(EffectRow).where(EffectRow.warning_id.in_(by_warning)).order_by(EffectRow.id)):
                by_warning[e.warning_id].effects.append(e.summary.strip())
        written = s.scalars(
            select(SelfDiagnosisRow)
            .where(_in(SelfDiagnosisRow.entity_id, ids))
            .order_by(SelfDiagnosisRow.written_at, SelfDiagnosisRow.id)
        ).all()
        for d in written:
            if not _period_within(d.period, start, end):
                continue
            el = catalog.element(d.element_code)
            if el is None or (projects is not None and el.project_code not in projects):
                continue
            row = rows.setdefault(el.code, ElementRow(el))
            who = _display(s, names, d.entity_id)
            if d.cause.strip():
                # name whose cause it is when the unit has several entities
                row.causes.append(f"{who}：{d.cause.strip()}" if d.entity_id != unit.id else d.cause.strip())
            if d.opinion.strip():
                row.opinions.append(d.opinion.strip())
        head = signer_of(s, unit)
    order = {el.code: i for i, el in enumerate(catalog.elements)}
    report = SelfReport(unit, period, as_of, sorted(rows.values(), key=lambda r: order[r.element.code]), head)
    report.overview = _overview(report)
    return report


def _period_within(period: str, start: datetime, end: datetime) -> bool:
    try:
        return start <= period_start(period) < end
    except ValueError:
        return False


def _overview(r: SelfReport) -> str:
    problems = sum(len(x.problems) for x in r.rows)
    overdue = sum(p.overdue for x in r.rows for p in x.problems)
    measures = sum(len(x.measures) for x in r.rows)
    indicators = sum(len(x.indicators) for x in r.rows)
    return (
        f"本报告依据诊改监测平台状态数据（{r.period}，统计至 {r.as_of:%Y-%m-%d}）自动起草："
        f"{len(r.rows)} 个诊断要素、{indicators} 项指标；预警 {problems} 条（逾期 {overdue} 条），"
        f"已登记改进措施 {measures} 项。原因分析须由负责人填写；签字前请核对数据。"
    )


def today_cn(at: datetime) -> date:
    return at.astimezone(timezone(timedelta(hours=8))).date()
