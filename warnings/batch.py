"""One batch of verdicts through the warning store — the hot write path, near COPY speed.

``apply`` runs inside the batch's transaction (``WarningStore.apply_verdicts`` owns it and its
retries). On PostgreSQL, in this order:

1. the advisory locks of the batch's (rule, entity) pairs, in sorted order, so two workers racing on
   one entity serialise instead of both opening episode N;
2. the latest warning of each pair, read with Core (detached rows: the batch writes them back itself);
3. the verdicts, COPYed straight into ``verdicts`` and streamed: their CSV is rendered as the driver
   reads it, and each verdict goes through the lifecycle as its line is rendered, so Python works
   while the server parses and indexes. Optimistic: a batch of new verdicts (the usual case) costs
   this one COPY; one that meets a stored key (a redelivery) raises ``Redelivered`` and the caller
   runs it again with ``lookup``: the stored keys are looked up first and only new verdicts copied.
   No other writer can insert these keys meanwhile — a verdict's key belongs to its pair, whose lock
   the transaction holds — and a unique violation all the same fails the batch, which is retried;
4. the new warnings in one INSERT … RETURNING id, the changed ones in one paged UPDATE;
5. the events by COPY (their ids drawn from the sequence first) and their outbox rows by COPY.

On SQLite the same steps run with INSERT … ON CONFLICT DO NOTHING RETURNING and executemany.
Notifications are worded as each transition happens (``on_transition`` sees the row as it is then).
What moved bench/bench_store.py's figure is told in that file's docstring.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Boolean, Table, bindparam, column, create_engine, insert, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from zhengai.ingest.records import Band, Verdict, period_start
from zhengai.rules.model import LifecyclePolicy
from zhengai.warnings.lifecycle import Observe, Resolution, Status, Transition, WarningState, step
from zhengai.warnings.schema import OutboxRow, VerdictRow, WarningEventRow, WarningRow

__all__ = ["apply", "Redelivered", "store_engine", "state_of", "write_state", "chunks", "num"]

CHUNK = 500


class Redelivered(Exception):
    """The batch's optimistic COPY met verdicts stored before: run it again with ``lookup``."""


def store_engine(url: str) -> Engine:
    """An engine for the store. With psycopg2 a batch's UPDATEs go in pages (execute_batch), not one
    round trip per row."""
    if make_url(url).get_driver_name() == "psycopg2":
        return create_engine(url, executemany_mode="values_plus_batch")
    return create_engine(url)


