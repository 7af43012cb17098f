"""我的预警: everything a person holds (owns, or is escalated to) or is to review (复评), with the
actions allowed in each state, the due date, the measures and the evidence. One query for the
``/my/warnings`` page and ``zhengai warnings list --owner``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from zhengai.warnings.improvement_schema import EvidenceRow
from zhengai.warnings.improvements import ACTION_ZH, Evidence, allowed_actions
from zhengai.warnings.lifecycle import LIVE, Status
from zhengai.warnings.schema import ImprovementRow, WarningRow

__all__ = ["MyWarning", "my_warnings"]


@dataclass
class MyWarning:
    warning: WarningRow
    role: str  # why it is this person's, in Chinese: 负责人（任课教师）, 第 2 级督办（…）, 复评
    actions: list[str]  # keys of ACTION_ZH, in the order a person takes them
    measures: list[ImprovementRow] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def actions_zh(self) -> list[str]:
        return [ACTION_ZH[a] for a in self.actions]

    @property
    def due(self) -> datetime | None:
        return self.warning.due_date

    @property
    def status_zh(self) -> str:
        return Status(self.warning.status).zh


def my_warnings(service, person_id: str, *, include_closed: bool = False) -> list[MyWarning]:
    """The person's warnings, most urgent first (escalated, then by due date). ``service`` is a
    ``WarningService``: who holds a warning is asked of the directory now (a reassignment or an
    escalation moves it), exactly as a signed link is checked."""
    from zhengai.warnings.routing import assessors, holders

    store = service.store
    statuses = [s.value for s in LIVE if s is not Status.pending] + ([Status.closed.value] if include_closed else [])
    with store.session() as s:
        rows = list(s.scalars(select(WarningRow).where(WarningRow.status.in_(statuses)).order_by(WarningRow.id)))
    directory = service.directory()
    out: list[MyWarning] = []
    for w in rows:
        rule = service.rule(w.rule_id)
        if rule is None:
            continue
        held = holders(rule, w.entity_id, directory, w.escalation_level or 0, service.escalation)
        assessing = assessors(rule, w.entity_id, directory, service.escalation)
        quality_office = held.get(person_id) == "质量办"
        # 质量办 may act on every warning, but 我的预警 lists for it only what is escalated to it or
        # waits for its review — not the whole school
        holder = person_id in held and not quality_office
        assessor = person_id in assessing and w.status == Status.recovered.value
        if not holder and not assessor and not (quality_office and w.status == Status.escalated.value):
            continue
        role = held.get(person_id) if person_id in held else "复评（" + assessing[person_id] + "）"
        actions = allowed_actions(
            w.status,
            acknowledged=w.acknowledged_at is not None,
            holder=holder or (quality_office and w.status == Status.escalated.value),
            assessor=person_id in assessing,
            quality_office=quality_office,
        )
        out.append(MyWarning(w, role or "", actions))
    _attach(store, out)
    far = datetime.max.replace(tzinfo=None)
    out.sort(
        key=lambda m: (
            m.warning.status != Status.escalated.value,
            m.warning.due_date.replace(tzinfo=None) if m.warning.due_date else far,
            m.warning.id,
        )
    )
    return out


def _attach(store, items: list[MyWarning]) -> None:
    """Measures and evidence for all listed warnings, in two queries."""
    by_id = {m.warning.id: m for m in items}
    if not by_id:
        return
    with store.session() as s:
        for imp in s.scalars(
            select(ImprovementRow).where(ImprovementRow.warning_id.in_(list(by_id))).order_by(ImprovementRow.id)
        ):
            m = by_id[imp.warning_id]
            m.measures.append(imp)
            m.evidence += [Evidence(u, "", imp.owner_id, imp.created_at, imp.id) for u in (imp.evidence or [])]
        for e in s.scalars(select(EvidenceRow).where(EvidenceRow.warning_id.in_(list(by_id))).order_by(EvidenceRow.id)):
            by_id[e.warning_id].evidence.append(Evidence(e.url, e.note, e.added_by, e.added_at, e.improvement_id))
