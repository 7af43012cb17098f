"""The units a 自我诊改报告 is written for (004:1090–1093): the school, a 二级学院, a 职能部门, a major,
a course or a teacher; their length limits, who signs for them, and the period windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from zhengai.ingest.plausibility import period_kind, period_start
from zhengai.warnings.schema import EntityRow, PersonRow
from zhengai.warnings.store import WarningStore

__all__ = ["UNIT_KINDS", "LIMITS", "Unit", "UnitError", "period_window", "resolve_unit", "signer_of"]

UNIT_KINDS = {
    "school": "学校",
    "department": "二级学院",
    "office": "职能部门",
    "major": "专业",
    "course": "课程",
    "teacher": "教师",
}
# 004:1090–1093: (min, max) 字 of the whole report; the school's is the 8000 of note 2 (004:1098)
LIMITS: dict[str, tuple[int | None, int]] = {
    "school": (None, 8000),
    "department": (None, 8000),
    "office": (2000, 3000),
    "major": (None, 3000),
    "course": (None, 2000),
    "teacher": (None, 2000),
}


class UnitError(ValueError):
    """No such unit (Chinese first, with what exists)."""


def period_window(period: str) -> tuple[datetime, datetime]:
    """[start, end) of a period in UTC: a year, a term (2025-2026-1), a month, a week or a day."""
    kind = period_kind(period)
    start = period_start(period)
    local = start.astimezone(timezone(timedelta(hours=8))).date()
    if kind == "year":
        nxt = f"{local.year + 1}"
    elif kind == "term":
        y = int(period[:4])
        nxt = f"{y}-{y + 1}-2" if period.endswith("-1") else f"{y + 1}-{y + 2}-1"
    elif kind == "month":
        nxt = f"{local.year + local.month // 12}-{local.month % 12 + 1:02d}"
    elif kind == "week":
        nxt_day = local + timedelta(weeks=1)
        iso = nxt_day.isocalendar()
        nxt = f"{iso.year}-W{iso.week:02d}"
    else:
        nxt = (local + timedelta(days=1)).isoformat()
    return start, period_start(nxt)


@dataclass(frozen=True)
class Unit:
    kind: str  # a key of UNIT_KINDS
    id: str  # entity id, or the office's name
    name: str
    head_role: str | None = None  # who signs as 部门负责人: a Role value or office:<name>

    @property
    def kind_zh(self) -> str:
        return UNIT_KINDS[self.kind]

    @property
    def limit(self) -> tuple[int | None, int]:
        return LIMITS[self.kind]


def resolve_unit(store: WarningStore, kind: str, ident: str | None) -> Unit:
    if kind not in UNIT_KINDS:
        raise UnitError(f"单位类型须为 {'/'.join(UNIT_KINDS)}（unknown unit kind {kind!r}）")
    with store.session() as s:
        if kind == "office":
            school = s.scalars(select(EntityRow).where(EntityRow.kind == "school")).first()
            offices = sorted(
                k.removeprefix("office:") for k in (school.responsible if school else {}) if k.startswith("office:")
            )
            if ident is None or ident not in offices:
                raise UnitError(f"没有职能部门 {ident!r}；已知：{'、'.join(offices) or '无'}（unknown office）")
            return Unit("office", ident, ident, f"office:{ident}")
        entity_kind = "school" if kind == "school" else kind
        q = select(EntityRow).where(EntityRow.kind == entity_kind)
        row = s.scalars(q.where(EntityRow.id == ident) if ident else q).first()
        if row is None:
            known = s.scalars(q.with_only_columns(EntityRow.id).limit(8)).all()
            raise UnitError(f"没有{UNIT_KINDS[kind]} {ident!r}；例如：{'、'.join(known) or '无'}（unknown unit）")
        head = {
            "school": "quality_office",
            "department": "dean",
            "major": "major_leader",
            "course": "dean",
            "teacher": "dean",
        }[kind]
        return Unit(kind, row.id, row.name, head)


def signer_of(s, unit: Unit) -> str | None:
    """The 部门负责人 who signs: the holder of the unit's head role on the entity or up its line
    (a teacher's and a course's is the dean of their 二级学院), offices on the school."""
    holder = None
    current = None if unit.kind == "office" else unit.id
    seen: set[str] = set()
    while current is not None and current not in seen and holder is None:
        seen.add(current)
        e = s.get(EntityRow, current)
        if e is None:
            break
        holder = (e.responsible or {}).get(unit.head_role)
        current = e.parent_id or (e.department_id if e.department_id != e.id else None)
    if holder is None:  # offices and the quality office are named on the school
        school = s.scalars(select(EntityRow).where(EntityRow.kind == "school")).first()
        holder = (school.responsible or {}).get(unit.head_role) if school else None
    if holder is None:
        return None
    person = s.get(PersonRow, holder)
    return person.name if person else None