def chunks(items: Sequence, n: int = CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def num(value: float | bool | None) -> float | None:
    return None if value is None else float(value)


STATE_FIELDS = (
    "status",
    "band",
    "worst_band",
    "opened_period",
    "last_period",
    "reason",
    "opened_at",
    "updated_at",
    "pending_count",
    "recovery_count",
    "escalation_level",
    "due_date",
    "next_escalation_at",
    "stale",
    "last_data_at",
    "acknowledged_at",
    "recovered_at",
    "closed_at",
    "resolution",
    "close_reason",
)


def state_of(row: WarningRow) -> WarningState:
    return WarningState(
        rule_id=row.rule_id,
        entity_id=row.entity_id,
        episode=row.episode,
        status=Status(row.status),
        band=Band(row.band),
        worst_band=Band(row.worst_band),
        opened_period=row.opened_period,
        last_period=row.last_period,
        value=row.value,
        reason=row.reason,
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        pending_count=row.pending_count or 0,
        recovery_count=row.recovery_count or 0,
        escalation_level=row.escalation_level or 0,
        due_date=row.due_date,
        next_escalation_at=row.next_escalation_at,
        stale=bool(row.stale),
        last_data_at=row.last_data_at,
        acknowledged_at=row.acknowledged_at,
        recovered_at=row.recovered_at,
        closed_at=row.closed_at,
        resolution=Resolution(row.resolution) if row.resolution else None,
        close_reason=row.close_reason,
    )


def write_state(row: WarningRow, state: WarningState, held: WarningState | None = None) -> None:
    """Write ``state`` onto the row; with ``held`` (what the row holds now), only the fields that changed."""
    for name in STATE_FIELDS:
        value = getattr(state, name)
        if held is not None and getattr(held, name) == value:
            continue
        setattr(row, name, value.value if hasattr(value, "value") and not isinstance(value, (int, float)) else value)
    if held is None or held.value != state.value:
        row.value = num(state.value)


# --- the lifecycle of one batch --------------------------------------------------------------------

Pair = tuple[str, str]


class Lifecycle:
    """The batch's verdicts through the lifecycle, in order: each pair's state is kept as the batch
    advances it, and written onto its row at a transition (for ``on_transition``) and at the end."""

    def __init__(
        self,
        current: dict[Pair, WarningRow],
        rule_names: dict[str, str],
        responsible: Callable,
        policy_for: Callable[[str], LifecyclePolicy],
        on_transition: Callable | None,
    ):
        self.current = current
        self._names, self._responsible, self._policy_for, self._on_transition = (
            rule_names,
            responsible,
            policy_for,
            on_transition,
        )
        self._policies: dict[str, LifecyclePolicy] = {}
        self.new_rows: list[WarningRow] = []
        self.staged: list[
            tuple[WarningRow, WarningState, Transition, list]
        ] = []  # row, state, transition, outbox items
        self._states: dict[Pair, WarningState] = {}  # each pair's state as the batch advances it …
        self._held: dict[Pair, WarningState | None] = {}  # … and as its row holds it

    def observe(self, v: Verdict) -> None:
        pair = (v.rule_id, v.entity_id)
        row = self.current.get(pair)
        if row is None and not v.band.is_breach:
            return  # what the lifecycle does with it: no warning, and only a breach opens one
        policy = self._policies.get(v.rule_id)
        if policy is None:
            policy = self._policies[v.rule_id] = self._policy_for(v.rule_id)
        prev = self._states.get(pair)
        if prev is None and row is not None:
            prev = self._states[pair] = self._held[pair] = state_of(row)
        state, transitions = step(prev, Observe(v, policy))
        if state is None:
            return
        if row is None or state.episode != row.episode:
            if row is not None and prev is not None and self._held[pair] is not prev:
                write_state(row, prev, self._held[pair])  # the previous episode's last state
            role, person = self._responsible(v)
            row = WarningRow(
                rule_id=v.rule_id,
                rule_name=self._names.get(v.rule_id, v.rule_id),
                entity_id=v.entity_id,
                episode=state.episode,
                level=v.level.value,
                metric=v.metric,
                responsible_role=role,
                responsible_person_id=person,
            )
            self.new_rows.append(row)
            self.current[pair], self._held[pair] = row, None
        self._states[pair] = state
        if transitions:  # notifications read the row as it is at the transition
            write_state(row, state, self._held[pair])
            self._held[pair] = state
            for t in transitions:
                self.staged.append((row, state, t, list(self._on_transition(row, t)) if self._on_transition else []))

    def finish(self) -> list[WarningRow]:
        """Write every pair's final state onto its row; returns the stored rows it touched."""
        for pair, state in self._states.items():
            if self._held[pair] is not state:
                write_state(self.current[pair], state, self._held[pair])
        return [self.current[pair] for pair in self._states if self.current[pair].id is not None]


# --- the steps -------------------------------------------------------------------------------------


def apply(
    s: Session,
    verdicts: Sequence[Verdict],
    rule_names: dict[str, str],
    responsible: Callable,
    policy_for: Callable[[str], LifecyclePolicy],
    on_transition: Callable | None,
    lookup: bool,
) -> list[tuple[int, int, Transition, WarningState]]:
    """Store the batch's new verdicts and apply them; returns (warning id, event id, transition,
    state) of every transition, in order."""
    postgres = s.get_bind().dialect.name == "postgresql"
    unique: dict[str, Verdict] = {}
    for v in verdicts:
        unique.setdefault(v.key, v)  # the key is computed once per verdict
    pairs = {(v.rule_id, v.entity_id) for v in verdicts}
    if postgres:
        stored, current = _lock_and_load(s, pairs, next(iter(unique.items())))
        lookup = lookup or stored  # a batch whose first verdict is stored is a redelivery: look up first
    else:
        current = _latest_warnings(s, pairs)
    life = Lifecycle(current, rule_names, responsible, policy_for, on_transition)
    if postgres:
        _copy_verdicts(s, unique, lookup, life.observe)
    else:
        new = _insert_verdicts(s, unique)
        for key, v in unique.items():
            if key in new:
                life.observe(v)
    touched = life.finish()
    if postgres:
        ids = _write_pg(s, life.new_rows, touched, life.staged)
    else:
        _insert_warnings(s, life.new_rows)
        _update_warnings(s, touched)
        ids = _insert_events(s, life.staged) if life.staged else []
    return [(row.id, event_id, t, state) for event_id, (row, state, t, _) in zip(ids, life.staged, strict=True)]


# PostgreSQL, one round trip: the pairs' advisory locks (sorted), then — only then: the lateral
# subquery waits for the locks' row — the latest warnings of the pairs; and whether the batch's
# first verdict is stored already (a hint). OFFSET 0 keeps the locks' subquery from being inlined.
_LOCK_AND_LOAD = text("""
SELECT l.stored, w.*
FROM (SELECT (SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0)))
              FROM (SELECT k FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k) AS ordered) AS locked,
             EXISTS (SELECT 1 FROM verdicts WHERE key = :key AND period_start = :start) AS stored
      OFFSET 0) AS l
LEFT JOIN LATERAL (
    SELECT * FROM warnings
    WHERE l.locked IS NOT NULL
      AND (rule_id, entity_id) IN (SELECT * FROM unnest(CAST(:rules AS text[]), CAST(:entities AS text[])))
) AS w ON true""").columns(column("stored", Boolean), *WarningRow.__table__.columns)
_WARNING_COLUMNS = tuple(c.name for c in WarningRow.__table__.columns)


def _lock_and_load(s: Session, pairs: set[Pair], first: tuple[str, Verdict]) -> tuple[bool, dict[Pair, WarningRow]]:
    ordered = sorted(pairs)
    stored, out = False, dict[Pair, WarningRow]()
    for r in s.execute(
        _LOCK_AND_LOAD,
        {
            "keys": sorted(f"{rule}|{entity}" for rule, entity in ordered),
            "key": first[0],
            "start": period_start(first[1].period),
            "rules": [p[0] for p in ordered],
            "entities": [p[1] for p in ordered],
        },
    ).mappings():
        stored = r["stored"]
        if r["id"] is None:
            continue  # the row of a batch without warnings
        pair = (r["rule_id"], r["entity_id"])
        if pair not in out or r["episode"] > out[pair].episode:
            out[pair] = WarningRow(**{c: r[c] for c in _WARNING_COLUMNS})
    return stored, out


def _latest_warnings(s: Session, pairs: set[Pair]) -> dict[Pair, WarningRow]:
    """SQLite (which serialises writers itself): the latest warning of each pair."""
    out: dict[Pair, WarningRow] = {}
    table = WarningRow.__table__
    by_rule: dict[str, list[str]] = {}
    for rule_id, entity_id in pairs:
        by_rule.setdefault(rule_id, []).append(entity_id)
    for rule_id, entities in by_rule.items():
        for chunk in chunks(entities):
            for r in s.execute(
                select(table).where(table.c.rule_id == rule_id, table.c.entity_id.in_(chunk))
            ).mappings():
                key = (r["rule_id"], r["entity_id"])
                if key not in out or r["episode"] > out[key].episode:
                    out[key] = WarningRow(**r)
    return out


def _insert_verdicts(s: Session, verdicts: dict[str, Verdict]) -> set[str]:
    """SQLite: INSERT … ON CONFLICT DO NOTHING RETURNING key."""
    rows = [
        dict(
            key=key,
            rule_id=v.rule_id,
            rule_version=v.rule_version,
            level=v.level.value,
            entity_id=v.entity_id,
            metric=v.metric,
            period=v.period,
            value=num(v.value),
            band=v.band.value,
            reason=v.reason,
            thresholds=v.thresholds.model_dump(mode="json"),
            observed_at=v.observed_at,
            evaluated_at=v.evaluated_at,
            period_start=period_start(v.period),
        )
        for key, v in verdicts.items()
    ]
    new: set[str] = set()
    stmt = (
        sqlite.insert(VerdictRow)
        .on_conflict_do_nothing(index_elements=["key", "period_start"])
        .returning(VerdictRow.key)
    )
    for chunk in chunks(rows, 1000):
        new.update(s.scalars(stmt, list(chunk)))
    return new


# in the order the CSV is written (the columns a rule fixes together, see _verdict_lines)
VERDICT_COLUMNS = (
    "key",
    "rule_id",
    "rule_version",
    "level",
    "metric",
    "entity_id",
    "period",
    "value",
    "band",
    "reason",
    "thresholds",
    "observed_at",
    "evaluated_at",
    "period_start",
)
_COPY_VERDICTS = f"COPY verdicts ({', '.join(VERDICT_COLUMNS)}) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (reason))"


def _copy_verdicts(s: Session, verdicts: dict[str, Verdict], lookup: bool, each: Callable[[Verdict], None]) -> None:
    """PostgreSQL: COPY the new verdicts, calling ``each`` for every one as its line is rendered."""
    starts = {v.period: period_start(v.period) for v in verdicts.values()}
    if lookup:
        stored = set(
            s.execute(
                text("SELECT key, period_start FROM verdicts WHERE key = ANY(:keys) AND period_start = ANY(:starts)"),
                {"keys": list(verdicts), "starts": list(set(starts.values()))},
            ).all()
        )
        verdicts = {key: v for key, v in verdicts.items() if (key, starts[v.period]) not in stored}
        if not verdicts:
            return
    lines = _Lines(_verdict_lines(verdicts, starts, each))
    try:
        raw: Any = s.connection().connection  # psycopg2's connection: its cursor is a context manager
        with raw.cursor() as cur:
            cur.copy_expert(_COPY_VERDICTS, lines)
    except Exception as exc:  # psycopg2's own error: the COPY runs on the driver's cursor
        if lines.error is not None:  # the lifecycle or a callback failed: the COPY was abandoned for it
            raise lines.error from None
        if getattr(exc, "pgcode", None) == "23505" and not lookup:  # unique_violation
            raise Redelivered() from exc
        raise


def _csv(value: str) -> str:
    """One CSV field (PostgreSQL's CSV: quoted when it holds a comma, quote or line break)."""
    if '"' in value or "," in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


class _Lines(io.TextIOBase):
    """A file to COPY from that renders its lines as the driver reads them."""

    def __init__(self, lines: Iterator[str]):
        self._lines = lines
        self._rest = ""
        self.error: Exception | None = None  # what the lines raised (the driver reports it as its own error)

    def read(self, size: int | None = -1) -> str:
        size = size if size is not None and size >= 0 else 1 << 62
        parts, n = [self._rest], len(self._rest)
        try:
            for line in self._lines:
                parts.append(line)
                n += len(line)
                if n >= size:
                    break
        except Exception as exc:
            self.error = exc
            raise
        data = "".join(parts)
        self._rest = data[size:]
        return data[:size]

    def readable(self) -> bool:
        return True


def _verdict_lines(
    verdicts: dict[str, Verdict], starts: dict[str, datetime], each: Callable[[Verdict], None]
) -> Iterator[str]:
    """CSV lines in ``VERDICT_COLUMNS`` order. A batch shares a few rules, threshold sets, instants
    and periods: each is rendered once."""
    rules: dict[tuple[str, str, str], str] = {}
    thresholds: dict[int, str] = {}
    times: dict[datetime | None, str] = {None: ""}
    periods: dict[str, tuple[str, str]] = {}
    for key, v in verdicts.items():
        each(v)
        rule = rules.get((v.rule_id, v.rule_version, v.metric))  # a rule version fixes its level
        if rule is None:
            rule = rules[(v.rule_id, v.rule_version, v.metric)] = ",".join(
                _csv(x) for x in (v.rule_id, v.rule_version, v.level.value, v.metric)
            )
        th = thresholds.get(id(v.thresholds))
        if th is None:
            th = thresholds[id(v.thresholds)] = _csv(
                json.dumps(v.thresholds.model_dump(mode="json"), ensure_ascii=False)
            )
        observed, evaluated, period = v.observed_at, v.evaluated_at, v.period
        if observed not in times:
            times[observed] = observed.isoformat() if observed is not None else ""  # CSV: empty is NULL
        if evaluated not in times:
            times[evaluated] = evaluated.isoformat()
        p = periods.get(period)
        if p is None:
            p = periods[period] = (_csv(period), starts[period].isoformat())
        entity, reason, value = v.entity_id, v.reason, v.value
        text_ = key + entity + reason
        if '"' in text_ or "," in text_ or "\n" in text_ or "\r" in text_:
            key, entity, reason = _csv(key), _csv(entity), _csv(reason)
        shown = "" if value is None else repr(value) if type(value) is float else repr(float(value))
        yield (
            f"{key},{rule},{entity},{p[0]},{shown},{v.band.value},{reason},{th},"
            f"{times[observed]},{times[evaluated]},{p[1]}\n"
        )


_WARNING_STATE = (*STATE_FIELDS, "value")


def _insert_warnings(s: Session, new: list[WarningRow]) -> None:
    """New episodes in one INSERT … RETURNING id (ids in order)."""
    if new:
        table = cast(Table, WarningRow.__table__)
        values = [{c.name: getattr(row, c.name) for c in table.columns if c.name != "id"} for row in new]
        ids = s.scalars(insert(table).returning(table.c.id, sort_by_parameter_order=True), values).all()
        for row, warning_id in zip(new, ids, strict=True):
            row.id = warning_id


def _update_warnings(s: Session, touched: list[WarningRow]) -> None:
    if touched:
        table = cast(Table, WarningRow.__table__)
        s.execute(
            update(table).where(table.c.id == bindparam("warning_id")),
            [{"warning_id": row.id, **{name: getattr(row, name) for name in _WARNING_STATE}} for row in touched],
        )


def _event_tuple(row: WarningRow, t: Transition) -> tuple:
    return (
        row.id,
        t.kind.value,
        t.from_status.value if t.from_status else None,
        t.to_status.value,
        t.from_band.value if t.from_band else None,
        t.to_band.value,
        t.period,
        num(t.value),
        t.reason,
        t.cause[:320],
        t.actor,
        t.at,
    )


EVENT_COLUMNS = (
    "warning_id",
    "kind",
    "from_status",
    "to_status",
    "from_band",
    "to_band",
    "period",
    "value",
    "reason",
    "cause",
    "actor",
    "at",
)
OUTBOX_COLUMNS = ("event_id", "channel", "recipient_id", "subject", "body", "status", "attempts", "created_at")


def _insert_events(s: Session, staged: list) -> list[int]:
    """SQLite: the events in one INSERT … RETURNING id (ids in order), their outbox rows in one more."""
    rows = [dict(zip(EVENT_COLUMNS, _event_tuple(row, t), strict=True)) for row, _, t, _ in staged]
    ids = s.scalars(insert(WarningEventRow).returning(WarningEventRow.id, sort_by_parameter_order=True), rows).all()
    outbox = [
        dict(
            zip(
                OUTBOX_COLUMNS,
                (event_id, item.channel, item.recipient_id, item.subject, item.body, "pending", 0, t.at),
                strict=True,
            )
        )
        for event_id, (_, _, t, items) in zip(ids, staged, strict=True)
        for item in items
    ]
    if outbox:
        s.execute(insert(OutboxRow), outbox)
    return list(ids)


# PostgreSQL: the new and the changed warnings, the events and their outbox rows in one statement.
# New warnings and events are numbered in the batch's order; ids come back through their unique
# keys — (rule, entity, episode) and (warning, kind, cause, at). An event of a new warning names
# it by number (``w``).
_NEW_COLUMNS = tuple(c.name for c in WarningRow.__table__.columns if c.name != "id")
_WRITE_PG = f"""
WITH new_in AS (SELECT * FROM jsonb_populate_recordset(NULL::warnings, CAST(:new AS jsonb)) WITH ORDINALITY),
created AS (
    INSERT INTO warnings ({", ".join(_NEW_COLUMNS)}) SELECT {", ".join(_NEW_COLUMNS)} FROM new_in ORDER BY ordinality
    RETURNING id, rule_id, entity_id, episode),
created_ids AS (SELECT new_in.ordinality AS w, created.id FROM new_in JOIN created USING (rule_id, entity_id, episode)),
changed AS (
    UPDATE warnings w SET ({", ".join(_WARNING_STATE)}) = ({", ".join("t." + c for c in _WARNING_STATE)})
    FROM jsonb_populate_recordset(NULL::warnings, CAST(:touched AS jsonb)) t WHERE w.id = t.id RETURNING 1),
e AS (
    SELECT a.n, COALESCE(r.warning_id, c.id) AS warning_id, {", ".join("r." + c for c in EVENT_COLUMNS[1:])}
    FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS a(j, n)
    CROSS JOIN LATERAL jsonb_populate_record(NULL::warning_events, a.j) AS r
    LEFT JOIN created_ids c ON c.w = (a.j->>'w')::bigint),
inserted AS (
    INSERT INTO warning_events ({", ".join(EVENT_COLUMNS)}) SELECT {", ".join(EVENT_COLUMNS)} FROM e ORDER BY n
    RETURNING id, warning_id, kind, cause, at),
numbered AS (SELECT e.n, inserted.id FROM e JOIN inserted USING (warning_id, kind, cause, at)),
queued AS (
    INSERT INTO notification_outbox ({", ".join(OUTBOX_COLUMNS)})
    SELECT numbered.id, o.channel, o.recipient_id, o.subject, o.body, 'pending', 0, o.created_at
    FROM jsonb_to_recordset(CAST(:outbox AS jsonb))
         AS o(n bigint, channel text, recipient_id text, subject text, body text, created_at timestamptz)
    JOIN numbered USING (n) RETURNING 1)
SELECT 'event', n, id FROM numbered UNION ALL SELECT 'warning', w, id FROM created_ids"""


def _json(rows: list[dict]) -> str:
    return json.dumps(rows, ensure_ascii=False, default=datetime.isoformat)


def _write_pg(s: Session, new: list[WarningRow], touched: list[WarningRow], staged: list) -> list[int]:
    """One round trip for everything after the verdicts: sets the new warnings' ids, returns the
    event ids in order."""
    if not new and not touched and not staged:
        return []
    number = {id(row): w for w, row in enumerate(new, 1)}
    created = [{c: getattr(row, c) for c in _NEW_COLUMNS} for row in new]
    changed = [{"id": row.id, **{name: getattr(row, name) for name in _WARNING_STATE}} for row in touched]
    events = [
        {**dict(zip(EVENT_COLUMNS, _event_tuple(row, t), strict=True)), "w": number.get(id(row))}
        for row, _, t, _ in staged
    ]
    outbox = [
        dict(
            n=n,
            channel=item.channel,
            recipient_id=item.recipient_id,
            subject=item.subject,
            body=item.body,
            created_at=t.at,
        )
        for n, (_, _, t, items) in enumerate(staged, 1)
        for item in items
    ]
    ids: dict[str, dict[int, int]] = {"event": {}, "warning": {}}
    for what, n, id_ in s.execute(
        text(_WRITE_PG),
        {"new": _json(created), "touched": _json(changed), "events": _json(events), "outbox": _json(outbox)},
    ):
        ids[what][n] = id_
    for w, row in enumerate(new, 1):
        row.id = ids["warning"][w]
    return [ids["event"][n] for n in range(1, len(staged) + 1)]
