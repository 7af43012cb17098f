"""Ingest agents: raw events → stored facts and dirty units; the directory replica; consumer lag.

Thin by design: decoding is ``zhengai.ingest.stream.decode_batch``, the facts, units and their
formulas are ``zhengai.ingest.aggregator.Aggregator`` (the same object the embedded runner
drives). The units are emitted and judged by the flush timer in ``zhengai.warnings.agents``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import lru_cache

from zhengai.ingest import metrics
from zhengai.ingest.aggregator import Aggregator
from zhengai.ingest.app import get_app, settings, topic
from zhengai.ingest.processors import Timing
from zhengai.ingest.records import AttendanceEvent, FinanceEvent, GradeEvent
from zhengai.ingest.stream import (
    DirectoryReplica,
    ack,
    batches,
    dead_letter_for,
    decode_batch,
    send_dead_letters,
    store_batch,
    utcnow,
)
from zhengai.ingest.topics import DLQ, ENTITIES, EVENTS

__all__ = ["replica", "aggregator", "record_events"]

log = logging.getLogger("zhengai.ingest")
app = get_app()
_s = settings()

replica = DirectoryReplica(_s.bootstrap_servers, _s.topic(ENTITIES.name))
events_topic = topic(EVENTS)
dlq_topic = topic(DLQ)


@lru_cache(maxsize=1)
def aggregator() -> Aggregator:
    timing = Timing(
        grace=timedelta(seconds=_s.window_grace),
        settle=timedelta(seconds=_s.window_settle),
        directory_settle=timedelta(seconds=_s.directory_settle),
    )
    return Aggregator(_s.store_url.get_secret_value(), timing=timing)


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
async def record_events(stream):
    """zg.events → facts and dirty units in the database (one transaction), then ack."""
    async for batch in batches(stream, _s.batch_size, _s.batch_within, EVENTS.name, "record_events"):
        now = utcnow()
        records, rejected = decode_batch(batch, (AttendanceEvent, GradeEvent, FinanceEvent), now)
        sources = {id(r): source for r, source in records}
        events = [r for r, _ in records]

        def record(evs, now=now):
            return aggregator().record(evs, now)

        refused = await store_batch(record, events, "events")
        rejected += [
            (
                dead_letter_for(e, sources[id(e)], f"the store refused the event: {type(exc).__name__}", now),
                "store_rejected",
            )
            for e, exc in refused
        ]
        await send_dead_letters(dlq_topic, rejected)
        await ack(stream, batch)


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
