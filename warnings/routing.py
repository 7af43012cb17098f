"""Routing: who is responsible for a warning, from the rule and the entity directory.

A course warning goes to its teacher, a student's to the counsellor of the class, a major's to
the major leader, a teacher's to the teacher, a school-level indicator to the office the rule
names. When the directory has nobody for the role, the quality office (质量办) receives it, and
the warning says so — a warning nobody owns is the one that never closes.

Escalation (the lifecycle's ``escalated`` transitions, one level per step past the due date) walks
up a configured chain, e.g. 任课教师 → 课程负责人 → 专业负责人 → 二级学院院长 → 质量办:
``escalation_route`` finds who holds level *k* for the entity, skipping roles nobody holds there
and people already on the warning; a warning at the top of its chain stays with the top.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Person, Role
from zhengai.rules.model import Rule

__all__ = [
    "Recipient",
    "route",
    "EscalationChains",
    "DEFAULT_CHAINS",
    "escalation_path",
    "escalation_route",
    "quality_office",
    "holders",
    "assessors",
]


@dataclass(frozen=True)
class Recipient:
    person: Person
    role: str  # the key it was found under: a Role value or "office:<name>"
    via_entity: str  # the entity that named the person
    fallback: bool = False  # True when the quality office stands in for a missing owner

    @property
    def role_zh(self) -> str:
        if self.role.startswith("office:"):
            return self.role.removeprefix("office:")
        try:
            return Role(self.role).zh
        except ValueError:
            return self.role


def route(rule: Rule, entity_id: str, directory: Directory) -> Recipient | None:
    role = f"office:{rule.office}" if rule.responsible is Role.office else rule.responsible.value
    found = directory.responsible(entity_id, role)
    if found is None and rule.responsible is not Role.office and rule.office:
        # the role is vacant on the entity: the owning office takes it
        found = directory.responsible(entity_id, f"office:{rule.office}")
        if found is not None:
            return Recipient(found[0], f"office:{rule.office}", found[1], fallback=True)
    if found is not None:
        return Recipient(found[0], role, found[1])
    school = directory.school()
    if school is not None:
        qo = directory.responsible(school.id, Role.quality_office.value)
        if qo is not None:
            return Recipient(qo[0], Role.quality_office.value, qo[1], fallback=True)
    return None


DEFAULT_CHAINS: tuple[tuple[str, ...], ...] = (
    ("course_teacher", "course_owner", "major_leader", "dean", "quality_office"),
    ("counsellor", "class_teacher", "dean", "quality_office"),
    ("teacher", "major_leader", "dean", "quality_office"),
)


@dataclass(frozen=True)
class EscalationChains:
    """A warning follows the first chain that names its responsible role; a role in no chain
    (an office, ``office:教务处``) escalates straight to ``fallback``."""

    chains: tuple[tuple[str, ...], ...] = field(default=DEFAULT_CHAINS)
    fallback: str = Role.quality_office.value

    def above(self, role: str | None) -> tuple[str, ...]:
        for chain in self.chains:
            if role in chain:
                return chain[chain.index(role) + 1 :]
        return () if role == self.fallback else (self.fallback,)


def escalation_path(
    rule: Rule, entity_id: str, directory: Directory, chains: EscalationChains = EscalationChains()
) -> list[Recipient]:
    """Everyone above the responsible person, in escalation order (distinct people only)."""
    start = route(rule, entity_id, directory)
    role = start.role if start is not None else None
    seen = {start.person.id} if start is not None else set()
    path = []
    for candidate in chains.above(role):
        found = directory.responsible(entity_id, candidate)
        if found is not None and found[0].id not in seen:
            seen.add(found[0].id)
            path.append(Recipient(found[0], candidate, found[1]))
    return path


def escalation_route(
    rule: Rule, entity_id: str, directory: Directory, level: int, chains: EscalationChains = EscalationChains()
) -> Recipient | None:
    """Who receives escalation ``level`` (1 = the first step above the responsible person); past
    the top of the chain, the top. None when nobody above is known."""
    path = escalation_path(rule, entity_id, directory, chains)
    if not path or level < 1:
        return None
    return path[min(level, len(path)) - 1]


def quality_office(directory: Directory) -> Person | None:
    school = directory.school()
    found = directory.responsible(school.id, Role.quality_office.value) if school is not None else None
    return found[0] if found else None


def holders(
    rule: Rule,
    entity_id: str,
    directory: Directory,
    escalation_level: int,
    chains: EscalationChains = EscalationChains(),
) -> dict[str, str]:
    """Who may act on a warning *now* (person id → why, in Chinese): the person the directory
    routes it to today (so a reassignment moves it), and at escalation level *k* the person of
    level *k* (the level before no longer holds it). Signed links and 我的预警 both ask this at the
    time of use; the quality office (质量办) may always act."""
    out: dict[str, str] = {}
    owner = route(rule, entity_id, directory)
    if owner is not None:
        out[owner.person.id] = f"负责人（{owner.role_zh}）"
    if escalation_level > 0:
        above = escalation_route(rule, entity_id, directory, escalation_level, chains)
        if above is not None:
            out.setdefault(above.person.id, f"第 {escalation_level} 级督办（{above.role_zh}）")
    qo = quality_office(directory)
    if qo is not None:
        out.setdefault(qo.id, "质量办")
    return out


def assessors(
    rule: Rule, entity_id: str, directory: Directory, chains: EscalationChains = EscalationChains()
) -> dict[str, str]:
    """Who may review (复评) a warning: the assessing body of the seeds' 考核性诊断 — the level
    above the owner (the first person up the escalation chain) or 质量办. Never the owner."""
    owner = route(rule, entity_id, directory)
    out: dict[str, str] = {}
    path = escalation_path(rule, entity_id, directory, chains)
    if path:
        out[path[0].person.id] = f"上一级（{path[0].role_zh}）"
    qo = quality_office(directory)
    if qo is not None:
        out.setdefault(qo.id, "质量办")
    if owner is not None and not owner.fallback:
        out.pop(owner.person.id, None)
    return out
