"""Units of derived metrics, with their state in the database: mark, claim, emit, release.

A *unit* is what one derived observation set is computed over: a course-week of attendance, a
student's term of grades, a school's finance year, the teachers' evaluation scores of a term, the
directory as a whole. Stream processors (``zhengai.ingest.processors``) store the facts they
consume and mark the units those facts fall in as dirty; a flush later claims due units, computes
their observations from *all* stored facts of the unit with the ``zhengai.ingest.aggregate``
formulas, hands them on, and releases the units.

Why the state is in the database and not in Faust tables:

* A unit needs every fact wherever it was consumed: ``zg.events`` is keyed by student, so a
  course's students are spread over every partition. Faust tables are partitioned like their
  source; each unit kind would need a repartition topic, a changelog and table recovery — the
  path faust issue 596 is about.
* Restarts, rebalances and redelivery need no recovery at all: facts are upserted (latest wins
  per fact key, so a replay changes nothing) in the same transaction that marks their units
  dirty, and the events are acknowledged only after it commits.
* Emission is claimed per unit with a short lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so
  two workers never emit one unit at once and a killed worker's units are claimed again within
  seconds; the dirty flag is cleared only if nothing touched the unit since the claim — the last
  emission always reads the last committed state.
* Every writer touches unit rows in one order — sorted by (kind, unit, period) — so marking and
  releasing never deadlock each other.

A unit is *due* at ``due_at`` (a week's end plus grace for weekly units; at once for the others)
and *ready* once nothing touched it for its kind's settle time (``ready_at``), so a partial week
or a directory that is still arriving is not judged early.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from zhengai.ingest.sqltypes import UTCDateTime

__all__ = [
    "CST",
    "metadata",
    "units",
    "UnitRef",
    "Mark",
    "UnitStore",
    "insert_for",
    "chunks",
    "term_of_week",
    "week_end",
    "term_of",
    "academic_year_of",
]

CST = timezone(timedelta(hours=8))  # the academic calendar's clock (China has no DST)
CHUNK = 500

metadata = MetaData()

units = Table(
    "stream_units",
    metadata,
    Column("kind", String(24), primary_key=True),
    Column("unit_id", String(64), primary_key=True),  # an entity id, or "*" for a unit over all of them
    Column("period", String(16), primary_key=True),
    Column("due_at", UTCDateTime(), nullable=False),  # not emitted before (a week's end + grace)
    Column("ready_at", UTCDateTime(), nullable=False),  # not emitted before (last touch + settle)
    Column("dirty", Boolean, nullable=False),
    Column("version", Integer, nullable=False),  # bumped by every fact that touches the unit
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("claimed_until", UTCDateTime()),  # the lease of the worker emitting it
    Column("emitted_at", UTCDateTime()),
    Index("ix_stream_units_due", "dirty", "due_at"),
)


# --- the academic calendar ----------------------------------------------------------------------


def _monday(week: str) -> date:
    year, number = int(week[:4]), int(week[6:8])
    return date.fromisocalendar(year, number, 1)


@lru_cache(maxsize=4096)
def week_end(week: str) -> datetime:
    """When an ISO week ends: the following Monday 00:00 China time, in UTC."""
    return datetime.combine(_monday(week) + timedelta(days=7), time(0), CST).astimezone(UTC)


def _term_of_day(day: date) -> str:
    """Weeks from August to January belong to the first term of the academic year that starts
    that autumn, February to July to the second."""
    y, m = day.year, day.month
    if m >= 8:
        return f"{y}-{y + 1}-1"
    if m == 1:
        return f"{y - 1}-{y}-1"
    return f"{y - 1}-{y}-2"


@lru_cache(maxsize=4096)
def term_of_week(week: str) -> str:
    """The term (学期) a teaching week belongs to (by its Monday)."""
    return _term_of_day(_monday(week))


def term_of(at: datetime) -> str:
    """The term a moment falls in, on the China calendar."""
    return _term_of_day(at.astimezone(CST).date())


def academic_year_of(at: datetime) -> str:
    """The calendar year the directory-derived yearly indicators are reported for."""
    return str(at.astimezone(CST).year)


# --- units ---------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class UnitRef:
    kind: str
    unit_id: str
    period: str
    version: int


@dataclass(frozen=True)
class Mark:
    """A unit a fact fell in: due no earlier than ``due_at``, settled ``settle`` after the touch."""

    due_at: datetime
    settle: timedelta = timedelta(0)


def chunks(items: Sequence, n: int = CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def insert_for(engine: Engine):
    """The dialect's INSERT with ON CONFLICT (PostgreSQL or SQLite)."""
    dialect = engine.dialect.name
    from sqlalchemy.dialects import postgresql, sqlite

    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    else:  # pragma: no cover — the store runs on PostgreSQL or SQLite
        raise NotImplementedError(f"stream state needs PostgreSQL or SQLite, not {dialect}")
    return insert


