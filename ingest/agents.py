"""Ingest agents: raw events → validated tallies → weekly windows → observations; the directory
replica; consumer lag.

Thin by design: validation is ``zhengai.ingest.stream.validate``, the window state and its
formulas are ``zhengai.ingest.windows`` over ``zhengai.ingest.aggregate``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import lru_cache

from zhengai.ingest import metrics
from zhengai.ingest.app import get_app, settings, topic
from zhengai.ingest.records import AttendanceEvent, FinanceEvent, GradeEvent
from zhengai.ingest.stream import (
    DirectoryReplica, Rejected, ack, batches, dead_letter_for, event_source, run_blocking, send, send_dead_letters,
    store_batch, utcnow, validate,
)
from zhengai.ingest.topics import DLQ, ENTITIES, EVENTS, OBSERVATIONS
from zhengai.ingest.windows import AttendanceWindows

__all__ = ["replica", "windows_store", "attendance", "flush_windows"]

log = logging.getLogger("zhengai.ingest")
app = get_app()
_s = settings()

replica = DirectoryReplica(_s.bootstrap_servers, _s.topic(ENTITIES.name))
events_topic = topic(EVENTS)
observations_topic = topic(OBSERVATIONS)
dlq_topic = topic(DLQ)


@lru_cache(maxsize=1)
def windows_store() -> AttendanceWindows:
    return AttendanceWindows(_s.store_url.get_secret_value())


@app.task
async def follow_directory() -> None:
    """Keep the directory replica following zg.entities; a broken connection is retried, not fatal."""
    while True:
        try:
            await replica.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("directory replica stopped (%s); restarting in 2 s", type(exc).__name__)
            await asyncio.sleep(2.0)


@app.agent(events_topic, concurrency=1)
async def attendance(stream):
    """zg.events → tallies and dirty windows in the database (one transaction), then ack."""
    await replica.wait_ready(_s.directory_wait)
    async for batch in batches(stream, _s.batch_size, _s.batch_within, EVENTS.name, "attendance"):
        now = utcnow()
        tallies, sources, rejected = [], {}, []
        for event in batch:
            record = validate(event.value, (AttendanceEvent, GradeEvent, FinanceEvent), event_source(event), now)
            if isinstance(record, Rejected):
                rejected.append((record.letter, record.code))
            elif isinstance(record, AttendanceEvent):
                tallies.append(record)
                sources[id(record)] = event_source(event)
            else:
                metrics.EVENTS_UNAGGREGATED.labels(kind=record.kind).inc()  # grades, finance: embedded runner only
        refused = await store_batch(lambda evs: windows_store().record(evs, replica.directory, now), tallies, "attendance")
        rejected += [(dead_letter_for(e, sources[id(e)], f"the store refused the event: {type(exc).__name__}", now), "store_rejected")
                     for e, exc in refused]
        await send_dead_letters(dlq_topic, rejected)
        await ack(stream, batch)


@app.timer(_s.window_flush_interval)
async def flush_windows() -> None:
    """Emit closed, settled windows as observations; release them after the broker acked."""
    if not replica.ready:
        return
    try:
        while True:
            now = utcnow()
            refs = await run_blocking(windows_store().claim, now, grace=timedelta(seconds=_s.window_grace),
                                      settle=timedelta(seconds=_s.window_settle))
            if not refs:
                return
            observations = await run_blocking(windows_store().observations, refs, replica.directory)
            await send(observations_topic, observations, OBSERVATIONS.name)
            await run_blocking(windows_store().release, refs, utcnow())
            for r in refs:
                metrics.WINDOWS_EMITTED.labels(kind=r.kind).inc()
    except Exception as exc:  # the leases expire and the windows are claimed again
        log.warning("window flush failed (%s); claimed windows are retried after their lease", type(exc).__name__)


@app.timer(_s.lag_interval)
async def measure_lag() -> None:
    """Consumer lag of this worker's partitions: end offset − offset the group committed."""
    consumer = app.consumer
    try:
        assigned = consumer.assignment()
        if not assigned:
            return
        committed = await _group_offsets()
        prefix = _s.topic_prefix
        labels = set()
        for tp in assigned:
            high = consumer.highwater(tp)
            if high is None:
                continue
            done = committed.get((tp.topic, tp.partition), 0)
            label = (tp.topic.removeprefix(prefix), str(tp.partition))
            metrics.CONSUMER_LAG.labels(*label).set(max(0, high - done))
            labels.add(label)
        for label in _lag_labels - labels:  # partitions another worker owns now
            metrics.CONSUMER_LAG.remove(*label)
        _lag_labels.clear()
        _lag_labels.update(labels)
    except Exception as exc:  # a metric must never take the worker down
        log.debug("lag measurement failed: %s", type(exc).__name__)


_admin = None
_lag_labels: set[tuple[str, str]] = set()


async def _group_offsets() -> dict[tuple[str, int], int]:
    global _admin
    from aiokafka.admin import AIOKafkaAdminClient

    if _admin is None:
        _admin = AIOKafkaAdminClient(bootstrap_servers=_s.bootstrap_servers, client_id="zhengai-lag")
        await _admin.start()
    offsets = await _admin.list_consumer_group_offsets(_s.app_id)
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
