"""The warning service: verdicts in → lifecycle, routing, messages and outbox, in one place.

Both runtimes hand verdicts here — the embedded pipeline in-process, the Faust store agent from
``zg.verdicts`` — so a warning is routed and worded the same everywhere. The rules and the
directory are read through callables, so a worker can swap in a reloaded rulebook or a directory
that grows as ``zg.entities`` is consumed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable, Sequence

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Level, Verdict, WarningTransition
from zhengai.rules.loader import RuleSet
from zhengai.rules.model import LifecyclePolicy
from zhengai.warnings.lifecycle import Command, LifecycleError, Transition, TransitionKind
from zhengai.warnings.messages import load_template, render
from zhengai.warnings.routing import EscalationChains, escalation_route, route
from zhengai.warnings.schema import WarningRow
from zhengai.warnings.store import AppliedTransition, OutboxItem, WarningStore

__all__ = ["WarningService", "NOTIFY_KINDS", "wire_transition"]

# Transitions people are told about; the others (pending, acknowledged, …) are recorded only.
NOTIFY_KINDS = frozenset({
    TransitionKind.opened, TransitionKind.severity_up, TransitionKind.severity_down, TransitionKind.escalated,
    TransitionKind.recovered, TransitionKind.relapsed, TransitionKind.stale,
})


def wire_transition(applied: AppliedTransition, level: Level | str) -> WarningTransition:
    """The ``zg.warnings`` record of a committed transition (``level`` is the rule's level: the
    lifecycle state does not carry it). The record masks personal numbers in the reason."""
    t, state = applied.transition, applied.state
    return WarningTransition(
        warning_id=applied.warning_id, rule_id=state.rule_id, entity_id=state.entity_id, level=level,
        episode=t.episode, kind=t.kind.value, from_status=t.from_status.value if t.from_status else None,
        to_status=t.to_status.value, from_band=t.from_band, to_band=t.to_band, period=t.period,
        value=t.value, reason=t.reason, actor=t.actor, at=t.at,
    )


# Bounds of what people type, as the store's columns hold them (warning_events.actor String(64)).
MAX_ACTOR = 64
MAX_TEXT = 4000  # 改进措施, notes, 误报原因
MAX_EVIDENCE = 20
MAX_EVIDENCE_LINK = 1000

_TEXT_FIELDS = {"note": "备注", "text": "改进措施", "reason": "误报原因"}


class InvalidAction(LifecycleError):
    """A person's action with input the store cannot hold (too long, empty); the message is Chinese."""


def check_action(command: Command, evidence: Sequence[str] = ()) -> None:
    """Bounded text fields with a Chinese error, checked at the service boundary (CLI and web)."""
    actor = getattr(command, "actor", None)
    if actor is not None:
        if not actor.strip():
            raise InvalidAction("操作人编号不能为空")
        if len(actor) > MAX_ACTOR:
            raise InvalidAction(f"操作人编号过长：{len(actor)} 个字符，最多 {MAX_ACTOR} 个")
    for name, zh in _TEXT_FIELDS.items():
        value = getattr(command, name, None)
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise InvalidAction(f"{zh}过长：{len(value)} 个字符，最多 {MAX_TEXT} 个")
    if len(evidence) > MAX_EVIDENCE:
        raise InvalidAction(f"佐证材料链接过多：{len(evidence)} 个，最多 {MAX_EVIDENCE} 个")
    for link in evidence:
        if len(link) > MAX_EVIDENCE_LINK:
            raise InvalidAction(f"佐证材料链接过长：{len(link)} 个字符，最多 {MAX_EVIDENCE_LINK} 个")


class WarningService:
    def __init__(self, store: WarningStore, rules: Callable[[], RuleSet], directory: Callable[[], Directory],
                 *, channels: Sequence[str] = ("console", "file"), escalation: EscalationChains | None = None):
        self.store = store
        self.escalation = escalation or EscalationChains()  # who receives each escalation level
        self._rules = rules
        self._directory = directory
        self.channels = tuple(channels)
        self.template = load_template()
        self._verdicts: dict[str, Verdict] = {}

    def _rule(self, rule_id: str):
        return self._rules().rules.get(rule_id)

    def _responsible(self, verdict: Verdict) -> tuple[str, str] | tuple[None, None]:
        rule = self._rule(verdict.rule_id)
        recipient = route(rule, verdict.entity_id, self._directory()) if rule else None
        return (recipient.role, recipient.person.id) if recipient else (None, None)

    def _policy(self, rule_id: str) -> LifecyclePolicy:
        rule = self._rule(rule_id)
        return rule.lifecycle if rule else LifecyclePolicy()

    def _on_transition(self, row: WarningRow, t: Transition) -> list[OutboxItem]:
        rule = self._rule(row.rule_id)
        if rule is None or t.kind not in NOTIFY_KINDS:  # removed rule, or a kind that is only recorded
            return []
        directory = self._directory()
        recipient = route(rule, row.entity_id, directory)
        escalated_from, level = None, 0
        if t.kind is TransitionKind.escalated:  # goes one level further up the chain each time
            escalated_from, level = recipient, row.escalation_level
            recipient = escalation_route(rule, row.entity_id, directory, level, self.escalation) or recipient
        verdict = self._verdicts.get(t.cause)
        subject, body = render(
            self.template, rule=rule, transition=t, thresholds=verdict.thresholds if verdict else None,
            entity_id=row.entity_id, directory=directory, recipient=recipient, due=row.due_date,
            escalated_from=escalated_from, level=level,
        )
        person = recipient.person.id if recipient else None
        return [OutboxItem(channel, person, subject, body) for channel in self.channels]

    def handle(self, verdicts: Sequence[Verdict]) -> list[AppliedTransition]:
        """Store the verdicts (idempotently) and apply them; one transaction."""
        self._verdicts = {v.key: v for v in verdicts}
        try:
            names = {r.id: r.name for r in self._rules().rules.values()}
            return self.store.apply_verdicts(
                verdicts, rule_names=names, responsible=self._responsible, policy_for=self._policy,
                on_transition=self._on_transition,
            )
        finally:
            self._verdicts = {}

    def act(self, warning_id: int, command: Command, evidence: Sequence[str] = ()) -> list[AppliedTransition]:
        """A person's action on a warning: acknowledge, improvement, 复评, 误报. Text that does not
        fit the store is refused with :class:`InvalidAction` (Chinese) before anything is written."""
        check_action(command, evidence)
        return self.store.act(warning_id, command, on_transition=self._on_transition, evidence=evidence)

    def tick(self, now: datetime) -> list[AppliedTransition]:
        """Escalate overdue warnings and mark those without fresh data stale."""

        def policy_for(rule_id: str) -> tuple[LifecyclePolicy, timedelta]:
            rule = self._rule(rule_id)
            return (rule.lifecycle, rule.freshness_window) if rule else (LifecyclePolicy(), timedelta(days=400))

        return self.store.tick(now, policy_for=policy_for, on_transition=self._on_transition)
