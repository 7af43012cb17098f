"""The stream processors: raw facts → stored facts and dirty units → derived observations.

One processor per kind of fact, each a small declaration over the shared unit machinery
(``zhengai.ingest.units``) and the formulas of ``zhengai.ingest.aggregate``:

==============  ==========================================  =====================================
processor       facts (table, latest wins per key)           units it marks → metrics it emits
==============  ==========================================  =====================================
attendance      ``AttendanceEvent`` → attendance_tallies     course-week, student-week (+ term
                                                             absence hours), roll-up week →
                                                             class/major/department rates
grades          ``GradeEvent`` → grade_facts                 course-term pass/excellent rates,
                                                             student-term failed courses and GPA
finance         ``FinanceEvent`` → finance_facts             school-year finance ratios
evaluation      course evaluation scores → score_facts       teacher-term evaluation score
directory       (the directory itself)                       staffing ratios, enrolment, hours
==============  ==========================================  =====================================

Both runtimes run these same processors: the Faust worker over Kafka and PostgreSQL, the embedded
runner over in-process delivery and SQLite (``zhengai.ingest.aggregator.Aggregator`` is the one
entry point). Units that read the directory (roll-ups, teacher scores, finance per student,
directory metrics) are marked again whenever the directory changes, so facts that arrive before
their directory entries converge to the same metrics once it arrives.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel
from sqlalchemy import Column, Float, Index, Integer, String, Table, select
from sqlalchemy.engine import Connection

from zhengai.ingest.aggregate import (
    attendance_rollups,
    course_attendance,
    directory_metrics,
    finance_metrics,
    grade_metrics,
    student_attendance,
    teacher_evaluation_metrics,
)
from zhengai.ingest.directory import Directory
from zhengai.ingest.records import AttendanceEvent, FinanceEvent, GradeEvent, Level, Observation
from zhengai.ingest.sqltypes import UTCDateTime
from zhengai.ingest.units import Mark, UnitRef, academic_year_of, chunks, metadata, term_of, term_of_week, week_end

__all__ = [
    "EVALUATION_METRIC",
    "Timing",
    "Processor",
    "AttendanceProcessor",
    "GradeProcessor",
    "FinanceProcessor",
    "EvaluationProcessor",
    "DirectoryProcessor",
    "PROCESSORS",
    "tallies",
]

EVALUATION_METRIC = "course.student_evaluation_score"
ALL = "*"  # a unit over every entity of its kind (recomputed whole: it reads the directory)

Marks = dict[tuple[str, str, str], Mark]


class Timing:
    """When units fall due: weekly units ``grace`` after the week ends; every unit ``settle``
    after the last fact touched it; directory-derived units ``directory_settle`` after the last
    directory change (a sync delivers the directory over several batches)."""

    def __init__(
        self,
        *,
        grace: timedelta = timedelta(hours=6),
        settle: timedelta = timedelta(seconds=2),
        directory_settle: timedelta = timedelta(seconds=10),
    ):
        self.grace, self.settle, self.directory_settle = grace, settle, directory_settle
        self._weeks: dict[str, Mark] = {}

    def week(self, week: str) -> Mark:
        mark = self._weeks.get(week)
        if mark is None:
            mark = self._weeks[week] = Mark(week_end(week) + self.grace, self.settle)
        return mark

    def now(self, now: datetime) -> Mark:
        return Mark(now, self.settle)

    def directory(self, now: datetime) -> Mark:
        return Mark(now, self.directory_settle)


class Processor:
    """One kind of fact. ``record`` runs inside the transaction that stores a batch (so facts and
    their dirty units commit together); ``observations`` reads the committed facts of claimed
    units; ``directory_changed`` marks the units whose result depends on the directory."""

    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]  # the unit kinds this processor emits
    table: ClassVar[Table | None] = None

    def __init__(self, timing: Timing, upsert):
        self.timing = timing
        self._upsert = upsert  # dialect INSERT … ON CONFLICT

    def accepts(self, record: BaseModel) -> bool:
        raise NotImplementedError

    def record(self, conn: Connection, records: Sequence[Any], now: datetime) -> Marks:  # each: its accepted type
        raise NotImplementedError

    def observations(
        self, conn: Connection, refs: Sequence[UnitRef], directory: Directory, as_of: datetime
    ) -> list[Observation]:
        raise NotImplementedError

    def directory_changed(self, conn: Connection, now: datetime) -> Marks:
        return {}

    # --- shared helpers ------------------------------------------------------------------------
    def _store_latest(self, conn: Connection, rows: list[dict], key_columns: Sequence[str], at_column: str) -> None:
        """Upsert fact rows (one per key: callers keep the latest); an older fact for the same key
        never replaces a newer one. PostgreSQL: COPY into a temporary table, then one
        ``INSERT … SELECT … ON CONFLICT`` — the hot path of ``zg.events`` at COPY speed."""
        if not rows:
            return
        table = self.table
        assert table is not None  # a processor that stores facts names its table
        rows = sorted(rows, key=lambda r: tuple(r[k] for k in key_columns))  # one lock order for every writer
        if conn.dialect.name == "postgresql":
            self._copy_latest(conn, rows, key_columns, at_column)
            return
        ins = self._upsert(table)
        stmt = ins.on_conflict_do_update(
            index_elements=[table.c[k] for k in key_columns],
            set_={c.name: ins.excluded[c.name] for c in table.columns if c.name not in key_columns},
            where=table.c[at_column] <= ins.excluded[at_column],
        )
        for chunk in chunks(rows):
            conn.execute(stmt, list(chunk))

    def _copy_latest(self, conn: Connection, rows: list[dict], key_columns: Sequence[str], at_column: str) -> None:
        table = self.table
        assert table is not None
        names = [c.name for c in table.columns]
        staged = f"{table.name}_in"
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {staged} (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        buf = io.StringIO()
        writer = csv.writer(buf)
        for r in rows:
            writer.writerow([v.isoformat() if isinstance(v, datetime) else v for v in (r[n] for n in names)])
        buf.seek(0)
        cols = ", ".join(names)
        raw: Any = conn.connection  # psycopg2's connection: its cursor is a context manager
        with raw.cursor() as cur:
            cur.copy_expert(f"COPY {staged} ({cols}) FROM STDIN WITH (FORMAT csv)", buf)
        updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n not in key_columns)
        conn.exec_driver_sql(
            f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {staged} ORDER BY {', '.join(key_columns)} "
            f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {updates} "
            f"WHERE {table.name}.{at_column} <= EXCLUDED.{at_column}"
        )
        conn.exec_driver_sql(f"TRUNCATE {staged}")

    def _distinct(self, conn: Connection, *columns) -> list[tuple]:
        return [tuple(r) for r in conn.execute(select(*columns).distinct())]


def _latest(records: Iterable, key: Callable, at: str) -> list:
    out: dict = {}
    for r in records:
        k = key(r)
        prior = out.get(k)
        if prior is None or getattr(r, at) >= getattr(prior, at):
            out[k] = r
    return list(out.values())


# --- attendance ----------------------------------------------------------------------------------

tallies = Table(
    "attendance_tallies",
    metadata,
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


class AttendanceProcessor(Processor):
    """Check-in tallies, windowed by ISO week. A week is emitted once it has closed (the end of
    Sunday, China time, plus grace) and settled; a late tally marks it again and it is emitted
    again (same observation key, corrected value). Emitting closed weeks only keeps partial weeks
    from opening warnings that the rest of the week would resolve — the rules judge attendance
    per week."""

    name = "attendance"
    kinds = ("course", "student", "rollup")
    table = tallies

    def accepts(self, record: BaseModel) -> bool:
        return isinstance(record, AttendanceEvent)

    def record(self, conn: Connection, records: Sequence[AttendanceEvent], now: datetime) -> Marks:
        marks: Marks = {}
        rows = []
        for e in _latest(records, lambda e: e.key, "occurred_at"):
            term = term_of_week(e.week)
            rows.append(
                dict(
                    key=e.key,
                    student_id=e.student_id,
                    course_id=e.course_id,
                    week=e.week,
                    term=term,
                    scheduled=e.scheduled,
                    attended=e.attended,
                    excused=e.excused,
                    occurred_at=e.occurred_at,
                    source=e.source,
                )
            )
            mark = self.timing.week(e.week)
            marks[("course", e.course_id, e.week)] = mark
            marks[("student", e.student_id, e.week)] = mark
            marks[("rollup", ALL, e.week)] = mark  # every class, major and department of the week
        self._store_latest(conn, rows, ["key"], "occurred_at")
        return marks

    def directory_changed(self, conn: Connection, now: datetime) -> Marks:
        return {("rollup", ALL, week): self.timing.week(week) for (week,) in self._distinct(conn, tallies.c.week)}

    def observations(self, conn, refs, directory, as_of):
        by_kind: dict[str, list[UnitRef]] = defaultdict(list)
        for r in refs:
            by_kind[r.kind].append(r)
        chosen: dict[str, Observation] = {}

        def keep(made: Iterable[Observation], wanted: set[tuple[str, str, str]]) -> None:
            # Each pass keeps only the metrics of its own units: a pass over *some* students of a
            # course also yields that course's rate from those students only — never the course's value.
            for o in made:
                if (o.metric, o.entity_id, o.period) in wanted:
                    chosen[o.key] = o

        read = _TallyReader(self, conn, rollup_weeks={r.period for r in by_kind.get("rollup", ())})
        # course-week: every student's tally of the course in that week
        courses_by_week: dict[str, set[str]] = defaultdict(set)
        for r in by_kind.get("course", ()):
            courses_by_week[r.period].add(r.unit_id)
        wanted = {("course.attendance_rate", r.unit_id, r.period) for r in by_kind.get("course", ())}
        for week, courses in sorted(courses_by_week.items()):
            keep(course_attendance(read.week(week, "course_id", courses)), wanted)
        # student-week, and the student's absence hours for the term to date
        students_by_term: dict[str, set[str]] = defaultdict(set)
        wanted = set()
        for r in by_kind.get("student", ()):
            term = term_of_week(r.period)
            students_by_term[term].add(r.unit_id)
            wanted.add(("student.attendance_rate", r.unit_id, r.period))
            wanted.add(("student.absence_hours", r.unit_id, term))
        for term, students in sorted(students_by_term.items()):
            keep(student_attendance(read.term(term, students), term), wanted)
        # roll-ups: every class, major and department of the week, over all of the week's tallies
        for week in sorted(read.rollup_weeks):
            for o in attendance_rollups(read.week(week), directory):
                chosen[o.key] = o
        return [chosen[k] for k in sorted(chosen)]

    def _events(self, conn, condition, column=None, ids: Sequence[str] | None = None) -> list:
        """Tally rows. The formulas read events by attribute, and a row has the same attributes:
        rows go in as they are, no event is rebuilt (validated when consumed)."""
        if column is None:
            return list(conn.execute(select(tallies).where(condition)))
        events: list = []
        for chunk in chunks(list(ids or ())):
            events += conn.execute(select(tallies).where(condition, column.in_(chunk))).all()
        return events


class _TallyReader:
    """Reads the tallies one emission needs, each row once where it can: a week whose roll-up is
    claimed is read whole and serves its course units too, and a term whose weeks were all read
    serves its students. (The embedded runner's final flush claims everything at once.)"""

    # This many units of one week or term: read it whole rather than by id. The worker claims a few
    # hundred units at a time (by id); the embedded runner's final flush claims them all (whole).
    WHOLE = 2000

    def __init__(self, processor: AttendanceProcessor, conn: Connection, rollup_weeks: set[str]):
        self.processor, self.conn, self.rollup_weeks = processor, conn, rollup_weeks
        self._weeks: dict[str, list] = {}

    def week(self, week: str, column: str | None = None, ids: set[str] | None = None) -> list:
        if week not in self._weeks and (ids is None or week in self.rollup_weeks or len(ids) >= self.WHOLE):
            self._weeks[week] = self.processor._events(self.conn, tallies.c.week == week)
        if week in self._weeks:
            rows = self._weeks[week]
            return rows if ids is None else [r for r in rows if getattr(r, str(column)) in ids]
        assert column is not None and ids is not None  # a partial read names its column and ids
        return self.processor._events(self.conn, tallies.c.week == week, tallies.c[column], sorted(ids))

    def term(self, term: str, students: set[str]) -> list:
        weeks = [w for (w,) in self.conn.execute(select(tallies.c.week).where(tallies.c.term == term).distinct())]
        if all(w in self._weeks for w in weeks):
            return [r for w in weeks for r in self._weeks[w] if r.student_id in students]
        if len(students) >= self.WHOLE:
            return [r for r in self.processor._events(self.conn, tallies.c.term == term) if r.student_id in students]
        return self.processor._events(self.conn, tallies.c.term == term, tallies.c.student_id, sorted(students))


# --- grades --------------------------------------------------------------------------------------

grade_facts = Table(
    "grade_facts",
    metadata,
    Column("student_id", String(64), primary_key=True),
    Column("course_id", String(64), primary_key=True),
    Column("term", String(16), primary_key=True),
    Column("score", Float, nullable=False),
    Column("credits", Float, nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("source", String(128), nullable=False),
    Column("key", String(256), nullable=False),
    Index("ix_grade_facts_course_term", "course_id", "term"),
)


class GradeProcessor(Processor):
    """Final grades: the latest grade per (student, course, term) counts."""

    name = "grades"
    kinds = ("grades_course", "grades_student")
    table = grade_facts

    def accepts(self, record: BaseModel) -> bool:
        return isinstance(record, GradeEvent)

    def record(self, conn, records: Sequence[GradeEvent], now):
        marks: Marks = {}
        rows = []
        for e in _latest(records, lambda e: (e.student_id, e.course_id, e.term), "occurred_at"):
            rows.append(
                dict(
                    student_id=e.student_id,
                    course_id=e.course_id,
                    term=e.term,
                    score=e.score,
                    credits=e.credits,
                    occurred_at=e.occurred_at,
                    source=e.source,
                    key=e.key,
                )
            )
            marks[("grades_course", e.course_id, e.term)] = self.timing.now(now)
            marks[("grades_student", e.student_id, e.term)] = self.timing.now(now)
        self._store_latest(conn, rows, ["student_id", "course_id", "term"], "occurred_at")
        return marks

    def observations(self, conn, refs, directory, as_of):
        wanted: set[tuple[str, str]] = set()
        by_column: dict[str, dict[str, set[str]]] = {
            "grades_course": defaultdict(set),
            "grades_student": defaultdict(set),
        }
        for r in refs:
            by_column[r.kind][r.period].add(r.unit_id)
            wanted.add((r.unit_id, r.period))
        out: list[Observation] = []
        for kind, column in (("grades_course", grade_facts.c.course_id), ("grades_student", grade_facts.c.student_id)):
            for term, ids in sorted(by_column[kind].items()):
                events: list = []  # fact rows stand in for GradeEvents (same attributes)
                for chunk in chunks(sorted(ids)):
                    events += conn.execute(
                        select(grade_facts).where(grade_facts.c.term == term, column.in_(chunk))
                    ).all()
                level = Level.course if kind == "grades_course" else Level.student
                out += [o for o in grade_metrics(events) if o.level is level and (o.entity_id, o.period) in wanted]
        return out


# --- finance -------------------------------------------------------------------------------------

finance_facts = Table(
    "finance_facts",
    metadata,
    Column("key", String(256), primary_key=True),
    Column("school_id", String(64), nullable=False),
    Column("year", String(4), nullable=False),
    Column("category", String(32), nullable=False),
    Column("item", String(128), nullable=False),
    Column("budget", Float, nullable=False),
    Column("actual", Float, nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("source", String(128), nullable=False),
    Index("ix_finance_facts_school_year", "school_id", "year"),
)


class FinanceProcessor(Processor):
    """Lines of the 财务 export; per-student ratios read the directory's enrolment."""

    name = "finance"
    kinds = ("finance",)
    table = finance_facts

    def accepts(self, record: BaseModel) -> bool:
        return isinstance(record, FinanceEvent)

    def record(self, conn, records: Sequence[FinanceEvent], now):
        rows = [
            dict(
                key=e.key,
                school_id=e.school_id,
                year=e.year,
                category=e.category,
                item=e.item,
                budget=e.budget,
                actual=e.actual,
                occurred_at=e.occurred_at,
                source=e.source,
            )
            for e in _latest(records, lambda e: e.key, "occurred_at")
        ]
        self._store_latest(conn, rows, ["key"], "occurred_at")
        return {("finance", r["school_id"], r["year"]): self.timing.now(now) for r in rows}

    def directory_changed(self, conn, now):
        return {
            ("finance", school, year): self.timing.directory(now)
            for school, year in self._distinct(conn, finance_facts.c.school_id, finance_facts.c.year)
        }

    def observations(self, conn, refs, directory, as_of):
        out: list[Observation] = []
        for r in refs:
            rows = conn.execute(
                select(finance_facts).where(finance_facts.c.school_id == r.unit_id, finance_facts.c.year == r.period)
            )
            out += finance_metrics(rows.all(), directory)  # fact rows stand in for FinanceEvents
        return out


# --- teachers' evaluation scores -----------------------------------------------------------------

score_facts = Table(
    "score_facts",
    metadata,
    Column("key", String(256), primary_key=True),  # the observation's key
    Column("course_id", String(64), nullable=False),
    Column("period", String(16), nullable=False),
    Column("value", Float, nullable=False),
    Column("observed_at", UTCDateTime(), nullable=False),
    Column("source", String(128), nullable=False),
    Index("ix_score_facts_period", "period"),
)


class EvaluationProcessor(Processor):
    """Course evaluation scores (评教, observations) → each teacher's mean over their courses,
    through the directory's course → course_teacher."""

    name = "evaluation"
    kinds = ("teacher_eval",)
    table = score_facts

    def accepts(self, record: BaseModel) -> bool:
        return (
            isinstance(record, Observation)
            and record.metric == EVALUATION_METRIC
            and not isinstance(record.value, bool)
        )

    def record(self, conn, records: Sequence[Observation], now):
        rows = [
            dict(
                key=o.key,
                course_id=o.entity_id,
                period=o.period,
                value=float(o.value),
                observed_at=o.observed_at,
                source=o.source,
            )
            for o in _latest(records, lambda o: o.key, "observed_at")
        ]
        self._store_latest(conn, rows, ["key"], "observed_at")
        return {("teacher_eval", ALL, r["period"]): self.timing.now(now) for r in rows}

    def directory_changed(self, conn, now):
        return {
            ("teacher_eval", ALL, period): self.timing.directory(now)
            for (period,) in self._distinct(conn, score_facts.c.period)
        }

    def observations(self, conn, refs, directory, as_of):
        out: list[Observation] = []
        for r in refs:
            scores = stored_scores(conn, r.period)
            out += teacher_evaluation_metrics(scores, directory)
        return out


def stored_scores(conn, period: str) -> list[Observation]:
    """The courses' evaluation scores of ``period`` as stored (facts: validated when they arrived)."""
    return [
        Observation.model_construct(
            level=Level.course,
            entity_id=row.course_id,
            metric=EVALUATION_METRIC,
            value=row.value,
            period=row.period,
            observed_at=row.observed_at,
            source=row.source,
            key=row.key,
        )
        for row in conn.execute(select(score_facts).where(score_facts.c.period == period))
    ]


# --- the directory itself ------------------------------------------------------------------------


class DirectoryProcessor(Processor):
    """Counts and ratios over the directory (生师比, 双师, 周学时 …), for the term and year the
    directory changed in; recomputed whenever it changes."""

    name = "directory"
    kinds = ("directory",)

    def accepts(self, record: BaseModel) -> bool:
        return False

    def record(self, conn, records, now):
        return {}

    def directory_changed(self, conn, now):
        return {("directory", ALL, term_of(now)): self.timing.directory(now)}

    def observations(self, conn, refs, directory, as_of):
        out: list[Observation] = []
        for r in refs:
            out += directory_metrics(directory, year=academic_year_of(as_of), term=r.period, as_of=as_of)
        return out


PROCESSORS: tuple[type[Processor], ...] = (
    AttendanceProcessor,
    GradeProcessor,
    FinanceProcessor,
    EvaluationProcessor,
    DirectoryProcessor,
)
