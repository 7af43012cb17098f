"""The warning store: observations, verdicts, warnings, their audit trail and the outbox.

Writes are idempotent: an observation or verdict whose key is already stored is skipped, and a
skipped verdict never reaches the lifecycle, so re-evaluating the same data never opens a second
warning nor writes a second event. A batch is one transaction: verdicts, warning states, events
and outbox rows commit together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, Iterator, Sequence

from sqlalchemy import create_engine, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from zhengai.ingest.records import Band, DeadLetter, Entity, Observation, Person, Verdict
from zhengai.warnings.lifecycle import Status, Transition, WarningState, step
from zhengai.warnings.schema import (
    Base,
    BookmarkRow,
    DeadLetterRow,
    EntityRow,
    ObservationRow,
    OutboxRow,
    PersonRow,
    VerdictRow,
    WarningEventRow,
    WarningRow,
)

__all__ = ["WarningStore", "AppliedTransition", "OutboxItem", "SqlBookmarks"]

_CHUNK = 500
_SEVERITY = {"yellow": 1, "red": 2}


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


# Called inside the batch transaction for every transition; returns the notifications to enqueue.
OnTransition = Callable[[WarningRow, Transition], Sequence[OutboxItem]]
# Decides the responsible (role, person id) of a new warning.
Responsible = Callable[[Verdict], tuple[str, str] | tuple[None, None]]
# Decides the due date (限期改进) of a new warning.
DueDate = Callable[[Verdict], datetime | None]


def _chunks(items: Sequence, n: int = _CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _state_of(row: WarningRow) -> WarningState:
    return WarningState(
        rule_id=row.rule_id,
        entity_id=row.entity_id,
        episode=row.episode,
        status=Status(row.status),
        band=Band(row.band),
        opened_period=row.opened_period,
        last_period=row.last_period,
        value=row.value,
        reason=row.reason,
        opened_at=row.opened_at,
        updated_at=row.updated_at,
    )


def _num(value: float | bool | None) -> float | None:
    return None if value is None else float(value)


class WarningStore:
    def __init__(self, url_or_engine: str | Engine):
        self.engine = create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def create_schema(self) -> None:
        Base.metadata.create_all(self.engine)

    def session(self) -> Session:
        return self._session()

    # --- directory --------------------------------------------------------------------------
    def upsert_directory(self, records: Iterable[Entity | Person]) -> None:
        with self.session() as s, s.begin():
            for r in records:
                if isinstance(r, Person):
                    s.merge(PersonRow(id=r.id, name=r.name, dingtalk_user_id=r.dingtalk_user_id, mobile=r.mobile, email=r.email))
                else:
                    s.merge(
                        EntityRow(
                            id=r.id,
                            kind=r.kind.value,
                            name=r.name,
                            parent_id=r.parent_id,
                            responsible={role: p.id for role, p in r.responsible.items()},
                            attributes=dict(r.attributes),
                        )
                    )

    # --- observations and dead letters ---------------------------------------------------------
    def _existing(self, s: Session, column, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(keys)):
            found.update(s.scalars(select(column).where(column.in_(chunk))))
        return found

    def add_observations(self, observations: Sequence[Observation]) -> int:
        """Store observations; a key seen before with a different value is a correction and
        replaces it (latest wins), the same key and value is a no-op. Returns rows written."""
        latest: dict[str, Observation] = {}
        for o in observations:
            latest[o.key] = o
        with self.session() as s, s.begin():
            stored: dict[str, tuple[int, float]] = {}
            for chunk in _chunks(list(latest)):
                for rid, key, value in s.execute(
                    select(ObservationRow.id, ObservationRow.key, ObservationRow.value).where(ObservationRow.key.in_(chunk))
                ):
                    stored[key] = (rid, value)
            new, changed = [], []
            for o in latest.values():
                row = dict(key=o.key, level=o.level.value, entity_id=o.entity_id, metric=o.metric, period=o.period,
                           value=float(o.value), is_bool=isinstance(o.value, bool), observed_at=o.observed_at, source=o.source)
                if o.key not in stored:
                    new.append(row)
                elif stored[o.key][1] != float(o.value):
                    changed.append({"id": stored[o.key][0], **row})
            if new:
                s.execute(insert(ObservationRow), new)
            if changed:
                s.execute(update(ObservationRow), changed)
            return len(new) + len(changed)

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
        due_date: DueDate,
        on_transition: OnTransition | None = None,
    ) -> list[AppliedTransition]:
        """Store new verdicts and run them through the lifecycle, in the order given (callers
        sort by period). Verdicts already stored are skipped entirely."""
        applied: list[AppliedTransition] = []
        with self.session() as s, s.begin():
            known = self._existing(s, VerdictRow.key, [v.key for v in verdicts])
            fresh: list[Verdict] = []
            for v in verdicts:
                if v.key not in known:
                    known.add(v.key)
                    fresh.append(v)
            if not fresh:
                return applied
            s.execute(
                insert(VerdictRow),
                [
                    dict(key=v.key, rule_id=v.rule_id, rule_version=v.rule_version, level=v.level.value, entity_id=v.entity_id,
                         metric=v.metric, period=v.period, value=_num(v.value), band=v.band.value, reason=v.reason,
                         thresholds=v.thresholds.model_dump(mode="json"), observed_at=v.observed_at, evaluated_at=v.evaluated_at)
                    for v in fresh
                ],
            )
            current = self._latest_warnings(s, {(v.rule_id, v.entity_id) for v in fresh if v.band is not Band.stale})
            for v in fresh:
                pair = (v.rule_id, v.entity_id)
                row = current.get(pair)
                state, transitions = step(_state_of(row) if row is not None else None, v)
                if not transitions:
                    if row is not None and state is not None and state.last_period != row.last_period:
                        row.last_period, row.value, row.reason, row.updated_at = state.last_period, _num(state.value), state.reason, state.updated_at
                    continue
                for t in transitions:
                    if row is None or t.episode != row.episode:
                        role, person = responsible(v)
                        row = WarningRow(
                            rule_id=v.rule_id, rule_name=rule_names.get(v.rule_id, v.rule_id), entity_id=v.entity_id,
                            episode=t.episode, level=v.level.value, metric=v.metric, status=state.status.value,
                            band=state.band.value, worst_band=state.band.value, opened_period=state.opened_period,
                            last_period=state.last_period, value=_num(state.value), reason=state.reason,
                            responsible_role=role, responsible_person_id=person, due_date=due_date(v),
                            opened_at=state.opened_at, updated_at=state.updated_at,
                        )
                        s.add(row)
                        s.flush()
                        current[pair] = row
                    else:
                        row.status, row.band, row.last_period = state.status.value, state.band.value, state.last_period
                        row.value, row.reason, row.updated_at = _num(state.value), state.reason, state.updated_at
                        if state.band.is_breach and _SEVERITY[state.band.value] > _SEVERITY.get(row.worst_band, 0):
                            row.worst_band = state.band.value
                        if state.status is Status.resolved:
                            row.resolved_at = t.at
                    event = WarningEventRow(
                        warning_id=row.id, kind=t.kind.value, from_status=t.from_status.value if t.from_status else None,
                        to_status=t.to_status.value, from_band=t.from_band.value if t.from_band else None,
                        to_band=t.to_band.value, period=t.period, value=_num(t.value), reason=t.reason, cause=t.verdict_key, at=t.at,
                    )
                    s.add(event)
                    s.flush()
                    for item in on_transition(row, t) if on_transition else ():
                        s.add(OutboxRow(event_id=event.id, channel=item.channel, recipient_id=item.recipient_id,
                                        subject=item.subject, body=item.body, status="pending", created_at=t.at))
                    applied.append(AppliedTransition(row.id, event.id, t, state))
        return applied

    def _latest_warnings(self, s: Session, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], WarningRow]:
        out: dict[tuple[str, str], WarningRow] = {}
        by_rule: dict[str, list[str]] = {}
        for rule_id, entity_id in pairs:
            by_rule.setdefault(rule_id, []).append(entity_id)
        for rule_id, entities in by_rule.items():
            for chunk in _chunks(entities):
                rows = s.scalars(select(WarningRow).where(WarningRow.rule_id == rule_id, WarningRow.entity_id.in_(chunk)))
                for row in rows:
                    key = (row.rule_id, row.entity_id)
                    if key not in out or row.episode > out[key].episode:
                        out[key] = row
        return out

    # --- outbox ------------------------------------------------------------------------------
    def pending_notifications(self, channel: str, limit: int = 1000) -> list[OutboxRow]:
        with self.session() as s:
            q = select(OutboxRow).where(OutboxRow.channel == channel, OutboxRow.status == "pending").order_by(OutboxRow.id).limit(limit)
            return list(s.scalars(q))

    def mark_sent(self, outbox_id: int, at: datetime) -> None:
        with self.session() as s, s.begin():
            s.execute(update(OutboxRow).where(OutboxRow.id == outbox_id).values(status="sent", sent_at=at, attempts=OutboxRow.attempts + 1))

    def mark_failed(self, outbox_id: int, error: str, *, retryable: bool) -> None:
        with self.session() as s, s.begin():
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id == outbox_id)
                .values(status="pending" if retryable else "failed", last_error=error[:2000], attempts=OutboxRow.attempts + 1)
            )

    # --- reading for summaries ----------------------------------------------------------------
    def count(self, table) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(table)) or 0

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


class SqlBookmarks:
    """Connector bookmarks in the store (implements the connectors' BookmarkStore protocol)."""

    def __init__(self, store: WarningStore, clock: Callable[[], datetime]):
        self._store, self._clock = store, clock

    def get(self, connector: str, stream: str) -> str | None:
        with self._store.session() as s:
            row = s.get(BookmarkRow, (connector, stream))
            return row.value if row else None

    def put(self, connector: str, stream: str, value: str) -> None:
        with self._store.session() as s, s.begin():
            s.merge(BookmarkRow(connector=connector, stream=stream, value=value, updated_at=self._clock()))
