"""Processors for the other campus systems' metrics that need aggregation over events.

The metric-table connectors (``zhengai.connectors.tables``) deliver what the systems hold as
plain observations. Three indicators are not a row anywhere; they are computed here, in both
runtimes, through the :class:`~zhengai.ingest.aggregator.Aggregator` like every derived metric:

===================  =============================================  ===============================
processor            facts (input observations)                      emits
===================  =============================================  ===============================
card_idle            ``student.card_swipes`` (一卡通: a student's     ``student.card_inactivity_days``
                     消费/门禁 records on one day, period = the day)  = days since the last day with
                     → the last active day per student                a record, as of the unit's day
dropout              ``student.dropped_out`` (学籍异动: 1 for a        ``student.dropout_rate`` per
                     student who left — 退学/流失 — in the term)      class = 100·left/(in the class)
teacher_rank         ``course.student_evaluation_score`` (评教; the   ``teacher.evaluation_bottom_rank``
                     facts the evaluation processor already keeps)    = percentile of the teacher's
                                                                      score among the department's
                                                                      teachers (0 lowest, 100 top)
===================  =============================================  ===============================

Card inactivity is as of the newest day the 一卡通 data covers (the latest day any card was used),
not the wall clock, so both runtimes give the same value; the connector runs daily.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

from pydantic import BaseModel
from sqlalchemy import Column, Float, Index, String, Table, func, select

from zhengai.ingest.aggregate import observation, teacher_evaluation_metrics
from zhengai.ingest.processors import ALL, EVALUATION_METRIC, Processor, score_facts, stored_scores
from zhengai.ingest.records import EntityKind, Level, Observation
from zhengai.ingest.source_health import SOURCE_INPUT, SOURCE_METRIC, SourceHealthProcessor
from zhengai.ingest.sqltypes import UTCDateTime
from zhengai.ingest.units import metadata

__all__ = [
    "CARD_INPUT",
    "DROPOUT_INPUT",
    "INPUT_METRICS",
    "SYSTEM_PROCESSORS",
    "SYSTEM_METRICS",
    "CardIdleProcessor",
    "DropoutProcessor",
    "TeacherRankProcessor",
    "percentiles",
]

CARD_INPUT = "student.card_swipes"
DROPOUT_INPUT = "student.dropped_out"
INPUT_METRICS = frozenset({CARD_INPUT, DROPOUT_INPUT, SOURCE_INPUT})  # facts only: no rule judges them

card_days = Table(
    "card_last_active",
    metadata,
    Column("student_id", String(64), primary_key=True),
    Column("last_day", String(10), nullable=False),  # ISO date of the last day with a record
    Column("observed_at", UTCDateTime(), nullable=False),
    Column("source", String(128), nullable=False),
)

dropouts = Table(
    "dropout_facts",
    metadata,
    Column("key", String(256), primary_key=True),
    Column("student_id", String(64), nullable=False),
    Column("term", String(16), nullable=False),
    Column("value", Float, nullable=False),  # 1 = left in the term, 0 = a correction (did not leave)
    Column("observed_at", UTCDateTime(), nullable=False),
    Column("source", String(128), nullable=False),
    Index("ix_dropout_facts_term", "term"),
)


def _numeric(record: BaseModel, metric: str) -> bool:
    return isinstance(record, Observation) and record.metric == metric and not isinstance(record.value, bool)


class CardIdleProcessor(Processor):
    name = "card_idle"
    kinds = ("card_idle",)
    table = card_days

    def accepts(self, record: BaseModel) -> bool:
        return _numeric(record, CARD_INPUT)

    def record(self, conn, records: Sequence[Observation], now):
        last: dict[str, Observation] = {}
        for o in records:
            if float(o.value) > 0 and (o.entity_id not in last or o.period > last[o.entity_id].period):
                last[o.entity_id] = o
        rows = [
            dict(student_id=s, last_day=o.period, observed_at=o.observed_at, source=o.source) for s, o in last.items()
        ]
        self._store_latest(conn, rows, ["student_id"], "last_day")
        # As of the newest day the 一卡通 data covers (not the wall clock): both runtimes agree.
        return {("card_idle", ALL, max(o.period for o in records)): self.timing.now(now)} if records else {}

    def directory_changed(self, conn, now):
        newest = conn.execute(select(func.max(card_days.c.last_day))).scalar()
        return {("card_idle", ALL, newest): self.timing.directory(now)} if newest else {}

    def observations(self, conn, refs, directory, as_of):
        out: list[Observation] = []
        rows = conn.execute(select(card_days)).all()
        for r in refs:
            day = date.fromisoformat(r.period)
            for row in rows:
                if directory.placed(row.student_id) and row.last_day <= r.period:
                    idle = (day - date.fromisoformat(row.last_day)).days
                    out.append(
                        observation(
                            Level.student,
                            row.student_id,
                            "student.card_inactivity_days",
                            idle,
                            r.period,
                            row.observed_at,
                        )
                    )
        return out


class DropoutProcessor(Processor):
    name = "dropout"
    kinds = ("dropout",)
    table = dropouts

    def accepts(self, record: BaseModel) -> bool:
        return _numeric(record, DROPOUT_INPUT)

    def record(self, conn, records: Sequence[Observation], now):
        latest: dict[str, Observation] = {}
        for o in records:
            if o.key not in latest or o.observed_at >= latest[o.key].observed_at:
                latest[o.key] = o
        rows = [
            dict(
                key=o.key,
                student_id=o.entity_id,
                term=o.period,
                value=float(o.value),
                observed_at=o.observed_at,
                source=o.source,
            )
            for o in latest.values()
        ]
        self._store_latest(conn, rows, ["key"], "observed_at")
        return {("dropout", ALL, r["term"]): self.timing.now(now) for r in rows}

    def directory_changed(self, conn, now):
        return {("dropout", ALL, term): self.timing.directory(now) for (term,) in self._distinct(conn, dropouts.c.term)}

    def observations(self, conn, refs, directory, as_of):
        out: list[Observation] = []
        classes = list(directory.of_kind(EntityKind.class_))
        for r in refs:
            left: dict[str, float] = defaultdict(float)
            last = None
            for row in conn.execute(select(dropouts).where(dropouts.c.term == r.period)):
                if row.value > 0:
                    k = directory.ancestor(row.student_id, EntityKind.class_)
                    if k is not None:
                        left[k.id] += 1
                last = row.observed_at if last is None else max(last, row.observed_at)
            for k in classes:
                size = sum(1 for e in directory.children(k.id) if e.kind is EntityKind.student)
                if size:
                    out.append(
                        observation(
                            Level.student,
                            k.id,
                            "student.dropout_rate",
                            100.0 * left[k.id] / size,
                            r.period,
                            last or as_of,
                        )
                    )
        return out


def percentiles(scores: dict[str, float]) -> dict[str, float]:
    """Each key's percentile among ``scores``: 0 for the lowest, 100 for the highest, ties share
    the mean of their ranks; one score alone is not ranked."""
    n = len(scores)
    if n < 2:
        return {}
    ordered = sorted(scores.values())
    out = {}
    for key, value in scores.items():
        below = sum(1 for v in ordered if v < value)
        equal = sum(1 for v in ordered if v == value)
        out[key] = 100.0 * (below + (equal - 1) / 2) / (n - 1)
    return out


class TeacherRankProcessor(Processor):
    """Reads the course scores the evaluation processor keeps; stores nothing of its own."""

    name = "teacher_rank"
    kinds = ("teacher_rank",)

    def accepts(self, record: BaseModel) -> bool:
        return _numeric(record, EVALUATION_METRIC)

    def record(self, conn, records: Sequence[Observation], now):
        return {("teacher_rank", ALL, o.period): self.timing.now(now) for o in records}

    def directory_changed(self, conn, now):
        return {
            ("teacher_rank", ALL, p): self.timing.directory(now) for (p,) in self._distinct(conn, score_facts.c.period)
        }

    def observations(self, conn, refs, directory, as_of):
        out: list[Observation] = []
        for r in refs:
            scores = stored_scores(conn, r.period)
            by_dept: dict[str, dict[str, Observation]] = defaultdict(dict)
            for t in teacher_evaluation_metrics(scores, directory):
                dept = directory.ancestor(t.entity_id, EntityKind.department)
                if dept is not None:
                    by_dept[dept.id][t.entity_id] = t
            for teachers in by_dept.values():
                for tid, pct in percentiles({k: float(o.value) for k, o in teachers.items()}).items():
                    out.append(
                        observation(
                            Level.teacher,
                            tid,
                            "teacher.evaluation_bottom_rank",
                            pct,
                            r.period,
                            teachers[tid].observed_at,
                        )
                    )
        return out


SYSTEM_PROCESSORS: tuple[type[Processor], ...] = (
    CardIdleProcessor,
    DropoutProcessor,
    TeacherRankProcessor,
    SourceHealthProcessor,
)
SYSTEM_METRICS: dict[str, str] = {  # metric → the processor that computes it (the route test reads this)
    "student.card_inactivity_days": "card_idle",
    "student.dropout_rate": "dropout",
    "teacher.evaluation_bottom_rank": "teacher_rank",
    SOURCE_METRIC: "source_health",
}
