"""Warnings agents: observations judged and stored in one hop, derived units flushed, the
directory stored.

Thin by design: the one hop is ``zhengai.warnings.judge.Judge`` — the object the embedded runner
drives too. Each batch is evaluated and written in **one transaction** (observations, verdicts,
warning states, events, outbox); only after it committed are the side outputs published —
verdicts on ``zg.verdicts`` as batch messages (unless ``publish_verdicts`` is off), committed transitions on
``zg.warnings`` (one ``WarningTransition`` each, keyed by entity), dead letters on ``zg.dlq`` — and
only after the broker has them is the batch acked: at least once. Writes are idempotent per
verdict key, so a batch redelivered after a crash, restart or rebalance changes nothing and yields
no transitions; a duplicate transition arises only from a crash between the commit and the send,
and consumers dedupe by ``(warning_id, kind, at)``. The store never reads the side outputs back.
Transitions made outside the worker (people's actions, the notifier's clock) are not published here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from functools import lru_cache

from pydantic import BaseModel

from zhengai.ingest import metrics
from zhengai.ingest.agents import aggregator, replica
from zhengai.ingest.app import get_app, settings, topic
from zhengai.ingest.records import Entity, Observation, Person
from zhengai.ingest.stream import (
    BACKLOG,
    ack,
    batches,
    dead_letter_for,
    decode_batch,
    run_blocking,
    send,
    send_dead_letters,
    store_batch,
    utcnow,
)
from zhengai.ingest.topics import DLQ, ENTITIES, OBSERVATIONS, TRANSITIONS, VERDICTS
from zhengai.rules.agents import current_rules
from zhengai.warnings.judge import Judge, Outcome
from zhengai.warnings.service import WarningService, wire_transition
from zhengai.warnings.store import WarningStore

__all__ = ["store", "service", "judge", "judge_observations", "flush_units", "store_directory"]

log = logging.getLogger("zhengai.warnings")
app = get_app()
_s = settings()

observations_topic = topic(OBSERVATIONS)
entities_topic = topic(ENTITIES)
verdicts_topic = topic(VERDICTS)
transitions_topic = topic(TRANSITIONS)
dlq_topic = topic(DLQ)


@lru_cache(maxsize=1)
def store() -> WarningStore:
    return WarningStore(_s.store_url.get_secret_value())


@lru_cache(maxsize=1)
def service() -> WarningService:
    return WarningService(store(), current_rules, lambda: replica.directory, channels=_s.notify_channels)


@lru_cache(maxsize=1)
def judge() -> Judge:
    return Judge(service(), aggregator(), current_rules, lambda: replica.directory, replay=_s.evaluate_as_observed)


def _wire(outcome: Outcome) -> list[BaseModel]:
    """The ``zg.warnings`` records of committed transitions. One that cannot be built is logged
    and skipped (it is in ``warning_events``): the agent must never raise after a commit."""
    levels = {v.rule_id: v.level for v in outcome.verdicts}  # transitions here are caused by these verdicts
    out: list[BaseModel] = []
    for a in outcome.transitions:
        try:
            out.append(wire_transition(a, levels[a.state.rule_id]))
        except Exception as exc:  # noqa: BLE001 — a bug, not an outage: keep the stream going
            log.error(
                "warning %d %s not published: %s",
                a.warning_id,
                a.transition.kind.value,
                type(exc).__name__,
                extra={"warning": a.warning_id, "rule": a.state.rule_id},
            )
    return out


async def _publish(outcome: Outcome, refused: Sequence[tuple[tuple[Observation, str], BaseException]]) -> None:
    """The side outputs of committed work, each acknowledged by the broker before the caller acks."""
    if _s.publish_verdicts:
        await send(
            verdicts_topic,
            outcome.verdicts,
            VERDICTS.name,
            partitions=VERDICTS.partitions if VERDICTS.batched else None,
        )
    await send(transitions_topic, _wire(outcome), TRANSITIONS.name)
    now = utcnow()
    letters = outcome.dead_letters + [
        (
            dead_letter_for(obs, source, f"the store refused the observation: {type(exc).__name__}", now),
            "store_rejected",
        )
        for (obs, source), exc in refused
    ]
    await send_dead_letters(dlq_topic, letters)


async def _store(items: list[tuple[Observation, str]]) -> tuple[Outcome, list]:
    """Judge and store ``items`` (one transaction per slice; outages waited out, refused records
    isolated)."""
    outcome = Outcome()
    refused = await store_batch(lambda part: outcome.add(judge().judge(part, utcnow())), items, "observations")
    return outcome, refused


async def _judge(items: list[tuple[Observation, str]]) -> Outcome:
    """Judge and store ``items``; then publish what committed."""
    outcome, refused = await _store(items)
    await _publish(outcome, refused)
    return outcome


def _report_failure(done: asyncio.Future) -> None:
    """A failed publish is raised in the agent with the next batch; say so at once, too."""
    if not done.cancelled() and done.exception() is not None:
        log.error(
            "publishing a judged batch failed (%s); it is not acked and will be redelivered",
            type(done.exception()).__name__,
        )


@app.agent(observations_topic, concurrency=1)
async def judge_observations(stream):
    """zg.observations → evaluated and stored in one transaction → side outputs → ack.

    Pipelined by one batch: while the broker acknowledges batch N's side outputs, batch N+1 is
    decoded, judged and stored. Acks stay in offset order — batch N is acked (after its outputs
    are acknowledged) before batch N+1's outputs are even sent — so the delivery contract holds."""
    await replica.wait_ready(_s.directory_wait)  # thresholds and routing need the directory
    previous: asyncio.Future | None = None

    async def finish(outcome: Outcome, refused: list, rejected: list, batch: list) -> None:
        await _publish(outcome, refused)
        await send_dead_letters(dlq_topic, rejected)
        await ack(stream, batch)

    try:
        async for batch in batches(stream, _s.batch_size, _s.batch_within, OBSERVATIONS.name, "judge"):
            items, rejected = decode_batch(batch, (Observation,), utcnow())
            if any(not replica.directory.placed(o.entity_id) for o, _ in items):
                await replica.catch_up()  # the replica may be just behind the directory topic
            outcome, refused = await _store(items)
            if outcome.parked:
                metrics.PARKED.inc(outcome.parked)
            if previous is not None:
                await previous  # batch N published and acked before N+1 is
            previous = asyncio.ensure_future(finish(outcome, refused, rejected, batch))
            previous.add_done_callback(_report_failure)
    finally:
        if previous is not None and not previous.done():
            previous.cancel()  # not acked: redelivered after a restart (every write is idempotent)


