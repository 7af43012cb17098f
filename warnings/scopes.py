"""Who may see what: roles with a scope, for the web pages, the CLI and (through ``scoped.*``
views, ``zhengai.warnings.reporting_views``) Grafana.

======================  ==============  =================================  ========================
role                    scope unit      sees rows of                       students in clear
======================  ==============  =================================  ========================
``quality_office`` 质量办  —             the whole school                   all
``leader`` 校领导          —             the whole school                   none (masked)
``dean`` 院长              a 二级学院      their department                   none
``major_leader`` 专业带头人 a major        their major (+ department totals)  none
``counsellor`` 辅导员      a class        their department                   their classes only
``teacher`` 教师           the teacher    themselves and their courses        none
======================  ==============  =================================  ========================

A person's scopes come from the directory (the ``responsible`` roles an entity names: ``dean``,
``major_leader``, ``counsellor``, ``teacher``/``course_teacher``, ``quality_office``) and from
explicit grants in ``access_scopes`` (the only way to be 校领导, and the way a database login —
Grafana's — gets a scope: its ``principal`` is the login name). Several scopes add up.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from zhengai.ingest.privacy import mask_student_id
from zhengai.warnings.schema import Base

__all__ = [
    "Role",
    "Grant",
    "Scope",
    "AccessScopeRow",
    "scope_of",
    "grants_of",
    "grant",
    "mask_name",
    "ROLE_BY_ZH",
    "Placed",
    "place",
    "within_scope",
]


class Role(StrEnum):
    quality_office = "quality_office"
    leader = "leader"
    dean = "dean"
    major_leader = "major_leader"
    counsellor = "counsellor"
    teacher = "teacher"

    @property
    def zh(self) -> str:
        return _ZH[self]

    @property
    def school_wide(self) -> bool:
        return self in (Role.quality_office, Role.leader)


_ZH = {
    Role.quality_office: "质量办",
    Role.leader: "校领导",
    Role.dean: "院长",
    Role.major_leader: "专业带头人",
    Role.counsellor: "辅导员",
    Role.teacher: "教师",
}
ROLE_BY_ZH = {v: k for k, v in _ZH.items()}
# the directory's responsible-role keys that carry a scope
_FROM_DIRECTORY = {
    "quality_office": Role.quality_office,
    "dean": Role.dean,
    "major_leader": Role.major_leader,
    "counsellor": Role.counsellor,
    "teacher": Role.teacher,
    "course_teacher": Role.teacher,
}


class AccessScopeRow(Base):
    """Explicit grants. ``department_id`` is the unit's 二级学院, resolved when granted (the
    ``scoped`` views filter on it without walking the directory)."""

    __tablename__ = "access_scopes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    principal: Mapped[str] = mapped_column(String(64), index=True)  # person id or database login
    role: Mapped[str] = mapped_column(String(24))
    unit_id: Mapped[str | None] = mapped_column(String(64))
    department_id: Mapped[str | None] = mapped_column(String(64))


@dataclass(frozen=True)
class Grant:
    role: Role
    unit_id: str | None = None
    department_id: str | None = None


def mask_name(name: str) -> str:
    """A student's name: the family name only (``于**``)."""
    return name[:1] + "*" * max(1, len(name) - 1) if name else name


@dataclass(frozen=True)
class Placed:
    """An entity with its place in the school (what scoping needs; the stored ``entities`` row has
    the same columns). ``teacher_id``: a course's teacher."""

    id: str
    kind: str
    name: str
    parent_id: str | None = None
    department_id: str | None = None
    major_id: str | None = None
    teacher_id: str | None = None


def place(directory, entity_id: str) -> Placed | None:
    from zhengai.ingest.records import EntityKind

    entity = directory.get(entity_id)
    if entity is None:
        return None
    dept = directory.ancestor(entity_id, EntityKind.department)
    major = directory.ancestor(entity_id, EntityKind.major)
    teacher = None
    if entity.kind is EntityKind.course:
        ref = entity.responsible.get("course_teacher")
        teacher = str(entity.attributes.get("teacher_id") or "") or (ref.id if ref else None)
    return Placed(
        entity.id,
        entity.kind.value,
        entity.name,
        entity.parent_id,
        dept.id if dept else None,
        major.id if major else None,
        teacher,
    )


