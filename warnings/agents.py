"""Warnings agents: verdicts, observations and the directory into the store.

Thin by design: verdicts go through ``WarningService.handle`` — the one place both runtimes turn
verdicts into warnings — whose writes are idempotent per verdict key, so a batch redelivered after
a crash, restart or rebalance changes nothing. A batch is acked only after its transaction
committed (``zhengai.ingest.stream.store_batch`` waits out outages and isolates refused records).

Every transition the store committed is then published on ``zg.warnings`` (one
``WarningTransition`` each, keyed by entity) and the batch is acked only after the broker has
them: at least once. A redelivered batch whose verdicts were stored yields no transitions, so a
duplicate arises only from a crash between the commit and the send; consumers dedupe by
``(warning_id, kind, at)``. Transitions made outside the worker (people's actions, the notifier's
escalation and staleness clock) are not published here.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Sequence

from pydantic import BaseModel

from zhengai.ingest.agents import replica
from zhengai.ingest.app import get_app, settings, topic
from zhengai.ingest.records import DeadLetter, Entity, Observation, Person, Verdict, period_sort_key
from zhengai.ingest.stream import (
    Rejected, ack, batches, dead_letter_for, event_source, send, send_dead_letters, store_batch, utcnow, validate,
)
from zhengai.ingest.topics import DLQ, ENTITIES, OBSERVATIONS, TRANSITIONS, VERDICTS
from zhengai.rules.agents import current_rules
from zhengai.warnings.service import WarningService, wire_transition
from zhengai.warnings.store import WarningStore

__all__ = ["store", "service", "store_verdicts", "store_observations", "store_directory"]

log = logging.getLogger("zhengai.warnings")
app = get_app()
_s = settings()

verdicts_topic = topic(VERDICTS)
observations_topic = topic(OBSERVATIONS)
entities_topic = topic(ENTITIES)
dlq_topic = topic(DLQ)
transitions_topic = topic(TRANSITIONS)


@lru_cache(maxsize=1)
def store() -> WarningStore:
    return WarningStore(_s.store_url.get_secret_value())


@lru_cache(maxsize=1)
def service() -> WarningService:
    return WarningService(store(), current_rules, lambda: replica.directory, channels=_s.notify_channels)


def _decode(batch: Sequence, accept: tuple[type[BaseModel], ...]):
    """Records with their Kafka source, and the dead letters of those that are not records."""
    now = utcnow()
    records, sources, rejected = [], {}, []
    for event in batch:
        record = validate(event.value, accept, event_source(event), now)
        if isinstance(record, Rejected):
            rejected.append((record.letter, record.code))
        else:
            records.append(record)
            sources[id(record)] = event_source(event)
    return records, sources, rejected


def _refused(refused, sources, what: str) -> list[tuple[DeadLetter, str]]:
    now = utcnow()
    return [(dead_letter_for(r, sources[id(r)], f"the store refused the {what}: {type(exc).__name__}", now), "store_rejected")
            for r, exc in refused]


def _wire(applied, verdicts: Sequence[Verdict]) -> list[BaseModel]:
    """The ``zg.warnings`` records of committed transitions. One that cannot be built is logged
    and skipped (it is in ``warning_events``): the agent must never raise after a commit."""
    levels = {v.rule_id: v.level for v in verdicts}  # transitions here are caused by these verdicts
    out = []
    for a in applied:
        try:
            out.append(wire_transition(a, levels[a.state.rule_id]))
        except Exception as exc:  # noqa: BLE001 — a bug, not an outage: keep the stream going
            log.error("warning %d %s not published: %s", a.warning_id, a.transition.kind.value, type(exc).__name__)
    return out


@app.agent(verdicts_topic, concurrency=1)
async def store_verdicts(stream):
    """zg.verdicts → WarningService.handle (verdicts, lifecycle, outbox in one transaction)."""
    await replica.wait_ready(_s.directory_wait)  # routing needs the directory
    async for batch in batches(stream, _s.batch_size, _s.batch_within, VERDICTS.name, "store_verdicts"):
        verdicts, sources, rejected = _decode(batch, (Verdict,))
        # Each series in time order; stable, so two verdicts of one period keep their arrival order.
        verdicts.sort(key=lambda v: (v.rule_id, v.entity_id, period_sort_key(v.period)))
        applied = []  # what each committed transaction applied (a refused part commits nothing)
        refused = await store_batch(lambda vs: applied.extend(service().handle(vs)), verdicts, "verdicts")
        await send(transitions_topic, _wire(applied, verdicts), TRANSITIONS.name)
        await send_dead_letters(dlq_topic, rejected + _refused(refused, sources, "verdict"))
        await ack(stream, batch)


@app.agent(observations_topic, concurrency=1)
async def store_observations(stream):
    """zg.observations → the observations table (latest value per key). Records that are not
    observations are dead-lettered by the evaluation agent on the same topic, not here."""
    # Not on the way to a warning, so it takes bigger, slower batches: the store's cost per row
    # falls with the batch, and this agent's queue lets the evaluation agent run ahead meanwhile.
    async for batch in batches(stream, 4 * _s.batch_size, 5 * _s.batch_within, OBSERVATIONS.name, "store_observations"):
        observations, sources, _ = _decode(batch, (Observation,))
        refused = await store_batch(store().add_observations, observations, "observations")
        await send_dead_letters(dlq_topic, _refused(refused, sources, "observation"))
        await ack(stream, batch)


@app.agent(entities_topic, concurrency=1)
async def store_directory(stream):
    """zg.entities → the entities and persons tables (each worker also keeps the whole directory
    in memory: ``zhengai.ingest.agents.replica``)."""
    async for batch in batches(stream, _s.batch_size, _s.batch_within, ENTITIES.name, "store_directory"):
        records, sources, rejected = _decode(batch, (Entity, Person))
        rejected = [(d, code) for d, code in rejected if code != "tombstone"]  # legitimate on a compacted topic
        refused = await store_batch(lambda rs: store().upsert_directory(rs, replica.directory), records, "directory")
        await send_dead_letters(dlq_topic, rejected + _refused(refused, sources, "directory record"))
        await ack(stream, batch)
