"""One hop from observation to stored verdict — the step both runtimes share.

``Judge.judge`` takes a batch of observations (each with where it came from) and, in order:

1. hands the observations that are also facts of a stream processor (course evaluation scores →
   teachers' scores) to the :class:`~zhengai.ingest.aggregator.Aggregator`;
2. parks the observations whose entity the directory cannot place yet (they are judged when it
   can: :meth:`Judge.unpark`), so the result does not depend on the order the directory and the
   data arrive in;
3. evaluates the rest with the pure evaluator (``zhengai.rules.engine.evaluate_batch``);
4. stores observations, verdicts, warning transitions and outbox rows in **one transaction**
   (``WarningService.handle``) — one per slice of ``SLICE`` verdicts, so a huge batch never holds
   more locks than the server's lock table has room for.

What the caller publishes afterwards — verdicts on ``zg.verdicts``, transitions on ``zg.warnings``,
dead letters on ``zg.dlq`` — is in the returned :class:`Outcome`; the store never reads them back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from zhengai.ingest import metrics
from zhengai.ingest.aggregator import Aggregator
from zhengai.ingest.directory import Directory
from zhengai.ingest.records import DeadLetter, Observation, Verdict
from zhengai.rules.engine import evaluate_batch
from zhengai.rules.loader import RuleSet
from zhengai.warnings.history import KindJudge
from zhengai.warnings.service import WarningService
from zhengai.warnings.store import AppliedTransition

__all__ = ["Judge", "Outcome", "Item"]

Item = tuple[Observation, str]  # an observation and its source (kafka:topic/partition/offset, connector …)


@dataclass
class Outcome:
    verdicts: list[Verdict] = field(default_factory=list)
    transitions: list[AppliedTransition] = field(default_factory=list)
    dead_letters: list[tuple[DeadLetter, str]] = field(default_factory=list)  # with a reason code
    stored: int = 0  # observations stored
    parked: int = 0  # observations waiting for their directory entry

    def add(self, other: Outcome) -> Outcome:
        self.verdicts += other.verdicts
        self.transitions += other.transitions
        self.dead_letters += other.dead_letters
        self.stored += other.stored
        self.parked += other.parked
        return self


class Judge:
    SLICE = 2000  # verdicts (and observations) per transaction

    def __init__(
        self,
        service: WarningService,
        aggregator: Aggregator,
        rules: Callable[[], RuleSet],
        directory: Callable[[], Directory],
        *,
        replay: bool = False,
        slice: int = SLICE,
    ):
        self.service = service
        self.aggregator = aggregator
        self._rules = rules
        self._directory = directory
        self.replay = replay  # judge each observation as of when it was observed (history loads)
        self.slice = slice
        self.kinds = KindJudge(service.store.engine)  # trend, progress, composite, control (their history)

    def judge(self, items: Sequence[Item], now: datetime) -> Outcome:
        outcome = Outcome()
        if not items:
            return outcome
        observations = [o for o, _ in items]
        self.aggregator.record(observations, now)  # facts for derived metrics (idempotent)
        items = [item for item in items if not self.aggregator.input_only(item[0])]  # facts only, no rule
        if not items:
            return outcome
        directory = self._directory()
        placed: list[Item] = []
        waiting: list[Item] = []
        for item in items:
            (placed if directory.placed(item[0].entity_id) else waiting).append(item)
        if waiting:
            outcome.parked = self.aggregator.park(waiting, now)
        if not placed:
            return outcome
        sources = {id(o): source for o, source in placed}
        started = time.perf_counter()
        rules = self._rules()  # one rulebook for the batch, also when a reload swaps it meanwhile
        result = evaluate_batch(rules, [o for o, _ in placed], directory, now, replay=self.replay)
        kinds = self.kinds.judge(rules, [o for o, _ in placed], directory, now, replay=self.replay)
        result.verdicts += kinds.verdicts  # other rule ids: each series stays in period order
        for obs, code, reason in kinds.rejected:
            result._reject(obs, code, reason, now)
        metrics.EVALUATION_SECONDS.observe(time.perf_counter() - started)
        outcome.dead_letters = [
            (d.model_copy(update={"source": sources.get(id(obs), d.source)}), code)
            for d, (obs, code) in zip(result.dead_letters, result.rejected, strict=True)
        ]
        # One transaction per slice: a transaction locks each (rule, entity) it touches, and
        # PostgreSQL's lock table is shared and bounded (max_locks_per_transaction ×
        # max_connections), while one Kafka batch of batch messages can carry 100,000 records.
        stored = [o for o, _ in placed]
        verdicts = result.verdicts  # sorted by series: slices keep each series in period order
        for i in range(0, max(len(verdicts), len(stored)), self.slice):
            outcome.transitions += self.service.handle(
                verdicts[i : i + self.slice], observations=stored[i : i + self.slice]
            )
        outcome.verdicts = verdicts
        outcome.stored = len(placed)
        for v in result.verdicts:
            metrics.VERDICTS.labels(level=v.level.value, band=v.band.value).inc()
        return outcome

    def unpark(self, now: datetime) -> Outcome:
        """Judge the parked observations whose entity the directory can place now."""
        directory = self._directory()
        ready = [e for e in self.aggregator.parked_entities() if directory.placed(e)]
        if not ready:
            return Outcome()
        items = self.aggregator.take_parked(ready)
        outcome = self.judge(items, now)
        self.aggregator.unpark(o.key for o, _ in items)
        return outcome

    def expire(self, now: datetime, wait: timedelta) -> list[tuple[DeadLetter, str]]:
        """Observations parked longer than ``wait``: their entity never arrived — dead letters."""
        expired = self.aggregator.expired(now - wait)
        letters = [
            (
                DeadLetter(
                    source=source,
                    reason=f"entity {o.entity_id!r} is not in the directory "
                    f"(waited {wait.total_seconds() / 3600:.0f} h for it)",
                    raw=o.model_dump_json(),
                    at=now,
                ),
                "unknown_entity",
            )
            for o, source in expired
        ]
        self.aggregator.unpark(o.key for o, _ in expired)
        return letters
