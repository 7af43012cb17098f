"""The warning store: observations, verdicts, warnings, their audit trail, improvements and the
outbox, on SQLite (embedded) or PostgreSQL (production) through SQLAlchemy.

Writes are idempotent and safe under concurrency:
- a verdict is inserted with ``ON CONFLICT (key) DO NOTHING RETURNING key`` and only verdicts that
  were really new reach the lifecycle, so a replay never opens a second warning or event;
- on PostgreSQL the batch takes a transaction-scoped advisory lock per (rule, entity), in sorted
  order, before reading warning state, so two workers racing on one entity serialise instead of
  both opening episode N; the unique (rule, entity, episode) and (warning, kind, cause)
  constraints back this up, and a conflicting batch is retried whole;
- one batch is one transaction: verdicts, warning states, events and outbox rows commit together.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

from sqlalchemy import bindparam, create_engine, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Band, DeadLetter, Entity, EntityKind, Observation, Person, Verdict, period_start
from zhengai.rules.model import LifecyclePolicy
from zhengai.warnings.lifecycle import (
    LIVE,
    Command,
    Observe,
    Resolution,
    StartImprovement,
    Status,
    Tick,
    Transition,
    WarningState,
    step,
)
from zhengai.warnings.schema import (
    DeadLetterRow,
    EntityRow,
    ImprovementRow,
    ObservationRow,
    OutboxRow,
    PersonRow,
    RuleVersionRow,
    VerdictRow,
    WarningEventRow,
    WarningRow,
)

if TYPE_CHECKING:
    from zhengai.rules.loader import RuleSet

__all__ = ["WarningStore", "AppliedTransition", "OutboxItem", "ConcurrentUpdate"]

log = logging.getLogger(__name__)
_CHUNK = 500
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


class _Redelivered(Exception):
    """A batch's optimistic COPY met verdicts stored before: run it again, looking them up."""


# Called inside the batch transaction for every transition; returns the notifications to enqueue.
OnTransition = Callable[[WarningRow, Transition], Sequence[OutboxItem]]
# Decides the responsible (role, person id) of a new warning.
Responsible = Callable[[Verdict], tuple[str, str] | tuple[None, None]]
# The lifecycle policy of a rule (pending/recovery periods, due days, escalation).
PolicyFor = Callable[[str], LifecyclePolicy]


