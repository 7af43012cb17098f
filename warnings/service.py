"""The warning service: verdicts in → lifecycle, routing, messages and outbox, in one place.

Both runtimes hand verdicts here — the embedded pipeline in-process, the Faust store agent from
``zg.verdicts`` — so a warning is routed and worded the same everywhere. The rules and the
directory are read through callables, so a worker can swap in a reloaded rulebook or a directory
that grows as ``zg.entities`` is consumed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Level, Observation, Verdict, WarningTransition
from zhengai.ingest.source_health import SOURCE_METRIC
from zhengai.rules.loader import RuleSet
from zhengai.rules.model import LifecyclePolicy
from zhengai.warnings.improvements import check_evidence_url, review_facts
from zhengai.warnings.lifecycle import (
    Acknowledge,
    Command,
    LifecycleError,
    MarkFalsePositive,
    Review,
    StartImprovement,
    Transition,
    TransitionKind,
    Waive,
)
from zhengai.warnings.messages import load_template, render
from zhengai.warnings.reads import WarningRecord
from zhengai.warnings.routing import EscalationChains, assessors, escalation_route, holders, quality_office, route
from zhengai.warnings.schema import WarningRow
from zhengai.warnings.source_health import source_detail, source_down
from zhengai.warnings.store import AppliedTransition, OutboxItem, WarningStore

__all__ = ["WarningService", "NOTIFY_KINDS", "wire_transition", "NotAllowed"]


class NotAllowed(LifecycleError):
    """The person may not take this action on this warning (not its holder, not an assessor)."""


# Transitions people are told about; the others (pending, acknowledged, …) are recorded only.
NOTIFY_KINDS = frozenset(
    {
        TransitionKind.opened,
        TransitionKind.severity_up,
        TransitionKind.severity_down,
        TransitionKind.escalated,
        TransitionKind.recovered,
        TransitionKind.relapsed,
        TransitionKind.stale,
    }
)


def wire_transition(applied: AppliedTransition, level: Level | str) -> WarningTransition:
    """The ``zg.warnings`` record of a committed transition (``level`` is the rule's level: the
    lifecycle state does not carry it). The record masks personal numbers in the reason."""
    t, state = applied.transition, applied.state
    return WarningTransition(
        warning_id=applied.warning_id,
        rule_id=state.rule_id,
        entity_id=state.entity_id,
        level=level,
        episode=t.episode,
        kind=t.kind.value,
        from_status=t.from_status.value if t.from_status else None,
        to_status=t.to_status.value,
        from_band=t.from_band,
        to_band=t.to_band,
        period=t.period,
        value=t.value,
        reason=t.reason,
        actor=t.actor,
        at=t.at,
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
    def __init__(
        self,
        store: WarningStore,
        rules: Callable[[], RuleSet],
        directory: Callable[[], Directory],
        *,
        channels: Sequence[str] = ("console", "file"),
        escalation: EscalationChains | None = None,
    ):
        self.store = store
        self.escalation = escalation or EscalationChains()  # who receives each escalation level
        self._rules = rules
        self._directory = directory
        self.channels = tuple(channels)
        self.template = load_template()

    def _rule(self, rule_id: str):
        return self._rules().rules.get(rule_id)

    def rule(self, rule_id: str):
        """The current rule of that id (None when the rulebook no longer has it)."""
        return self._rule(rule_id)

    def directory(self) -> Directory:
        return self._directory()

    def _responsible(self, verdict: Verdict) -> tuple[str, str] | tuple[None, None]:
        rule = self._rule(verdict.rule_id)
        recipient = route(rule, verdict.entity_id, self._directory()) if rule else None
        return (recipient.role, recipient.person.id) if recipient else (None, None)

    def _policy(self, rule_id: str) -> LifecyclePolicy:
        rule = self._rule(rule_id)
        return rule.policy if rule else LifecyclePolicy().for_cycle("year")

    def _on_transition(
        self, row: WarningRow, t: Transition, verdicts: Mapping[str, Verdict] | None = None
    ) -> list[OutboxItem]:
        rule = self._rule(row.rule_id)
        if rule is None or t.kind not in NOTIFY_KINDS:  # removed rule, or a kind that is only recorded
            return []
        if t.kind is TransitionKind.stale and source_down(self.store.engine, rule.metric, row.entity_id):
            return []  # its source stopped: the one school.source_health warning to 信息中心 stands in
        directory = self._directory()
        recipient = route(rule, row.entity_id, directory)
        escalated_from, level = None, 0
        if t.kind is TransitionKind.escalated:  # one level further up the chain per transition
            escalated_from, level = recipient, t.escalation_level or row.escalation_level
            recipient = escalation_route(rule, row.entity_id, directory, level, self.escalation) or recipient
        verdict = verdicts.get(t.cause) if verdicts else None
        subject, body = render(
            self.template,
            rule=rule,
            transition=t,
            thresholds=verdict.thresholds if verdict else None,
            entity_id=row.entity_id,
            directory=directory,
            recipient=recipient,
            due=row.due_date,
            escalated_from=escalated_from,
            level=level,
        )
        if rule.metric == SOURCE_METRIC:
            body += source_detail(self.store.engine)  # which sources stopped
        person = recipient.person.id if recipient else None
        items = [OutboxItem(channel, person, subject, body) for channel in self.channels]
        if escalated_from is not None and escalated_from.person.id != person:
            # the owner is copied on every escalation: they still have to improve
            copy = body + "\n- 抄送：您是该预警的负责人，已抄送给您；请继续落实改进措施并登记改进成效。"
            items += [
                OutboxItem(channel, escalated_from.person.id, f"【抄送】{subject}"[:200], copy)
                for channel in self.channels
            ]
        return items

    def handle(self, verdicts: Sequence[Verdict], observations: Sequence[Observation] = ()) -> list[AppliedTransition]:
        """Store the observations and verdicts (idempotently) and apply the verdicts; one transaction."""
        # The verdicts of this call travel with it (not on self): the worker's judge agent and its
        # flush timer share this service from two threads.
        by_key = {v.key: v for v in verdicts}
        names = {r.id: r.name for r in self._rules().rules.values()}
        return self.store.record_batch(
            observations,
            verdicts,
            rule_names=names,
            responsible=self._responsible,
            policy_for=self._policy,
            on_transition=lambda row, t: self._on_transition(row, t, by_key),
        )

    def act(self, warning_id: int, command: Command, evidence: Sequence[str] = ()) -> list[AppliedTransition]:
        """A person's action on a warning: acknowledge, improvement (改进措施, a new row each time),
        waiver (质量办), 复评, 误报. Checks who acts (``may``), bounds the due date by the rule's
        ``max_due_days``, gives 复评 the facts it needs (measures recorded, waiver), and stores the
        measured 改进效果 with the review (``effects.record_effects``)."""
        check_action(command, evidence)  # text that does not fit the store: refused in Chinese first
        row = self.store.read.warning(warning_id)
        if row is None:
            raise KeyError(f"no warning #{warning_id}")
        self.authorize(row, command)
        policy = self._policy(row.rule_id)
        if isinstance(command, StartImprovement):
            try:
                evidence = [check_evidence_url(u) for u in evidence if u and u.strip()]
            except ValueError as exc:
                raise LifecycleError(str(exc)) from None
            command = replace(command, max_due=command.at + timedelta(days=policy.max_due_days or 365))
        if isinstance(command, Review):
            measures, waived = review_facts(self.store, warning_id)
            command = replace(command, measures=measures, waived=waived, require_measure=policy.require_measure)
        applied = self.store.act(warning_id, command, on_transition=self._on_transition, evidence=evidence)
        if isinstance(command, Review):
            from zhengai.warnings.effects import record_effects  # the measured 改进效果, stored with the review

            record_effects(self, warning_id, command.at, reviewed_by=command.actor)
        return applied

    def may(self, row: WarningRow | WarningRecord, person_id: str) -> tuple[bool, bool, bool]:
        """(holder, assessor, quality office) for a person on a warning, asked at the time of use."""
        rule, directory = self._rule(row.rule_id), self._directory()
        qo = quality_office(directory)
        is_qo = qo is not None and qo.id == person_id
        if rule is None:  # a removed rule: only the quality office acts on its warnings
            return is_qo, is_qo, is_qo
        holding = person_id in holders(rule, row.entity_id, directory, row.escalation_level or 0, self.escalation)
        assessing = person_id in assessors(rule, row.entity_id, directory, self.escalation)
        return holding, assessing, is_qo

    def authorize(self, row: WarningRow | WarningRecord, command: Command) -> None:
        actor = getattr(command, "actor", None)
        if actor is None:
            return
        holding, assessing, is_qo = self.may(row, actor)
        if isinstance(command, (Acknowledge, StartImprovement)) and not holding:
            raise NotAllowed("您不是该预警当前的负责人或督办人，不能执行此操作 (not the warning's current holder)")
        if isinstance(command, Review) and not assessing:
            raise NotAllowed("复评须由质量办或负责人的上一级进行 (review is for the assessing body)")
        if isinstance(command, Waive) and not is_qo:
            raise NotAllowed("只有质量办可以免于登记改进措施 (only the quality office may waive)")
        if isinstance(command, MarkFalsePositive) and not (assessing or is_qo):
            raise NotAllowed("误报须由质量办或负责人的上一级认定 (false positives are for the assessing body)")

    def tick(self, now: datetime) -> list[AppliedTransition]:
        """Escalate overdue warnings and mark those without fresh data stale."""

        def policy_for(rule_id: str) -> tuple[LifecyclePolicy, timedelta]:
            rule = self._rule(rule_id)
            return (
                (rule.policy, rule.freshness_window)
                if rule
                else (LifecyclePolicy().for_cycle("year"), timedelta(days=400))
            )

        return self.store.tick(now, policy_for=policy_for, on_transition=self._on_transition)
