"""The history the rule kinds read — per (metric, entity), one value per period — kept in the store,
and the judge step that evaluates the kinds with it (``KindJudge``), batched per judge batch.

``metric_history`` holds the numeric observations of the metrics some trend, control or composite
rule watches (nothing else): per (metric, entity, period) the value observed last (a correction
replaces it; an older re-delivery does not). It is written after the batch is evaluated, in its
own transaction: a crash before the verdicts commit re-delivers the batch, which is judged the
same way again (the kinds read the periods *before* the one judged, and the judged value from the
observation itself), so the state is restart-safe without joining the verdicts' transaction.

Both runtimes reach this through ``Judge.judge``: one read of the pairs the batch needs, one upsert
of what it adds. A batch with no watched metric (the plain threshold rules' hot path) costs one
set lookup per observation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Column, Float, Index, PrimaryKeyConstraint, String, Table, select
from sqlalchemy.engine import Engine

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Observation
from zhengai.ingest.sqltypes import UTCDateTime
from zhengai.ingest.units import chunks, insert_for
from zhengai.rules.kinds import history_metrics
from zhengai.rules.kinds_eval import KindResult, Point, evaluate_kinds, kind_rules_by_metric, watched_metrics
from zhengai.rules.loader import RuleSet
from zhengai.rules.model import Rule
from zhengai.warnings.schema import Base

__all__ = ["metric_history", "KindJudge", "load_history", "save_history"]

metric_history = Table(
    "metric_history",
    Base.metadata,
    Column("metric", String(80), nullable=False),
    Column("entity_id", String(64), nullable=False),
    Column("period", String(16), nullable=False),
    Column("value", Float, nullable=False),
    Column("observed_at", UTCDateTime(), nullable=False),
    Column("key", String(256), nullable=False),  # the observation's key (a period judged again keeps it)
    PrimaryKeyConstraint("metric", "entity_id", "period"),
    Index("ix_metric_history_entity", "entity_id"),
)


def load_history(engine: Engine, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Point]]:
    """The stored series of these (metric, entity) pairs, in one query per 500 entities."""
    out: dict[tuple[str, str], dict[str, Point]] = {}
    if not pairs:
        return out
    metrics = sorted({m for m, _ in pairs})
    t = metric_history.c
    with engine.connect() as conn:
        for chunk in chunks(sorted({e for _, e in pairs})):
            rows = conn.execute(
                select(t.metric, t.entity_id, t.period, t.value, t.observed_at, t.key).where(
                    t.entity_id.in_(list(chunk)), t.metric.in_(metrics)
                )
            )
            for m, e, p, v, at, key in rows:
                if (m, e) in pairs:
                    out.setdefault((m, e), {})[p] = Point(v, at, key)
    return out


def save_history(engine: Engine, observations: Sequence[Observation], watched: set[str]) -> int:
    """Upsert the numeric observations of watched metrics; the latest observed per period wins."""
    rows: dict[tuple[str, str, str], dict] = {}
    for o in observations:
        if o.metric in watched and not isinstance(o.value, bool):
            k = (o.metric, o.entity_id, o.period)
            if k not in rows or o.observed_at >= rows[k]["observed_at"]:
                rows[k] = dict(
                    metric=o.metric,
                    entity_id=o.entity_id,
                    period=o.period,
                    value=float(o.value),
                    observed_at=o.observed_at,
                    key=o.key,
                )
    if not rows:
        return 0
    ins = insert_for(engine)(metric_history)
    stmt = ins.on_conflict_do_update(
        index_elements=["metric", "entity_id", "period"],
        set_={"value": ins.excluded.value, "observed_at": ins.excluded.observed_at, "key": ins.excluded.key},
        where=metric_history.c.observed_at <= ins.excluded.observed_at,
    )
    with engine.begin() as conn:
        for chunk in chunks(sorted(rows)):
            conn.execute(stmt, [rows[k] for k in chunk])
    return len(rows)


class KindJudge:
    """The kinds' step of ``Judge.judge``: read the history a batch needs, evaluate, remember."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._for: RuleSet | None = None
        self._by_metric: Mapping[str, Sequence[Rule]] = {}
        self._watched: set[str] = set()
        self._created = False

    def _index(self, rules: RuleSet) -> None:
        if rules is not self._for:  # a reloaded rulebook: index it once
            self._by_metric = kind_rules_by_metric(rules)
            self._watched = watched_metrics(r for rs in self._by_metric.values() for r in rs)
            self._for = rules

    def judge(
        self,
        rules: RuleSet,
        observations: Sequence[Observation],
        directory: Directory,
        now: datetime,
        *,
        replay: bool = False,
    ) -> KindResult:
        self._index(rules)
        if not self._by_metric:
            return KindResult()
        by_metric, watched = self._by_metric, self._watched
        triggers = [o for o in observations if o.metric in by_metric]
        kept = [o for o in observations if o.metric in watched]
        if not triggers and not kept:
            return KindResult()
        if not self._created:
            metric_history.create(self.engine, checkfirst=True)  # the migration made it; a bare engine too
            self._created = True
        pairs = {(m, o.entity_id) for o in triggers for r in by_metric[o.metric] for m in history_metrics(r)}
        history = load_history(self.engine, pairs)
        result = evaluate_kinds(
            rules, triggers, history, directory.lineage, now, replay=replay, by_metric=by_metric, batch=kept
        )
        save_history(self.engine, kept, watched)
        return result