@dataclass(frozen=True)
class Scope:
    """What one principal may see, over ``Placed`` entities (None = the school level)."""

    principal: str
    grants: tuple[Grant, ...]

    @property
    def roles(self) -> set[Role]:
        return {g.role for g in self.grants}

    @property
    def school_wide(self) -> bool:
        return any(g.role.school_wide for g in self.grants)

    @property
    def departments(self) -> set[str]:
        return {g.department_id for g in self.grants if g.department_id and not g.role.school_wide}

    def sees(self, entity: Placed | None) -> bool:
        if self.school_wide:
            return True
        if entity is None:
            return False
        for g in self.grants:
            if g.role in (Role.dean, Role.counsellor) and entity.department_id == g.department_id:
                return True
            if g.role is Role.major_leader and g.unit_id in (entity.major_id, entity.id):
                return True
            if g.role is Role.teacher and g.unit_id in (entity.id, entity.teacher_id):
                return True
        return False

    def sees_department(self, department_id: str | None) -> bool:
        """Department totals (no individual rows): every department-bound role sees its own."""
        return self.school_wide or (department_id is not None and department_id in self.departments)

    def in_clear(self, entity: Placed | None) -> bool:
        """A student's id and name in clear? Only for 质量办 and the student's own counsellor."""
        if entity is None or entity.kind != "student":
            return True
        return any(
            g.role is Role.quality_office or (g.role is Role.counsellor and entity.parent_id == g.unit_id)
            for g in self.grants
        )

    def entity_ref(self, entity: Placed) -> tuple[str, str]:
        """(id, name) of an entity as this principal may read them."""
        if self.in_clear(entity):
            return entity.id, entity.name
        return mask_student_id(entity.id), mask_name(entity.name)


def _department_of(directory, unit_id: str | None) -> str | None:
    placed = place(directory, unit_id) if unit_id else None
    return placed.department_id if placed else None


def grants_of(directory, person_id: str) -> list[Grant]:
    """The scopes the directory gives a person (by the responsible roles entities name)."""
    from zhengai.ingest.records import EntityKind

    out: list[Grant] = []
    for kind in EntityKind:
        for entity in directory.of_kind(kind):
            for key, who in entity.responsible.items():
                role = _FROM_DIRECTORY.get(key)
                if role is None or who.id != person_id:
                    continue
                unit = None if role.school_wide else (person_id if role is Role.teacher else entity.id)
                dept = None if role.school_wide else _department_of(directory, entity.id)
                if Grant(role, unit, dept) not in out:
                    out.append(Grant(role, unit, dept))
    return out


def stored_grants(store, principal: str) -> list[Grant]:
    with store.session() as s:
        rows = s.scalars(select(AccessScopeRow).where(AccessScopeRow.principal == principal)).all()
    return [Grant(Role(r.role), r.unit_id, r.department_id) for r in rows]


def scope_of(store, directory, principal: str) -> Scope:
    """Directory roles plus explicit grants. No grant at all: a scope that sees nothing."""
    grants = grants_of(directory, principal) + [g for g in stored_grants(store, principal)]
    return Scope(principal, tuple(dict.fromkeys(grants)))


def grant(store, directory, principal: str, role: Role, unit_id: str | None = None) -> Grant:
    """Record an explicit grant (idempotent). School-wide roles take no unit; the others need one
    the directory knows."""
    if role.school_wide:
        unit_id = None
    elif not unit_id or directory.get(unit_id) is None:
        raise ValueError(f"{role.zh}须指定所辖单位（目录中不存在：{unit_id or '未填写'}）")
    g = Grant(role, unit_id, None if role.school_wide else _department_of(directory, unit_id))
    if g not in stored_grants(store, principal):
        with store.session() as s, s.begin():
            s.add(
                AccessScopeRow(principal=principal, role=role.value, unit_id=g.unit_id, department_id=g.department_id)
            )
    return g


def within_scope(store, directory, principal: str, warnings: list) -> list:
    """The warnings (rows with ``entity_id``) whose entity ``principal``'s scope sees."""
    scope = scope_of(store, directory, principal)
    return [w for w in warnings if scope.sees(place(directory, w.entity_id))]
