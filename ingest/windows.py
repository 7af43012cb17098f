"""Weekly attendance windows, with their state in the database.

Check-in tallies (``AttendanceEvent``) are windowed by ISO week: per course-week, per student-week
(with the student's unexcused absence hours for the term to date), and rolled up per class-,
major- and department-week. A window is emitted as observations once its week has closed (the
end of Sunday, China time, plus a grace period) and no event touched it for a short settle time;
a late event marks it again and it is emitted again (same observation key, corrected value).
Emitting closed weeks only keeps partial weeks from opening warnings that the rest of the week
would resolve — the rules judge attendance per week.

Why the state is in the database and not in Faust tables:

* A window needs every student's tally wherever it was consumed: ``zg.events`` is keyed by
  student, so a course's students are spread over every partition. Faust tables are partitioned
  like their source; a course-, class-, major- and department-week table would each need a
  repartition topic, a changelog and table recovery — the path faust issue 596 is about.
* Restarts, rebalances and redelivery need no recovery at all: tallies are upserted (latest
  ``occurred_at`` wins per event key, so a replay changes nothing) in the same transaction that
  marks their windows dirty, and the events are acknowledged only after it commits.
* Emission is claimed per window with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two
  workers never emit one window at once, and the dirty flag is cleared only if no event arrived
  since the claim — the last emission always reads the last committed state.

The formulas are ``zhengai.ingest.aggregate``'s; this module only chooses the events of a window.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable, Iterator, Sequence

from sqlalchemy import (
    Boolean, Column, Index, Integer, MetaData, String, Table, bindparam, case, create_engine, or_, select, update,
)
from sqlalchemy.engine import Engine

from zhengai.ingest.aggregate import ROLLUP_METRICS, attendance_metrics, attendance_rollups
from zhengai.ingest.directory import Directory
from zhengai.ingest.sqltypes import UTCDateTime
from zhengai.ingest.records import AttendanceEvent, EntityKind, Observation

__all__ = ["CST", "WindowRef", "AttendanceWindows", "term_of_week", "week_end", "KINDS"]

CST = timezone(timedelta(hours=8))  # the academic calendar's clock (China has no DST)
KINDS = ("course", "student", "class", "major", "department")
_ROLLUP_KINDS = {"class": EntityKind.class_, "major": EntityKind.major, "department": EntityKind.department}
_CHUNK = 500


metadata = MetaData()

tallies = Table(
    "attendance_tallies", metadata,
    Column("key", String(256), primary_key=True),  # the event's idempotency key
    Column("student_id", String(64), nullable=False),
    Column("course_id", String(64), nullable=False),
    Column("week", String(8), nullable=False),
    Column("term", String(16), nullable=False),
    Column("scheduled", Integer, nullable=False),
    Column("attended", Integer, nullable=False),
    Column("excused", Integer, nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("source", String(128), nullable=False),
    Index("ix_attendance_tallies_course_week", "course_id", "week"),
    Index("ix_attendance_tallies_student_term", "student_id", "term"),
    Index("ix_attendance_tallies_week_student", "week", "student_id"),
)

windows = Table(
    "attendance_windows", metadata,
    Column("kind", String(16), primary_key=True),
    Column("unit_id", String(64), primary_key=True),
    Column("week", String(8), primary_key=True),
    Column("term", String(16), nullable=False),
    Column("week_end", UTCDateTime(), nullable=False),
    Column("dirty", Boolean, nullable=False),
    Column("version", Integer, nullable=False),  # bumped by every event that touches the window
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("claimed_until", UTCDateTime()),  # the lease of the worker emitting it
    Column("emitted_at", UTCDateTime()),
    Index("ix_attendance_windows_due", "dirty", "week_end"),
)


def _monday(week: str) -> date:
    year, number = int(week[:4]), int(week[6:8])
    return date.fromisocalendar(year, number, 1)


def week_end(week: str) -> datetime:
    """When an ISO week ends: the following Monday 00:00 China time, in UTC."""
    return datetime.combine(_monday(week) + timedelta(days=7), time(0), CST).astimezone(timezone.utc)


def term_of_week(week: str) -> str:
    """The term (学期) a teaching week belongs to: weeks from August to January are the first
    term of the academic year that starts that autumn, February to July the second."""
    monday = _monday(week)
    y, m = monday.year, monday.month
    if m >= 8:
        return f"{y}-{y + 1}-1"
    if m == 1:
        return f"{y - 1}-{y}-1"
    return f"{y - 1}-{y}-2"


@dataclass(frozen=True, order=True)
class WindowRef:
    kind: str
    unit_id: str
    week: str
    term: str
    version: int


def _chunks(items: Sequence, n: int = _CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _students_under(directory: Directory, unit_id: str) -> list[str]:
    out, todo, seen = [], [unit_id], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for child in directory.children(current):
            if child.kind is EntityKind.student:
                out.append(child.id)
            else:
                todo.append(child.id)
    return out


class AttendanceWindows:
    """The tallies and windows tables, and the three steps of a window: record, claim, emit."""

    def __init__(self, url_or_engine: str | Engine):
        self.engine = create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover — the store runs on PostgreSQL or SQLite
            raise NotImplementedError(f"attendance windows need PostgreSQL or SQLite, not {dialect}")
        self._insert = insert

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    # --- 1. record: tallies in, windows marked, one transaction -----------------------------------
    def record(self, events: Iterable[AttendanceEvent], directory: Directory, now: datetime) -> int:
        """Store the tallies (latest per key wins) and mark every window they fall in. Returns the
        number of windows marked."""
        latest: dict[str, AttendanceEvent] = {}
        for e in events:
            prior = latest.get(e.key)
            if prior is None or e.occurred_at >= prior.occurred_at:
                latest[e.key] = e
        if not latest:
            return 0
        rows, marks = [], {}
        for key in sorted(latest):  # one lock order for every writer: no deadlocks between workers
            e = latest[key]
            term = term_of_week(e.week)
            rows.append(dict(key=e.key, student_id=e.student_id, course_id=e.course_id, week=e.week, term=term,
                             scheduled=e.scheduled, attended=e.attended, excused=e.excused,
                             occurred_at=e.occurred_at, source=e.source))
            units = [("course", e.course_id), ("student", e.student_id)]
            for kind, entity_kind in _ROLLUP_KINDS.items():
                unit = directory.ancestor(e.student_id, entity_kind)
                if unit is not None:
                    units.append((kind, unit.id))
            for kind, unit_id in units:
                marks[(kind, unit_id, e.week)] = term
        window_rows = [
            dict(kind=k, unit_id=u, week=w, term=t, week_end=week_end(w), dirty=True, version=1, updated_at=now)
            for (k, u, w), t in sorted(marks.items())
        ]
        ins = self._insert(tallies)
        upsert_tally = ins.on_conflict_do_update(
            index_elements=[tallies.c.key],
            set_={c: ins.excluded[c] for c in ("student_id", "course_id", "week", "term", "scheduled", "attended",
                                               "excused", "occurred_at", "source")},
            where=tallies.c.occurred_at <= ins.excluded.occurred_at,
        )
        win = self._insert(windows)
        mark = win.on_conflict_do_update(
            index_elements=[windows.c.kind, windows.c.unit_id, windows.c.week],
            set_={"dirty": True, "version": windows.c.version + 1, "updated_at": win.excluded.updated_at},
        )
        with self.engine.begin() as conn:
            for chunk in _chunks(rows):
                conn.execute(upsert_tally, list(chunk))
            for chunk in _chunks(window_rows):
                conn.execute(mark, list(chunk))
        return len(window_rows)

    # --- 2. claim: closed, settled, unclaimed windows get a lease -------------------------------
    def claim(self, now: datetime, *, grace: timedelta, settle: timedelta, lease: timedelta = timedelta(seconds=60),
              limit: int = 500) -> list[WindowRef]:
        q = (
            select(windows.c.kind, windows.c.unit_id, windows.c.week, windows.c.term, windows.c.version)
            .where(
                windows.c.dirty.is_(True),
                windows.c.week_end <= now - grace,
                windows.c.updated_at <= now - settle,
                or_(windows.c.claimed_until.is_(None), windows.c.claimed_until < now),
            )
            .order_by(windows.c.week_end, windows.c.kind, windows.c.unit_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        take = (
            update(windows)
            .where(windows.c.kind == bindparam("b_kind"), windows.c.unit_id == bindparam("b_unit"), windows.c.week == bindparam("b_week"))
            .values(claimed_until=now + lease)
        )
        with self.engine.begin() as conn:
            refs = [WindowRef(*row) for row in conn.execute(q)]
            if refs:
                conn.execute(take, [dict(b_kind=r.kind, b_unit=r.unit_id, b_week=r.week) for r in refs])
        return refs

    # --- 3. emit: the observations of claimed windows, then release them ---------------------------
    def observations(self, refs: Sequence[WindowRef], directory: Directory) -> list[Observation]:
        """The observations the windows stand for now, from the committed tallies."""
        wanted: set[tuple[str, str, str]] = set()  # (metric, entity, period)
        by_kind: dict[str, list[WindowRef]] = defaultdict(list)
        for r in refs:
            by_kind[r.kind].append(r)
        out: list[Observation] = []
        with self.engine.connect() as conn:
            # course-week: every student's tally of the course in that week
            courses_by_week: dict[str, set[str]] = defaultdict(set)
            for r in by_kind.get("course", ()):
                courses_by_week[r.week].add(r.unit_id)
                wanted.add(("course.attendance_rate", r.unit_id, r.week))
            for week, courses in courses_by_week.items():
                events = self._events(conn, tallies.c.week == week, tallies.c.course_id, sorted(courses))
                out += attendance_metrics(events, term_of_week(week))
            # student-week and the student's term to date
            students_by_term: dict[str, set[str]] = defaultdict(set)
            for r in by_kind.get("student", ()):
                students_by_term[r.term].add(r.unit_id)
                wanted.add(("student.attendance_rate", r.unit_id, r.week))
                wanted.add(("student.absence_hours", r.unit_id, r.term))
            for term, students in students_by_term.items():
                events = self._events(conn, tallies.c.term == term, tallies.c.student_id, sorted(students))
                out += attendance_metrics(events, term)
            # roll-ups: every student under the unit, in that week
            units_by_week: dict[str, set[str]] = defaultdict(set)
            for kind in _ROLLUP_KINDS:
                for r in by_kind.get(kind, ()):
                    units_by_week[r.week].add(r.unit_id)
                    wanted.add((ROLLUP_METRICS[_ROLLUP_KINDS[kind]], r.unit_id, r.week))
            for week, units in units_by_week.items():
                students = sorted({s for u in units for s in _students_under(directory, u)})
                events = self._events(conn, tallies.c.week == week, tallies.c.student_id, students)
                out += attendance_rollups(events, directory)
        chosen: dict[str, Observation] = {}
        for o in out:
            if (o.metric, o.entity_id, o.period) in wanted:
                chosen[o.key] = o
        return [chosen[k] for k in sorted(chosen)]

    def _events(self, conn, condition, column, ids: Sequence[str]) -> list[AttendanceEvent]:
        events: list[AttendanceEvent] = []
        for chunk in _chunks(list(ids)):
            for row in conn.execute(select(tallies).where(condition, column.in_(chunk))):
                # Validated when consumed; rebuilding them needs no second validation.
                events.append(AttendanceEvent.model_construct(
                    occurred_at=row.occurred_at, source=row.source, key=row.key, student_id=row.student_id,
                    course_id=row.course_id, week=row.week, scheduled=row.scheduled, attended=row.attended,
                    excused=row.excused,
                ))
        return events

    def release(self, refs: Sequence[WindowRef], now: datetime) -> None:
        """The windows were emitted: clear their dirty flag unless an event arrived since the
        claim (then they stay dirty and are emitted again), and drop the lease."""
        if not refs:
            return
        stmt = (
            update(windows)
            .where(windows.c.kind == bindparam("b_kind"), windows.c.unit_id == bindparam("b_unit"), windows.c.week == bindparam("b_week"))
            .values(dirty=case((windows.c.version == bindparam("b_version"), False), else_=True),
                    claimed_until=None, emitted_at=now)
        )
        with self.engine.begin() as conn:
            conn.execute(stmt, [dict(b_kind=r.kind, b_unit=r.unit_id, b_week=r.week, b_version=r.version) for r in refs])

    def pending(self) -> int:
        """Dirty windows (emitted or not yet due) — for tests and the benchmark."""
        with self.engine.connect() as conn:
            return len(conn.execute(select(windows.c.kind).where(windows.c.dirty.is_(True))).all())
