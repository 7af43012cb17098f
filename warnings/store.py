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

import csv
import io
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import DeadLetter, Entity, EntityKind, Observation, Person, Verdict, period_start
from zhengai.rules.model import LifecyclePolicy
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
from zhengai.warnings import batch
from zhengai.warnings.schema import (
    DeadLetterRow,
    EntityRow,
    ImprovementRow,
    ObservationRow,
    OutboxRow,
    PersonRow,
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

    # --- directory --------------------------------------------------------------------------
    def upsert_directory(self, records: Iterable[Entity | Person], directory: Directory | None = None) -> int:
        """Store entities and persons (latest wins; a person's missing contact field keeps the stored
        one). With the directory, each entity also gets its department and major, denormalised for
        dashboards — and so do the entities below the ones given, whose department or major may be
        known only now (a teacher from 人事 before their department from 教务). Entities whose row
        would not change are not written. Returns the number of entities new or changed."""
        batch: dict[str, Entity] = {}
        persons: dict[str, dict] = {}
        for r in records:
            if isinstance(r, Person):
                persons[r.id] = dict(id=r.id, name=r.name, dingtalk_user_id=r.dingtalk_user_id, mobile=r.mobile, email=r.email)
            else:
                batch[r.id] = r
        if directory is not None:
            todo = list(batch)
            while todo:
                for child in directory.children(todo.pop()):
                    if child.id not in batch:
                        batch[child.id] = child
                        todo.append(child.id)
        entities: dict[str, dict] = {}
        for r in batch.values():
            dept = major = None
            if directory is not None:
                d = directory.ancestor(r.id, EntityKind.department)
                m = directory.ancestor(r.id, EntityKind.major)
                dept, major = (d.id if d else None), (m.id if m else None)
            entities[r.id] = dict(id=r.id, kind=r.kind.value, name=r.name, parent_id=r.parent_id, department_id=dept,
                                  major_id=major, responsible={role: p.id for role, p in r.responsible.items()},
                                  attributes=dict(r.attributes))
        columns = ("kind", "name", "parent_id", "department_id", "major_id", "responsible", "attributes")
        with self.session() as s, s.begin():
            for chunk in _chunks(sorted(entities)):
                for row in s.execute(select(EntityRow.id, *(getattr(EntityRow, c) for c in columns)).where(EntityRow.id.in_(chunk))):
                    if tuple(row[1:]) == tuple(entities[row[0]][c] for c in columns):
                        del entities[row[0]]  # stored as it is: nothing to write, nothing changed
            for rows in _chunks([entities[k] for k in sorted(entities)], 1000):
                stmt = self._insert(EntityRow)
                stmt = stmt.on_conflict_do_update(index_elements=["id"], set_={c: getattr(stmt.excluded, c) for c in columns})
                s.execute(stmt, list(rows))
            for rows in _chunks([persons[k] for k in sorted(persons)], 1000):
                stmt = self._insert(PersonRow)
                stmt = stmt.on_conflict_do_update(index_elements=["id"], set_={
                    "name": stmt.excluded.name,
                    **{c: func.coalesce(getattr(stmt.excluded, c), getattr(PersonRow, c)) for c in ("dingtalk_user_id", "mobile", "email")}})
                s.execute(stmt, list(rows))
        return len(entities)

    def load_directory(self) -> Directory:
        """The directory as stored (for routing outside a streaming worker, e.g. the CLI)."""
        with self.session() as s:
            persons = {p.id: Person(id=p.id, name=p.name, dingtalk_user_id=p.dingtalk_user_id, mobile=p.mobile, email=p.email)
                       for p in s.scalars(select(PersonRow))}
            records: list[Entity | Person] = list(persons.values())
            for e in s.scalars(select(EntityRow)):
                responsible = {role: persons.get(pid) or Person(id=pid, name=pid) for role, pid in (e.responsible or {}).items()}
                records.append(Entity(id=e.id, kind=e.kind, name=e.name, parent_id=e.parent_id, responsible=responsible,
                                      attributes=e.attributes or {}))
        return Directory(records)

    # --- observations and dead letters ---------------------------------------------------------
    def add_observations(self, observations: Sequence[Observation]) -> int:
        """Store observations; a key seen before with a different value is a correction and
        replaces it (latest wins), the same key and value is a no-op. Returns rows written."""
        with self.session() as s, s.begin():
            return self._write_observations(s, observations)

    def _write_observations(self, s: Session, observations: Sequence[Observation]) -> int:
        latest: dict[str, Observation] = {}
        for o in observations:
            latest[o.key] = o
        if not latest:
            return 0
        if self.dialect == "postgresql":
            return self._copy_observations(s, list(latest.values()))
        stored: dict[str, tuple[int, float]] = {}
        for chunk in _chunks(list(latest)):
            for rid, key, value in s.execute(
                select(ObservationRow.id, ObservationRow.key, ObservationRow.value).where(ObservationRow.key.in_(chunk))
            ):
                stored[key] = (rid, value)
        new, changed = [], []
        for o in latest.values():
            row = dict(key=o.key, level=o.level.value, entity_id=o.entity_id, metric=o.metric, period=o.period,
                       value=float(o.value), is_bool=isinstance(o.value, bool), observed_at=o.observed_at, source=o.source,
                       period_start=period_start(o.period))
            if o.key not in stored:
                new.append(row)
            elif stored[o.key][1] != float(o.value):
                changed.append({"id": stored[o.key][0], **row})
        if new:
            s.execute(self._insert(ObservationRow).on_conflict_do_nothing(index_elements=["key", "period_start"]), new)
        if changed:
            s.execute(update(ObservationRow), changed)
        return len(new) + len(changed)

    _OBS_COLUMNS = ("key", "level", "entity_id", "metric", "period", "value", "is_bool", "observed_at", "source", "period_start")

    def _copy_observations(self, s: Session, observations: list[Observation]) -> int:
        """PostgreSQL: COPY into a temporary table, then one upsert that writes only new keys and
        changed values (latest wins) — replays cost one round trip and write nothing."""
        if not observations:
            return 0
        cols = ", ".join(self._OBS_COLUMNS)
        s.execute(text("CREATE TEMP TABLE IF NOT EXISTS observations_in (LIKE observations INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"))
        buf = io.StringIO()
        writer = csv.writer(buf)
        for o in observations:
            writer.writerow([o.key, o.level.value, o.entity_id, o.metric, o.period, repr(float(o.value)),
                             "t" if isinstance(o.value, bool) else "f", o.observed_at.isoformat(), o.source,
                             period_start(o.period).isoformat()])
        buf.seek(0)
        with s.connection().connection.cursor() as cur:
            cur.copy_expert(f"COPY observations_in ({cols}) FROM STDIN WITH (FORMAT csv)", buf)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in self._OBS_COLUMNS if c not in ("key", "period_start"))
        written = s.execute(text(
            f"INSERT INTO observations ({cols}) SELECT {cols} FROM observations_in ON CONFLICT (key, period_start) DO UPDATE SET {updates} "
            "WHERE observations.value IS DISTINCT FROM EXCLUDED.value RETURNING 1")).all()
        s.execute(text("TRUNCATE observations_in"))
        return len(written)

    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        with self.session() as s, s.begin():
            s.execute(insert(DeadLetterRow), [dict(source=d.source, reason=d.reason, raw=d.raw, at=d.at) for d in letters])

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
        return self.record_batch((), verdicts, rule_names=rule_names, responsible=responsible, policy_for=policy_for,
                                 on_transition=on_transition)

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
                self._write_observations(s, observations)
                if not verdicts:
                    return []
                return [AppliedTransition(*applied) for applied in batch.apply(
                    s, verdicts, rule_names, responsible, policy_for, on_transition, lookup)]
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

    def _record(self, s: Session, row: WarningRow, state: WarningState, transitions: Sequence[Transition],
                on_transition: OnTransition | None, pending: list | None = None) -> list[AppliedTransition]:
        """Write the events of ``transitions`` and their outbox rows. With ``pending`` the flush is
        left to the caller (``_flush_events``), so a batch writes its events in one round trip."""
        staged = []
        for t in transitions:
            event = WarningEventRow(
                warning_id=row.id, kind=t.kind.value, from_status=t.from_status.value if t.from_status else None,
                to_status=t.to_status.value, from_band=t.from_band.value if t.from_band else None, to_band=t.to_band.value,
                period=t.period, value=_num(t.value), reason=t.reason, cause=t.cause[:320], actor=t.actor, at=t.at,
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
                s.add(OutboxRow(event_id=event.id, channel=item.channel, recipient_id=item.recipient_id,
                                subject=item.subject, body=item.body, status="pending", created_at=t.at))
            out.append(AppliedTransition(row.id, event.id, t, state))
        s.flush()
        return out

    # --- people's actions and the clock ----------------------------------------------------
    def act(self, warning_id: int, command: Command, *, on_transition: OnTransition | None = None,
            evidence: Sequence[str] = ()) -> list[AppliedTransition]:
        """Acknowledge, start an improvement (改进措施), review (复评) or mark a false positive (误报).
        Raises ``LifecycleError`` when the warning's status does not allow it."""

        def work(s: Session) -> list[AppliedTransition]:
            row = s.get(WarningRow, warning_id, with_for_update=self.dialect == "postgresql")
            if row is None:
                raise KeyError(f"no warning #{warning_id}")
            state, transitions = step(_state_of(row), command)
            _write_state(row, state)
            if isinstance(command, StartImprovement):
                s.add(ImprovementRow(warning_id=row.id, owner_id=command.actor, text=command.text, evidence=list(evidence),
                                     due_date=command.due, created_at=command.at, value_before=row.value))
            return self._record(s, row, state, transitions, on_transition)

        return self._retrying(work)

    def tick(self, now: datetime, *, policy_for: Callable[[str], tuple[LifecyclePolicy, timedelta]],
             on_transition: OnTransition | None = None) -> list[AppliedTransition]:
        """Advance the clock: escalate overdue warnings, mark those without fresh data stale."""

        def work(s: Session) -> list[AppliedTransition]:
            live = [st.value for st in LIVE]
            rows = list(s.scalars(select(WarningRow).where(WarningRow.status.in_(live)).order_by(WarningRow.id)
                                  .with_for_update(skip_locked=True) if self.dialect == "postgresql" else
                                  select(WarningRow).where(WarningRow.status.in_(live)).order_by(WarningRow.id)))
            applied = []
            for row in rows:
                policy, freshness = policy_for(row.rule_id)
                state, transitions = step(_state_of(row), Tick(now, policy, freshness))
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
                for imp in s.scalars(select(ImprovementRow).where(ImprovementRow.warning_id == wid, ImprovementRow.effect_measured_at.is_(None))):
                    imp.value_after, imp.effect_measured_at = w.value, at
                    before = "—" if imp.value_before is None else f"{imp.value_before:g}"
                    imp.effect = f"{w.rule_name}由 {before} 变为 {w.value:g}（{w.last_period}），预警已恢复"

    # --- rule versions -----------------------------------------------------------------------
    def record_rule_versions(self, rules: "RuleSet", *, author: str, reason: str, at: datetime) -> list[RuleVersionRow]:
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
                    changes = {k: [prev.content.get(k), content.get(k)] for k in sorted(keys) if prev.content.get(k) != content.get(k)}
                row = RuleVersionRow(rule_id=rule.id, version=rule.version, content=content, changes=changes,
                                     author=author.strip(), reason=reason.strip(), published_at=at)
                s.add(row)
                written.append(row)
        return written

    # --- reading -----------------------------------------------------------------------------
    def count(self, table) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(table)) or 0

    def warning(self, warning_id: int) -> WarningRow | None:
        with self.session() as s:
            return s.get(WarningRow, warning_id)

    def warnings(self, *, status: str | None = None) -> list[WarningRow]:
        with self.session() as s:
            q = select(WarningRow).order_by(WarningRow.id)
            if status:
                q = q.where(WarningRow.status == status)
            return list(s.scalars(q))

    def events(self, warning_id: int | None = None) -> list[WarningEventRow]:
        with self.session() as s:
            q = select(WarningEventRow).order_by(WarningEventRow.id)
            if warning_id is not None:
                q = q.where(WarningEventRow.warning_id == warning_id)
            return list(s.scalars(q))

    def improvements(self, warning_id: int) -> list[ImprovementRow]:
        with self.session() as s:
            return list(s.scalars(select(ImprovementRow).where(ImprovementRow.warning_id == warning_id).order_by(ImprovementRow.id)))