class UnitStore:
    """The ``stream_units`` table and the three steps of a unit: mark, claim, release."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._insert = insert_for(engine)

    def mark(self, conn: Connection, marks: Mapping[tuple[str, str, str], Mark], now: datetime) -> int:
        """Mark units dirty inside the caller's transaction (the one that stored their facts)."""
        if not marks:
            return 0
        rows = [
            dict(
                kind=k,
                unit_id=u,
                period=p,
                due_at=m.due_at,
                ready_at=now + m.settle,
                dirty=True,
                version=1,
                updated_at=now,
            )
            for (k, u, p), m in sorted(marks.items())  # one lock order for every writer
        ]
        ins = self._insert(units)
        stmt = ins.on_conflict_do_update(
            index_elements=[units.c.kind, units.c.unit_id, units.c.period],
            set_={
                "dirty": True,
                "version": units.c.version + 1,
                "updated_at": ins.excluded.updated_at,
                "ready_at": func.max(units.c.ready_at, ins.excluded.ready_at)
                if self.engine.dialect.name == "sqlite"
                else func.greatest(units.c.ready_at, ins.excluded.ready_at),
            },
        )
        for chunk in chunks(rows):
            conn.execute(stmt, list(chunk))
        return len(rows)

    def claim(self, now: datetime, *, lease: timedelta = timedelta(seconds=15), limit: int = 500) -> list[UnitRef]:
        """Due, settled, unleased dirty units, leased to the caller."""
        q = (
            select(units.c.kind, units.c.unit_id, units.c.period, units.c.version)
            .where(
                units.c.dirty.is_(True),
                units.c.due_at <= now,
                units.c.ready_at <= now,
                or_(units.c.claimed_until.is_(None), units.c.claimed_until < now),
            )
            .order_by(units.c.due_at, units.c.kind, units.c.unit_id, units.c.period)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        take = (
            update(units)
            .where(
                units.c.kind == bindparam("b_kind"),
                units.c.unit_id == bindparam("b_unit"),
                units.c.period == bindparam("b_period"),
            )
            .values(claimed_until=now + lease)
        )
        with self.engine.begin() as conn:
            refs = [UnitRef(*row) for row in conn.execute(q)]
            if refs:
                conn.execute(take, [dict(b_kind=r.kind, b_unit=r.unit_id, b_period=r.period) for r in sorted(refs)])
        return refs

    def release(self, refs: Sequence[UnitRef], now: datetime) -> None:
        """The units were emitted: clear their dirty flag unless a fact arrived since the claim
        (then they stay dirty and are emitted again), and drop the lease."""
        if not refs:
            return
        stmt = (
            update(units)
            .where(
                units.c.kind == bindparam("b_kind"),
                units.c.unit_id == bindparam("b_unit"),
                units.c.period == bindparam("b_period"),
            )
            .values(
                dirty=case((units.c.version == bindparam("b_version"), False), else_=True),
                claimed_until=None,
                emitted_at=now,
            )
        )
        with self.engine.begin() as conn:
            conn.execute(
                stmt,
                [dict(b_kind=r.kind, b_unit=r.unit_id, b_period=r.period, b_version=r.version) for r in sorted(refs)],
            )

    def pending(self, kinds: Sequence[str] | None = None) -> int:
        """Dirty units (claimed or not yet due) — for tests, the benchmark and the worker's gauge."""
        q = select(func.count()).select_from(units).where(units.c.dirty.is_(True))
        if kinds:
            q = q.where(units.c.kind.in_(list(kinds)))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())