def _chunks(items: Sequence, n: int = _CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _num(value: float | bool | None) -> float | None:
    return None if value is None else float(value)


_STATE_FIELDS = (
    "status", "band", "worst_band", "opened_period", "last_period", "reason", "opened_at", "updated_at",
    "pending_count", "recovery_count", "escalation_level", "due_date", "next_escalation_at", "stale",
    "last_data_at", "acknowledged_at", "recovered_at", "closed_at", "resolution", "close_reason",
)


def _state_of(row: WarningRow) -> WarningState:
    return WarningState(
        rule_id=row.rule_id, entity_id=row.entity_id, episode=row.episode, status=Status(row.status),
        band=Band(row.band), worst_band=Band(row.worst_band), opened_period=row.opened_period,
        last_period=row.last_period, value=row.value, reason=row.reason, opened_at=row.opened_at,
        updated_at=row.updated_at, pending_count=row.pending_count or 0, recovery_count=row.recovery_count or 0,
        escalation_level=row.escalation_level or 0, due_date=row.due_date, next_escalation_at=row.next_escalation_at,
        stale=bool(row.stale), last_data_at=row.last_data_at, acknowledged_at=row.acknowledged_at,
        recovered_at=row.recovered_at, closed_at=row.closed_at,
        resolution=Resolution(row.resolution) if row.resolution else None, close_reason=row.close_reason,
    )


def _write_state(row: WarningRow, state: WarningState, held: WarningState | None = None) -> None:
    """Write ``state`` onto the row; with ``held`` (what the row holds now), only the fields that changed."""
    for name in _STATE_FIELDS:
        value = getattr(state, name)
        if held is not None and getattr(held, name) == value:
            continue
        setattr(row, name, value.value if hasattr(value, "value") and not isinstance(value, (int, float)) else value)
    if held is None or held.value != state.value:
        row.value = _num(state.value)


def _engine(url: str) -> Engine:
    """An engine for the store. With psycopg2, a batch's UPDATEs of changed warnings go in pages
    (execute_batch) rather than one round trip per row."""
    if make_url(url).get_driver_name() == "psycopg2":
        return create_engine(url, executemany_mode="values_plus_batch")
    return create_engine(url)


def _csv(value: str) -> str:
    """One CSV field (PostgreSQL's CSV: quoted when it holds a comma, quote or line break)."""
    if '"' in value or "," in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


class _Lines(io.TextIOBase):
    """A file to COPY from that renders its lines as the driver reads them, so that Python writes
    the CSV while the server is already parsing and indexing what it received."""

    def __init__(self, lines: Iterator[str]):
        self._lines = lines
        self._rest = ""

    def read(self, size: int | None = -1) -> str:
        size = size if size is not None and size >= 0 else 1 << 62
        parts, n = [self._rest], len(self._rest)
        for line in self._lines:
            parts.append(line)
            n += len(line)
            if n >= size:
                break
        data = "".join(parts)
        self._rest = data[size:]
        return data[:size]

    def readable(self) -> bool:
        return True


def _verdict_csv(verdicts: dict[str, Verdict], starts: dict[str, datetime]) -> Iterator[str]:
    """The CSV lines of verdicts in ``WarningStore._VERDICT_COLUMNS`` order. A batch shares a few
    rules, threshold sets, instants and periods: each is rendered once."""
    rules: dict[tuple, str] = {}
    thresholds: dict[int, str] = {}
    times: dict[datetime | None, str] = {None: ""}
    periods: dict[str, str] = {}
    for key, v in verdicts.items():
        rule = rules.get((v.rule_id, v.rule_version, v.level, v.metric))
        if rule is None:
            rule = rules[(v.rule_id, v.rule_version, v.level, v.metric)] = ",".join(
                _csv(x) for x in (v.rule_id, v.rule_version, v.level.value, v.metric))
        th = thresholds.get(id(v.thresholds))
        if th is None:
            th = thresholds[id(v.thresholds)] = _csv(json.dumps(v.thresholds.model_dump(mode="json"), ensure_ascii=False))
        observed, evaluated, period = v.observed_at, v.evaluated_at, v.period
        if observed not in times:
            times[observed] = observed.isoformat()
        if evaluated not in times:
            times[evaluated] = evaluated.isoformat()
        p = periods.get(period)
        if p is None:
            p = periods[period] = f"{_csv(period)},{{}},{{}},{{}},{{}},{{}},{{}},{starts[period].isoformat()}"
        value = v.value
        yield (_csv(key) + "," + rule + "," + _csv(v.entity_id) + "," + p.format(
            "" if value is None else repr(float(value)), v.band.value, _csv(v.reason), th, times[observed], times[evaluated])
            + "\n")


class WarningStore:
    def __init__(self, url_or_engine: str | Engine):
        self.engine = _engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
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
    def upsert_directory(self, records: Iterable[Entity | Person], directory: Directory | None = None) -> None:
        """Store entities and persons (latest wins; a person's missing contact field keeps the stored
        one). With the directory, each entity also gets its department and major, denormalised for
        dashboards. One bulk upsert per table."""
        entities: dict[str, dict] = {}
        persons: dict[str, dict] = {}
        for r in records:
            if isinstance(r, Person):
                persons[r.id] = dict(id=r.id, name=r.name, dingtalk_user_id=r.dingtalk_user_id, mobile=r.mobile, email=r.email)
                continue
            dept = major = None
            if directory is not None:
                d = directory.ancestor(r.id, EntityKind.department)
                m = directory.ancestor(r.id, EntityKind.major)
                dept, major = (d.id if d else None), (m.id if m else None)
            entities[r.id] = dict(id=r.id, kind=r.kind.value, name=r.name, parent_id=r.parent_id, department_id=dept,
                                  major_id=major, responsible={role: p.id for role, p in r.responsible.items()},
                                  attributes=dict(r.attributes))
        with self.session() as s, s.begin():
            for rows in _chunks(list(entities.values()), 1000):
                stmt = self._insert(EntityRow)
                stmt = stmt.on_conflict_do_update(index_elements=["id"], set_={
                    c: getattr(stmt.excluded, c) for c in ("kind", "name", "parent_id", "department_id", "major_id", "responsible", "attributes")})
                s.execute(stmt, list(rows))
            for rows in _chunks(list(persons.values()), 1000):
                stmt = self._insert(PersonRow)
                stmt = stmt.on_conflict_do_update(index_elements=["id"], set_={
                    "name": stmt.excluded.name,
                    **{c: func.coalesce(getattr(stmt.excluded, c), getattr(PersonRow, c)) for c in ("dingtalk_user_id", "mobile", "email")}})
                s.execute(stmt, list(rows))

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
        latest: dict[str, Observation] = {}
        for o in observations:
            latest[o.key] = o
        if self.dialect == "postgresql":
            with self.session() as s, s.begin():
                return self._copy_observations(s, list(latest.values()))
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
        if not verdicts:
            return []
        policy_for = policy_for or (lambda rule_id: LifecyclePolicy())

        def work(lookup: bool) -> Callable[[Session], list]:
            return lambda s: self._apply(s, verdicts, rule_names, responsible, policy_for, on_transition, lookup)

        try:
            return self._retrying(work(False))  # optimistic: the verdicts are new (the usual case)
        except _Redelivered:
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

    def _lock_pairs(self, s: Session, pairs: Iterable[tuple[str, str]]) -> None:
        if self.dialect != "postgresql":
            return  # SQLite serialises writers itself
        keys = sorted({f"{r}|{e}" for r, e in pairs})
        for chunk in _chunks(keys, 2000):
            s.execute(
                text("SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) FROM "
                     "(SELECT k FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k) AS ordered"),
                {"keys": list(chunk)},
            )

    def _insert_new_verdicts(self, s: Session, verdicts: dict[str, Verdict], lookup: bool = True) -> set[str]:
        """Insert the verdicts (by key) not stored yet; returns their keys."""
        if self.dialect == "postgresql":
            return self._copy_new_verdicts(s, verdicts, lookup)
        rows = [
            dict(key=key, rule_id=v.rule_id, rule_version=v.rule_version, level=v.level.value, entity_id=v.entity_id,
                 metric=v.metric, period=v.period, value=_num(v.value), band=v.band.value, reason=v.reason,
                 thresholds=v.thresholds.model_dump(mode="json"), observed_at=v.observed_at, evaluated_at=v.evaluated_at,
                 period_start=period_start(v.period))
            for key, v in verdicts.items()
        ]
        new: set[str] = set()
        for chunk in _chunks(rows, 1000):
            stmt = self._insert(VerdictRow).on_conflict_do_nothing(index_elements=["key", "period_start"]).returning(VerdictRow.key)
            new.update(s.scalars(stmt, list(chunk)))
        return new

    # in the order the CSV is written (rule-constant columns together, see _verdict_csv)
    _VERDICT_COLUMNS = ("key", "rule_id", "rule_version", "level", "metric", "entity_id", "period", "value", "band",
                        "reason", "thresholds", "observed_at", "evaluated_at", "period_start")

    def _copy_new_verdicts(self, s: Session, verdicts: dict[str, Verdict], lookup: bool) -> set[str]:
        """PostgreSQL: COPY the verdicts straight into the table — the idempotent insert at COPY
        speed (bench/bench_store.py). Optimistic: a batch of new verdicts (the usual case) costs one
        COPY; when it meets a stored key (a redelivery) the batch's transaction is rolled back and
        run again with ``lookup``: the stored keys are looked up and only the new verdicts copied. No other writer can insert
        these keys meanwhile: a verdict's key belongs to its (rule, entity) pair, whose advisory lock
        this transaction holds (``_lock_pairs``); a unique violation all the same fails the batch,
        which ``_retrying`` runs again."""
        starts = {v.period: period_start(v.period) for v in verdicts.values()}
        copy = f"COPY verdicts ({', '.join(self._VERDICT_COLUMNS)}) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (reason))"
        if not lookup:
            try:
                with s.connection().connection.cursor() as cur:
                    cur.copy_expert(copy, _Lines(_verdict_csv(verdicts, starts)))
                return set(verdicts)
            except Exception as exc:  # psycopg2's own error: the COPY runs on the driver's cursor
                if getattr(exc, "pgcode", None) == "23505":  # unique_violation
                    raise _Redelivered() from exc
                raise
        stored = set(s.execute(
            text("SELECT key, period_start FROM verdicts WHERE key = ANY(:keys) AND period_start = ANY(:starts)"),
            {"keys": list(verdicts), "starts": list(set(starts.values()))}).all())
        new = {key: v for key, v in verdicts.items() if (key, starts[v.period]) not in stored}
        if new:
            with s.connection().connection.cursor() as cur:
                cur.copy_expert(copy, _Lines(_verdict_csv(new, starts)))
        return set(new)

    def _apply(self, s: Session, verdicts: Sequence[Verdict], rule_names: dict[str, str], responsible: Responsible,
               policy_for: PolicyFor, on_transition: OnTransition | None, lookup: bool = True) -> list[AppliedTransition]:
        self._lock_pairs(s, {(v.rule_id, v.entity_id) for v in verdicts})
        unique: dict[str, Verdict] = {}
        for v in verdicts:
            unique.setdefault(v.key, v)  # the key is computed once per verdict
        new_keys = self._insert_new_verdicts(s, unique, lookup)
        fresh = [v for key, v in unique.items() if key in new_keys]  # in the order given
        current = self._latest_warnings(s, {(v.rule_id, v.entity_id) for v in fresh if v.band is not Band.stale})
        # Notifications are worded as each transition happens (the row as it is then); the new
        # warnings are inserted together, then every event, then every outbox row: a batch costs a
        # few round trips however many warnings it opens.
        staged: list = []
        policies: dict[str, LifecyclePolicy] = {}
        new_rows: list[WarningRow] = []
        states: dict[tuple[str, str], WarningState] = {}  # each pair's state as the batch advances it …
        held: dict[tuple[str, str], WarningState | None] = {}  # … and as its row holds it
        for v in fresh:
            pair = (v.rule_id, v.entity_id)
            row = current.get(pair)
            if row is None and not v.band.is_breach:
                continue  # what the lifecycle does with it: no warning, and only a breach opens one
            policy = policies.get(v.rule_id)
            if policy is None:
                policy = policies[v.rule_id] = policy_for(v.rule_id)
            prev = states.get(pair)
            if prev is None and row is not None:
                prev = states[pair] = held[pair] = _state_of(row)
            state, transitions = step(prev, Observe(v, policy))
            if state is None:
                continue
            if row is None or state.episode != row.episode:
                if row is not None and held[pair] is not prev:
                    _write_state(row, prev, held[pair])  # the previous episode's last state
                role, person = responsible(v)
                row = WarningRow(rule_id=v.rule_id, rule_name=rule_names.get(v.rule_id, v.rule_id), entity_id=v.entity_id,
                                 episode=state.episode, level=v.level.value, metric=v.metric,
                                 responsible_role=role, responsible_person_id=person)
                new_rows.append(row)
                current[pair], held[pair] = row, None
            states[pair] = state
            if transitions:  # notifications read the row as it is at the transition
                _write_state(row, state, held[pair])
                held[pair] = state
                for t in transitions:
                    staged.append((row, state, t, list(on_transition(row, t)) if on_transition else []))
        for pair, state in states.items():
            if held[pair] is not state:
                _write_state(current[pair], state, held[pair])
        self._write_warnings(s, new_rows, [current[pair] for pair in states if current[pair].id is not None])
        return self._insert_events(s, staged) if staged else []

    _WARNING_STATE = (*_STATE_FIELDS, "value")

    def _write_warnings(self, s: Session, new: list[WarningRow], touched: list[WarningRow]) -> None:
        """The batch's warnings in two statements: new episodes in one INSERT … RETURNING id (ids in
        order), the state of the others in one executemany UPDATE (paged by the driver)."""
        table = WarningRow.__table__
        if new:
            values = [{c.name: getattr(row, c.name) for c in table.columns if c.name != "id"} for row in new]
            ids = s.scalars(insert(table).returning(table.c.id, sort_by_parameter_order=True), values).all()
            for row, warning_id in zip(new, ids):
                row.id = warning_id
        if touched:
            s.execute(update(table).where(table.c.id == bindparam("warning_id")),
                      [{"warning_id": row.id, **{name: getattr(row, name) for name in self._WARNING_STATE}} for row in touched])

    def _insert_events(self, s: Session, staged: list) -> list[AppliedTransition]:
        """Insert the events of ``staged`` (row, state, transition, outbox items), then their outbox
        rows: on PostgreSQL by COPY with ids drawn from the sequence first, elsewhere in one INSERT
        … RETURNING (ids in order) and one executemany."""
        events = [(row.id, t.kind.value, t.from_status.value if t.from_status else None, t.to_status.value,
                   t.from_band.value if t.from_band else None, t.to_band.value, t.period, _num(t.value), t.reason,
                   t.cause[:320], t.actor, t.at) for row, _, t, _ in staged]
        if self.dialect == "postgresql":
            ids = sorted(s.execute(text("SELECT nextval(pg_get_serial_sequence('warning_events', 'id')) "
                                        "FROM generate_series(1, :n)"), {"n": len(events)}).scalars())
            self._copy(s, "warning_events", self._EVENT_COLUMNS, [(i, *e) for i, e in zip(ids, events)],
                       not_null=("reason", "cause"))
        else:
            rows = [dict(zip(self._EVENT_COLUMNS[1:], e)) for e in events]
            ids = s.scalars(insert(WarningEventRow).returning(WarningEventRow.id, sort_by_parameter_order=True), rows).all()
        outbox = [(event_id, item.channel, item.recipient_id, item.subject, item.body, "pending", 0, t.at)
                  for event_id, (_, _, t, items) in zip(ids, staged) for item in items]
        if outbox and self.dialect == "postgresql":
            self._copy(s, "notification_outbox", self._OUTBOX_COLUMNS, outbox, not_null=("subject", "body"))
        elif outbox:
            s.execute(insert(OutboxRow), [dict(zip(self._OUTBOX_COLUMNS, o)) for o in outbox])
        return [AppliedTransition(row.id, event_id, t, state) for event_id, (row, state, t, _) in zip(ids, staged)]

    _EVENT_COLUMNS = ("id", "warning_id", "kind", "from_status", "to_status", "from_band", "to_band", "period", "value",
                      "reason", "cause", "actor", "at")
    _OUTBOX_COLUMNS = ("event_id", "channel", "recipient_id", "subject", "body", "status", "attempts", "created_at")

    @staticmethod
    def _copy(s: Session, table: str, columns: Sequence[str], rows: Iterable[tuple], *, not_null: Sequence[str]) -> None:
        """COPY rows into a table in the session's transaction. None is NULL; an empty string in a
        ``not_null`` column stays an empty string."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        for row in rows:
            writer.writerow(["" if x is None else x.isoformat() if isinstance(x, datetime) else x for x in row])
        buf.seek(0)
        with s.connection().connection.cursor() as cur:
            cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, "
                            f"FORCE_NOT_NULL ({', '.join(not_null)}))", buf)

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

    def _latest_warnings(self, s: Session, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], WarningRow]:
        """The latest episode of each pair, as rows detached from the session (Core reads; the batch
        writes them back itself, ``_write_warnings``)."""
        out: dict[tuple[str, str], WarningRow] = {}
        table = WarningRow.__table__
        by_rule: dict[str, list[str]] = {}
        for rule_id, entity_id in pairs:
            by_rule.setdefault(rule_id, []).append(entity_id)
        for rule_id, entities in by_rule.items():
            for chunk in _chunks(entities):
                for r in s.execute(select(table).where(table.c.rule_id == rule_id, table.c.entity_id.in_(chunk))).mappings():
                    key = (r["rule_id"], r["entity_id"])
                    if key not in out or r["episode"] > out[key].episode:
                        out[key] = WarningRow(**r)
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

