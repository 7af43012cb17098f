"""The embedded runner: the whole loop in one process, no Kafka, no PostgreSQL.

Connectors deliver into an in-process collector instead of Kafka; the same aggregation, rule
evaluation, lifecycle, routing and outbox code then runs as it would behind the Faust agents, with
SQLite behind SQLAlchemy as the store. Only the transport and the store differ from production.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Sequence

from zhengai.connectors.base import Connector, MemoryBookmarks, Record, RunReport, run_connector
from zhengai.ingest.aggregate import (
    attendance_metrics,
    attendance_rollups,
    directory_metrics,
    finance_metrics,
    grade_metrics,
    teacher_evaluation_metrics,
)
from zhengai.ingest.directory import Directory
from zhengai.ingest.records import (
    AttendanceEvent,
    DeadLetter,
    Entity,
    FinanceEvent,
    GradeEvent,
    Observation,
    Person,
)
from zhengai.rules.engine import evaluate_batch
from zhengai.rules.loader import RuleSet
from zhengai.warnings.notify.base import Sink
from zhengai.warnings.notify.dispatch import DispatchReport, dispatch
from zhengai.warnings.service import WarningService
from zhengai.warnings.store import AppliedTransition, WarningStore

__all__ = ["Collector", "Pipeline", "PipelineResult"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]

@dataclass
class Collector:
    """The in-process stand-in for the Kafka topics: a connector's ``Delivery``.

    Directory records and dead letters are written to the store as they arrive (so a delivery
    returns only once they are durable, like an acknowledged produce); events and observations
    wait in memory for aggregation and evaluation in this run.
    """

    store: WarningStore
    directory: Directory = field(default_factory=Directory)
    observations: list[Observation] = field(default_factory=list)
    attendance: list[AttendanceEvent] = field(default_factory=list)
    grades: list[GradeEvent] = field(default_factory=list)
    finance: list[FinanceEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def deliver(self, records: Sequence[Record]) -> None:
        directory_records: list[Entity | Person] = []
        dead: list[DeadLetter] = []
        for r in records:
            if isinstance(r, (Entity, Person)):
                directory_records.append(r)
            elif isinstance(r, Observation):
                self.observations.append(r)
            elif isinstance(r, AttendanceEvent):
                self.attendance.append(r)
            elif isinstance(r, GradeEvent):
                self.grades.append(r)
            elif isinstance(r, FinanceEvent):
                self.finance.append(r)
            elif isinstance(r, DeadLetter):
                dead.append(r)
        if directory_records:
            for r in directory_records:
                self.directory.add(r)
            self.store.upsert_directory(directory_records, self.directory)
        if dead:
            self.store.add_dead_letters(dead)
            self.dead_letters.extend(dead)


@dataclass
class PipelineResult:
    connector_reports: dict[str, RunReport] = field(default_factory=dict)
    observations: int = 0
    verdicts: int = 0
    transitions: list[AppliedTransition] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    dispatch: dict[str, DispatchReport] = field(default_factory=dict)
    bands: dict[str, int] = field(default_factory=dict)


class Pipeline:
    """One pass of 监测 → 预警 over everything the connectors deliver, then 通知."""

    def __init__(self, store: WarningStore, rules: RuleSet, *, clock: Callable[[], datetime],
                 channels: Sequence[str] = ("console", "file"), progress: Progress | None = None):
        self.store = store
        self.rules = rules
        self.clock = clock
        self.channels = tuple(channels)
        self.collector = Collector(store)
        self.service = WarningService(store, lambda: self.rules, lambda: self.directory, channels=channels)
        self.progress = progress or (lambda step, done, total: None)

    @property
    def directory(self) -> Directory:
        return self.collector.directory

    def ingest(self, connectors: Sequence[Connector], result: PipelineResult) -> None:
        bookmarks = MemoryBookmarks()  # the embedded run reads every source whole
        for i, connector in enumerate(connectors, 1):
            rows = 0

            def on_batch(stream: str, n: int) -> None:
                nonlocal rows
                rows += n
                self.progress(f"读取 {stream}", rows, 0)

            result.connector_reports[connector.name] = run_connector(connector, self.collector, bookmarks, on_batch=on_batch)
            self.progress(f"连接器 {connector.name} 完成", i, len(connectors))

    def aggregate(self, *, term: str, year: str, as_of: datetime) -> list[Observation]:
        c = self.collector
        out = list(c.observations)
        out += attendance_metrics(c.attendance, term)
        out += attendance_rollups(c.attendance, c.directory)  # class, major, department weeks
        out += grade_metrics(c.grades)
        out += directory_metrics(c.directory, year=year, term=term, as_of=as_of)
        out += finance_metrics(c.finance, c.directory)
        out += teacher_evaluation_metrics(c.observations, c.directory)
        return out

    def evaluate_and_store(self, observations: list[Observation], now: datetime, result: PipelineResult, chunk: int = 20000) -> None:
        result.observations = self.store.add_observations(observations)
        # The embedded run loads the term's history at once: judge each observation as of when it
        # was observed, as the streaming worker does live.
        batch = evaluate_batch(self.rules, observations, self.directory, now, replay=True)
        result.verdicts = len(batch.verdicts)
        for v in batch.verdicts:
            result.bands[v.band.value] = result.bands.get(v.band.value, 0) + 1
        if batch.dead_letters:
            self.store.add_dead_letters(batch.dead_letters)
        result.dead_letters = self.collector.dead_letters + batch.dead_letters
        total = len(batch.verdicts)
        for start in range(0, total, chunk):
            result.transitions += self.service.handle(batch.verdicts[start : start + chunk])
            self.progress("评估与预警", min(start + chunk, total), total)

    def notify(self, sinks: Sequence[Sink], result: PipelineResult) -> None:
        for sink in sinks:
            try:
                result.dispatch[sink.channel] = dispatch(self.store, sink, self.clock, rules=lambda: self.rules,
                                                         directory=lambda: self.directory)
            finally:
                sink.close()