@app.timer(_s.window_flush_interval)
async def flush_units() -> None:
    """Judge parked observations whose entity arrived, dead-letter those that waited too long, and
    emit due units of derived metrics — judged in the same one hop — releasing them afterwards. A
    failure leaves the units leased; they are claimed again when the lease runs out."""
    if not replica.ready or BACKLOG.catching_up(_s.catchup_wait):
        return  # more facts for the same units are on their way: emit once they are in
    agg = aggregator()
    try:
        now = utcnow()
        outcome = await run_blocking(judge().unpark, now)
        await _publish(outcome, [])
        expired = await run_blocking(judge().expire, now, timedelta(seconds=_s.park_wait))
        await send_dead_letters(dlq_topic, expired)
        while True:
            now = utcnow()
            emitted = await run_blocking(agg.step, replica.directory, now, lease=timedelta(seconds=_s.window_lease))
            if not emitted.refs:
                break
            await _judge([(o, o.source) for o in emitted.observations])
            await run_blocking(agg.release, emitted.refs, utcnow())
            for r in emitted.refs:
                metrics.UNITS_EMITTED.labels(kind=r.kind).inc()
        metrics.UNITS_PENDING.set(await run_blocking(agg.pending))
    except Exception as exc:  # the leases expire and the units are claimed again
        log.warning("unit flush failed (%s); claimed units are retried after their lease", type(exc).__name__)


@app.agent(entities_topic, concurrency=1)
async def store_directory(stream):
    """zg.entities → the entities and persons tables; a change marks every unit that reads the
    directory (each worker also keeps the whole directory in memory: ``replica``)."""
    async for batch in batches(stream, _s.batch_size, _s.batch_within, ENTITIES.name, "store_directory"):
        now = utcnow()
        records, rejected = decode_batch(batch, (Entity, Person), now)
        rejected = [(d, code) for d, code in rejected if code != "tombstone"]  # legitimate on a compacted topic
        sources = {id(r): source for r, source in records}

        def write(rs, now=now):
            if store().directory.upsert(rs, replica.directory):
                aggregator().directory_changed(now)

        await replica.catch_up()  # store department/major as the directory knows them now
        refused = await store_batch(write, [r for r, _ in records], "directory")
        rejected += [
            (
                dead_letter_for(
                    r, sources[id(r)], f"the store refused the directory record: {type(exc).__name__}", now
                ),
                "store_rejected",
            )
            for r, exc in refused
        ]
        await send_dead_letters(dlq_topic, rejected)
        await ack(stream, batch)
