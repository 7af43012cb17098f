"""The embedded runner: the whole loop in one process, no Kafka, no PostgreSQL.

Connectors deliver into the pipeline instead of Kafka; from there the *same* steps run as behind
the Faust agents, with SQLite behind SQLAlchemy as the store:

=====================================  ===========================================================
Faust worker (Kafka + PostgreSQL)      embedded runner (in process + SQLite)
=====================================  ===========================================================
``zg.entities`` → directory agent      :meth:`Pipeline.deliver`: directory upsert, units that read
                                       the directory marked, parked observations judged
``zg.events`` → events agent           :meth:`Pipeline.deliver`: ``Aggregator.record``
``zg.observations`` → judge agent      :meth:`Pipeline.deliver`: ``Judge.judge`` (one hop)
flush timer                            :meth:`Pipeline.flush`: ``Aggregator.step`` → ``Judge.judge``
=====================================  ===========================================================

Only the transport and the store differ from production. A batch run is history, so it judges
each observation as of when it was observed, and its final flush closes every unit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from zhengai.connectors.base import Connector, MemoryBookmarks, Record, RunReport, run_connector
from zhengai.ingest.aggregator import Aggregator
from zhengai.ingest.directory import Directory
from zhengai.ingest.processors import Timing
from zhengai.ingest.records import DeadLetter, Entity, Observation, Person
from zhengai.rules.loader import RuleSet
from zhengai.warnings.judge import Judge, Outcome
from zhengai.warnings.notify.base import Sink
from zhengai.warnings.notify.dispatch import DispatchReport, dispatch
from zhengai.warnings.service import WarningService
from zhengai.warnings.store import AppliedTransition, WarningStore

__all__ = ["Pipeline", "PipelineResult"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]

# A batch run has nothing left to wait for: every unit is settled and due at once.
BATCH_TIMING = Timing(grace=timedelta(0), settle=timedelta(0), directory_settle=timedelta(0))


@dataclass
class PipelineResult:
    connector_reports: dict[str, RunReport] = field(default_factory=dict)
    observations: int = 0
    verdicts: int = 0
    transitions: list[AppliedTransition] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    dispatch: dict[str, DispatchReport] = field(default_factory=dict)
    bands: dict[str, int] = field(default_factory=dict)

    def take(self, outcome: Outcome) -> None:
        self.observations += outcome.stored
        self.verdicts += len(outcome.verdicts)
        self.transitions += outcome.transitions
        self.dead_letters += [letter for letter, _ in outcome.dead_letters]
        for v in outcome.verdicts:
            self.bands[v.band.value] = self.bands.get(v.band.value, 0) + 1


class Pipeline:
    """One pass of 监测 → 预警 over everything the connectors deliver, then 通知."""

    def __init__(
        self,
        store: WarningStore,
        rules: RuleSet,
        *,
        clock: Callable[[], datetime],
        channels: Sequence[str] = ("console", "file"),
        progress: Progress | None = None,
    ):
        self.store = store
        self.rules = rules
        self.clock = clock
        self.channels = tuple(channels)
        self.directory = Directory()
        self.aggregator = Aggregator(store.engine, timing=BATCH_TIMING, clock=clock)
        self.aggregator.create_schema()
        self.service = WarningService(store, lambda: self.rules, lambda: self.directory, channels=channels)
        self.judge = Judge(self.service, self.aggregator, lambda: self.rules, lambda: self.directory, replay=True)
        self.result = PipelineResult()
        self.progress = progress or (lambda step, done, total: None)

    # --- the connectors' Delivery ------------------------------------------------------------
    def deliver(self, records: Sequence[Record]) -> None:
        """Returning means stored, like an acknowledged produce: directory records and dead
        letters are written, events become facts, observations are judged."""
        now = self.clock()
        directory_records = [r for r in records if isinstance(r, (Entity, Person))]
        dead = [r for r in records if isinstance(r, DeadLetter)]
        observations = [r for r in records if isinstance(r, Observation)]
        events = [r for r in records if self.aggregator.accepts(r) and not isinstance(r, Observation)]
        if directory_records:
            for r in directory_records:
                self.directory.add(r)
            if self.store.directory.upsert(directory_records, self.directory):
                self.aggregator.directory_changed(now)
            self.result.take(self.judge.unpark(now))
        if dead:
            self.store.observations.add_dead_letters(dead)
            self.result.dead_letters += dead
        if events:
            self.aggregator.record(events, now)
        if observations:
            self._judge([(o, o.source) for o in observations], now)

    def _judge(self, items, now: datetime) -> None:
        outcome = self.judge.judge(items, now)
        if outcome.dead_letters:
            self.store.observations.add_dead_letters([letter for letter, _ in outcome.dead_letters])
        self.result.take(outcome)

    # --- the run ---------------------------------------------------------------------------------
    def ingest(self, connectors: Sequence[Connector]) -> PipelineResult:
        result = self.result
        bookmarks = MemoryBookmarks()  # the embedded run reads every source whole
        for i, connector in enumerate(connectors, 1):
            rows = 0

            def on_batch(stream: str, n: int) -> None:
                nonlocal rows
                rows += n
                self.progress(f"读取 {stream}", rows, 0)

            result.connector_reports[connector.name] = run_connector(connector, self, bookmarks, on_batch=on_batch)
            self.deliver([source_health_report(connector.name, result.connector_reports[connector.name], self)])
            self.progress(f"连接器 {connector.name} 完成", i, len(connectors))
        return result

    def flush(self, *, limit: int = 100_000) -> PipelineResult:
        """Close every unit and judge what it stands for (the worker's flush timer, all at once)."""
        result = self.result
        end = self.clock() + timedelta(days=3650)  # a batch run is over: every week has closed
        done = 0
        while True:
            emitted = self.aggregator.step(self.directory, end, limit=limit)
            if not emitted.refs:
                break
            self._judge([(o, o.source) for o in emitted.observations], self.clock())
            self.aggregator.release(emitted.refs, end)
            done += len(emitted.refs)
            self.progress("汇总与评估", done, done + self.aggregator.pending())
        expired = self.judge.expire(end, timedelta(0))  # still parked: the directory never had them
        if expired:
            self.store.observations.add_dead_letters([letter for letter, _ in expired])
            result.dead_letters += [letter for letter, _ in expired]
        return result

    def notify(self, sinks: Sequence[Sink]) -> None:
        result = self.result
        for sink in sinks:
            try:
                result.dispatch[sink.channel] = dispatch(
                    self.store, sink, self.clock, rules=lambda: self.rules, directory=lambda: self.directory
                )
            finally:
                sink.close()


def source_health_report(name: str, report, pipeline: Pipeline):
    """A one-shot run's health report: a connector that failed counts as a stopped source."""
    from zhengai.connectors.source_health import health_observation

    school = pipeline.directory.school()
    return health_observation(name, not report.ok, pipeline.clock(), school.id if school else "SCH")
