"""Rules agents: observations → verdicts, and the rulebook reloading while the worker runs.

Thin by design: validation is ``zhengai.ingest.stream.validate``, evaluation is
``zhengai.rules.engine.evaluate_batch`` (the same loop the embedded runner calls).
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import Sequence

from zhengai.ingest import metrics
from zhengai.ingest.agents import replica
from zhengai.ingest.app import get_app, settings, topic
from zhengai.ingest.records import DeadLetter, Observation
from zhengai.ingest.stream import Rejected, ack, batches, event_source, run_blocking, send, send_dead_letters, utcnow, validate
from zhengai.ingest.topics import DLQ, OBSERVATIONS, VERDICTS
from zhengai.rules.engine import BatchResult, evaluate_batch
from zhengai.rules.loader import RuleSet
from zhengai.rules.reload import RulebookWatcher

__all__ = ["watcher", "current_rules", "evaluate_observations", "evaluate", "reload_rules"]

log = logging.getLogger("zhengai.rules")
app = get_app()
_s = settings()

observations_topic = topic(OBSERVATIONS)
verdicts_topic = topic(VERDICTS)
dlq_topic = topic(DLQ)


@lru_cache(maxsize=1)
def watcher() -> RulebookWatcher:
    return RulebookWatcher(_s.rulebook)


def current_rules() -> RuleSet:
    return watcher().rules


def _evaluate(observations: Sequence[Observation]) -> BatchResult:
    started = time.perf_counter()
    result = evaluate_batch(current_rules(), observations, replica.directory, utcnow(), replay=_s.evaluate_as_observed)
    metrics.EVALUATION_SECONDS.observe(time.perf_counter() - started)
    return result


async def evaluate_observations(observations: Sequence[Observation]) -> BatchResult:
    """Evaluate; an entity the replica does not know yet may be just behind on the directory
    topic, so those are evaluated once more after the replica caught up."""
    result = _evaluate(observations)
    unknown = [obs for obs, code in result.rejected if code == "unknown_entity"]
    if unknown and await replica.catch_up():
        again = _evaluate(unknown)
        keep = [(d, r) for d, r in zip(result.dead_letters, result.rejected) if r[1] != "unknown_entity"]
        result = BatchResult(
            verdicts=result.verdicts + again.verdicts,
            dead_letters=[d for d, _ in keep] + again.dead_letters,
            rejected=[r for _, r in keep] + again.rejected,
        )
    return result


@app.agent(observations_topic, concurrency=1)
async def evaluate(stream):
    """zg.observations → zg.verdicts (and zg.dlq), acked after the broker has both."""
    await replica.wait_ready(_s.directory_wait)
    async for batch in batches(stream, _s.batch_size, _s.batch_within, OBSERVATIONS.name, "evaluate"):
        now = utcnow()
        observations: list[Observation] = []
        sources: dict[int, str] = {}
        rejected: list[tuple[DeadLetter, str]] = []
        for event in batch:
            record = validate(event.value, (Observation,), event_source(event), now)
            if isinstance(record, Rejected):
                rejected.append((record.letter, record.code))
            else:
                observations.append(record)
                sources[id(record)] = event_source(event)
        result = await evaluate_observations(observations)
        rejected += [(d.model_copy(update={"source": sources[id(obs)]}), code)
                     for d, (obs, code) in zip(result.dead_letters, result.rejected)]
        await send(verdicts_topic, result.verdicts, VERDICTS.name)
        for v in result.verdicts:
            metrics.VERDICTS.labels(level=v.level.value, band=v.band.value).inc()
        await send_dead_letters(dlq_topic, rejected)
        await ack(stream, batch)


@app.timer(_s.rules_poll_interval)
async def reload_rules() -> None:
    await run_blocking(watcher().check)
