"""Routing: who is responsible for a warning, from the rule and the entity directory.

A course warning goes to its teacher, a student's to the counsellor of the class, a major's to
the major leader, a teacher's to the teacher, a school-level indicator to the office the rule
names. When the directory has nobody for the role, the quality office (质量办) receives it, and
the warning says so — a warning nobody owns is the one that never closes.
"""

from __future__ import annotations

from dataclasses import dataclass

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Person, Role
from zhengai.rules.model import Rule

__all__ = ["Recipient", "route"]


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
