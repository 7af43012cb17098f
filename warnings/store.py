"""The warning store: observations, verdicts, warnings, their audit trail, improvements and the
outbox, on SQLite (embedded) or PostgreSQL (production) through SQLAlchemy.

Writes are idempotent and safe under concurrency:
- a verdict's idempotency key is (key, period start); only verdicts that were really new reach the
  lifecycle, so a replay never opens a second warning or event (on PostgreSQL they are COPYed,
  optimistically, and a redelivered batch is looked up: ``batch``, the batch write path);
- on PostgreSQL the batch takes a transaction-scoped advisory lock per (rule, entity), in sorted
  order, before reading warning state, so two workers racing on one entity serialise instead of
  both opening episode N; the unique (rule, entity, episode) and (warning, kind, cause)
  constraints back this up, and a conflicting batch is retried whole;
- one batch is one transaction: verdicts, warning states, events and outbox rows commit together.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from zhengai.ingest.records import Observation, Verdict
from zhengai.rules.model import LifecyclePolicy
from zhengai.warnings import batch
from zhengai.warnings.directory_store import DirectoryStore
from zhengai.warnings.lifecycle import (
    LIVE,
    Command,
    StartImprovement,
    Status,
    Tick,
    Transition,
    WarningState,
    step,
)
from zhengai.warnings.observation_store import ObservationStore
from zhengai.warnings.reads import Reads
from zhengai.warnings.schema import (
    ImprovementRow,
    OutboxRow,
    RuleVersionRow,
    WarningEventRow,
    WarningRow,
)

if TYPE_CHECKING:
    from zhengai.rules.loader import RuleSet

__all__ = ["WarningStore", "AppliedTransition", "OutboxItem", "ConcurrentUpdate"]

log = logging.getLogger(__name__)
_RETRIES = 5


@dataclass(frozen=True)
class OutboxItem:
    channel: str
    recipient_id: str | None
    subject: str
    body: str


@dataclass(frozen=True)
class AppliedTransition:
    warning_id: int
    event_id: int
    transition: Transition
    state: WarningState


class ConcurrentUpdate(RuntimeError):
    """A batch kept conflicting with another writer after every retry."""


# Called inside the batch transaction for every transition; returns the notifications to enqueue.
OnTransition = Callable[[WarningRow, Transition], Sequence[OutboxItem]]
# Decides the responsible (role, person id) of a new warning.
Responsible = Callable[[Verdict], tuple[str, str] | tuple[None, None]]
# The lifecycle policy of a rule (pending/recovery periods, due days, escalation).
PolicyFor = Callable[[str], LifecyclePolicy]


# The batch write path lives in ``batch``; these names stay here for the rest of the store.
_chunks, _num, _state_of, _write_state = batch.chunks, batch.num, batch.state_of, batch.write_state


class WarningStore:
    def __init__(self, url_or_engine: str | Engine):
        self.engine = batch.store_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        # The store's seams: the directory, observations and dead letters, and what people read.
        # The unit of work (verdicts → lifecycle → events → outbox) and people's actions stay here.
        self.directory = DirectoryStore(self._session, self._insert)
        self.observations = ObservationStore(self._session, self._insert, self.dialect)
        self.read = Reads(self._session)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_schema(self) -> None:
        """Bring the database to the newest schema version (versioned migrations)."""
        from zhengai.warnings.migrate import upgrade  # late: alembic is only needed here

        upgrade(self.engine)

    def session(self) -> Session:
        return self._session()

    def _insert(self, table):
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # --- verdicts → lifecycle → events → outbox ------------------------------------------------
    def apply_verdicts(
        self,
        verdicts: Sequence[Verdict],
        *,
        rule_names: dict[str, str],
        responsible: Responsible,
        policy_for: PolicyFor | None = None,
        on_transition: OnTransition | None = None,
    ) -> list[AppliedTransition]:
        """Store new verdicts and run them through the lifecycle, in the order given (callers sort
        by rule, entity and period). Verdicts already stored are skipped entirely."""
        return self.record_batch(
            (),
            verdicts,
            rule_names=rule_names,
            responsible=responsible,
            policy_for=policy_for,
            on_transition=on_transition,
        )

    def record_batch(
        self,
        observations: Sequence[Observation],
        verdicts: Sequence[Verdict],
        *,
        rule_names: dict[str, str],
        responsible: Responsible,
        policy_for: PolicyFor | None = None,
        on_transition: OnTransition | None = None,
    ) -> list[AppliedTransition]:
        """One hop's write: the observations (latest wins), their new verdicts and what those do to
        warnings, events and the outbox — one transaction, retried whole on a conflict."""
        if not verdicts and not observations:
            return []
        policy_for = policy_for or (lambda rule_id: LifecyclePolicy())

        def work(lookup: bool) -> Callable[[Session], list[AppliedTransition]]:
            def write(s: Session) -> list[AppliedTransition]:
                self.observations.write(s, observations)
                if not verdicts:
                    return []
                return [
                    AppliedTransition(*applied)
                    for applied in batch.apply(s, verdicts, rule_names, responsible, policy_for, on_transition, lookup)
                ]

            return write

        try:
            return self._retrying(work(False))  # optimistic: the verdicts are new (the usual case)
        except batch.Redelivered:
            return self._retrying(work(True))

    def _retrying(self, work: Callable[[Session], list]) -> list:
        for attempt in range(1, _RETRIES + 1):
            try:
                with self.session() as s, s.begin():
                    return work(s)
            except (IntegrityError, DBAPIError) as exc:
                retryable = isinstance(exc, IntegrityError) or getattr(exc.orig, "pgcode", None) in ("40001", "40P01")
                if not retryable or attempt == _RETRIES:
                    if retryable:
                        raise ConcurrentUpdate(f"batch conflicted {attempt} times: {exc.orig}") from exc
                    raise
                log.info("store batch conflicted (attempt %d), retrying: %s", attempt, exc.orig)
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    def _record(
        self,
        s: Session,
        row: WarningRow,
        state: WarningState,
        transitions: Sequence[Transition],
        on_transition: OnTransition | None,
        pending: list | None = None,
    ) -> list[AppliedTransition]:
        """Write the events of ``transitions`` and their outbox rows. With ``pending`` the flush is
        left to the caller (``_flush_events``), so a batch writes its events in one round trip."""
        staged = []
        for t in transitions:
            event = WarningEventRow(
                warning_id=row.id,
                kind=t.kind.value,
                from_status=t.from_status.value if t.from_status else None,
                to_status=t.to_status.value,
                from_band=t.from_band.value if t.from_band else None,
                to_band=t.to_band.value,
                period=t.period,
                value=_num(t.value),
                reason=t.reason,
                cause=t.cause[:320],
                actor=t.actor,
                at=t.at,
            )
            s.add(event)
            items = list(on_transition(row, t)) if on_transition else []
            staged.append((event, t, row, state, items))
        if pending is not None:
            pending.extend(staged)
            return []
        return self._flush_events(s, staged)

    def _flush_events(self, s: Session, staged: list) -> list[AppliedTransition]:
        s.flush()  # one insert for all staged events; their ids are known afterwards
        out = []
        for event, t, row, state, items in staged:
            for item in items:
                s.add(
                    OutboxRow(
                        event_id=event.id,
                        channel=item.channel,
                        recipient_id=item.recipient_id,
                        subject=item.subject,
                        body=item.body,
                        status="pending",
                        created_at=t.at,
                    )
                )
            out.append(AppliedTransition(row.id, event.id, t, state))
        s.flush()
        return out

    # --- people's actions and the clock ----------------------------------------------------
    def act(
        self,
        warning_id: int,
        command: Command,
        *,
        on_transition: OnTransition | None = None,
        evidence: Sequence[str] = (),
    ) -> list[AppliedTransition]:
        """Acknowledge, start an improvement (改进措施), review (复评) or mark a false positive (误报).
        Raises ``LifecycleError`` when the warning's status does not allow it."""

        def work(s: Session) -> list[AppliedTransition]:
            row = s.get(WarningRow, warning_id, with_for_update=self.dialect == "postgresql")
            if row is None:
                raise KeyError(f"no warning #{warning_id}")
            state, transitions = step(_state_of(row), command)
            assert state is not None  # an action on an existing warning leaves it a state (or raises)
            _write_state(row, state)
            if isinstance(command, StartImprovement):
                s.add(
                    ImprovementRow(
                        warning_id=row.id,
                        owner_id=command.actor,
                        text=command.text,
                        evidence=list(evidence),
                        due_date=command.due,
                        created_at=command.at,
                        value_before=row.value,
                    )
                )
            return self._record(s, row, state, transitions, on_transition)

        return self._retrying(work)

    def tick(
        self,
        now: datetime,
        *,
        policy_for: Callable[[str], tuple[LifecyclePolicy, timedelta]],
        on_transition: OnTransition | None = None,
    ) -> list[AppliedTransition]:
        """Advance the clock: escalate overdue warnings, mark those without fresh data stale."""

        def work(s: Session) -> list[AppliedTransition]:
            live = [st.value for st in LIVE]
            rows = list(
                s.scalars(
                    select(WarningRow)
                    .where(WarningRow.status.in_(live))
                    .order_by(WarningRow.id)
                    .with_for_update(skip_locked=True)
                    if self.dialect == "postgresql"
                    else select(WarningRow).where(WarningRow.status.in_(live)).order_by(WarningRow.id)
                )
            )
            applied = []
            for row in rows:
                policy, freshness = policy_for(row.rule_id)
                state, transitions = step(_state_of(row), Tick(now, policy, freshness))
                assert state is not None  # the clock moves an existing warning's state, never drops it
                if transitions:
                    _write_state(row, state)
                    applied += self._record(s, row, state, transitions, on_transition)
            return applied

        return self._retrying(work)

    def measure_effects(self, warning_ids: Iterable[int], at: datetime) -> None:
        """Record the realised effect (改进效果) of improvements whose warning recovered: the value
        at recovery against the value when the improvement started."""
        with self.session() as s, s.begin():
            for wid in warning_ids:
                w = s.get(WarningRow, wid)
                if w is None or w.status not in (Status.recovered.value, Status.closed.value):
                    continue
                for imp in s.scalars(
                    select(ImprovementRow).where(
                        ImprovementRow.warning_id == wid, ImprovementRow.effect_measured_at.is_(None)
                    )
                ):
                    imp.value_after, imp.effect_measured_at = w.value, at
                    before = "—" if imp.value_before is None else f"{imp.value_before:g}"
                    imp.effect = f"{w.rule_name}由 {before} 变为 {w.value:g}（{w.last_period}），预警已恢复"

    # --- rule versions -----------------------------------------------------------------------
    def record_rule_versions(self, rules: RuleSet, *, author: str, reason: str, at: datetime) -> list[RuleVersionRow]:
        """Publish a rulebook: one row per rule whose content changed since its last published
        version, with the changed fields (old → new), the author and the reason."""
        if not author.strip() or not reason.strip():
            raise ValueError("publishing rules needs an author and a reason (谁、为什么修改)")
        written: list[RuleVersionRow] = []
        with self.session() as s, s.begin():
            latest: dict[str, RuleVersionRow] = {}
            for row in s.scalars(select(RuleVersionRow).order_by(RuleVersionRow.id)):
                latest[row.rule_id] = row
            for rule in rules.rules.values():
                content = rule.model_dump(mode="json")
                prev = latest.get(rule.id)
                if prev is not None and prev.version == rule.version:
                    continue
                changes = {}
                if prev is not None:
                    keys = set(prev.content) | set(content)
                    changes = {
                        k: [prev.content.get(k), content.get(k)]
                        for k in sorted(keys)
                        if prev.content.get(k) != content.get(k)
                    }
                row = RuleVersionRow(
                    rule_id=rule.id,
                    version=rule.version,
                    content=content,
                    changes=changes,
                    author=author.strip(),
                    reason=reason.strip(),
                    published_at=at,
                )
                s.add(row)
                written.append(row)
        return written
