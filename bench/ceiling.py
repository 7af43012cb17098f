"""The same-run ceiling for bench_stream: the worker's work without its framework.

A bare aiokafka consumer (no group, no Faust) reads a topic of observation batch messages from the
beginning and does per batch what the worker does per batch, in one process and loop:

* ``bare``: decode → the project's evaluator → one COPY of the verdict rows into PostgreSQL;
* ``full``: decode → ``Judge.judge`` (evaluation, observations, verdicts, lifecycle and outbox
  in one transaction) → the verdicts published as batch messages, as the worker publishes them.

Both read the same messages the worker read, into a database of their own; the figure is what
the framework and its plumbing cost, measured on the same machine in the same run.
"""

from __future__ import annotations

import asyncio
import io
import resource
import time
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Ceiling", "run_ceiling"]


@dataclass
class Ceiling:
    mode: str
    observations: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.observations / self.seconds

    def line(self) -> str:
        return (
            f"  ceiling ({self.mode}): {self.observations} observations in {self.seconds:.2f} s"
            f" → {self.rate:.0f} obs/s, "
            f"{1000 * self.cpu_seconds / self.observations:.3f} ms CPU per observation"
        )


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run_ceiling(
    mode: str,
    broker: str,
    topic: str,
    url: str,
    directory,
    expected: int,
    verdicts_topic: str | None = None,
    t0: float | None = None,
) -> Ceiling:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from zhengai.ingest.aggregator import Aggregator
    from zhengai.ingest.records import Observation, period_start
    from zhengai.ingest.serde import DecodeError, decode_many, encode_batches, key_of
    from zhengai.ingest.topics import partition_of
    from zhengai.rules.engine import evaluate_batch
    from zhengai.rules.loader import load_rulebook
    from zhengai.warnings.judge import Judge
    from zhengai.warnings.service import WarningService
    from zhengai.warnings.store import WarningStore

    rules = load_rulebook()
    store = WarningStore(url)
    store.create_schema()
    judge = None
    if mode == "full":
        aggregator = Aggregator(store.engine)
        aggregator.create_schema()
        service = WarningService(store, lambda: rules, lambda: directory, channels=("console",))
        judge = Judge(service, aggregator, lambda: rules, lambda: directory, replay=True)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=5) if verdicts_topic else None
    await consumer.start()
    if producer:
        await producer.start()
    columns = (
        "key",
        "rule_id",
        "rule_version",
        "level",
        "entity_id",
        "metric",
        "period",
        "value",
        "band",
        "reason",
        "thresholds",
        "observed_at",
        "evaluated_at",
        "period_start",
    )
    try:
        parts = (await consumer._client.fetch_all_metadata()).partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        # t0: when a producer started writing the topic while this reads it (as the worker is measured)
        got, cpu0, start = 0, _cpu(), time.monotonic() if t0 is None else t0
        while got < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            observations = [
                r
                for msgs in batch.values()
                for m in msgs
                for r in decode_many(m.value)
                if not isinstance(r, DecodeError) and isinstance(r, Observation)
            ]
            if not observations:
                continue
            got += len(observations)
            now = datetime.now(UTC)
            if judge is not None:
                outcome = judge.judge([(o, "bench") for o in observations], now)
                verdicts = outcome.verdicts
            else:
                verdicts = evaluate_batch(rules, observations, directory, now, replay=True).verdicts
                buf = io.StringIO()
                for v in verdicts:
                    buf.write(
                        "\t".join(
                            [
                                v.key,
                                v.rule_id,
                                v.rule_version,
                                v.level.value,
                                v.entity_id,
                                v.metric,
                                v.period,
                                "\\N" if v.value is None else repr(float(v.value)),
                                v.band.value,
                                v.reason.replace("\t", " "),
                                v.thresholds.model_dump_json(),
                                v.observed_at.isoformat() if v.observed_at else "\\N",
                                v.evaluated_at.isoformat(),
                                period_start(v.period).isoformat(),
                            ]
                        )
                        + "\n"
                    )
                buf.seek(0)
                with store.engine.begin() as conn:
                    with conn.connection.cursor() as cur:
                        cur.copy_expert(f"COPY verdicts ({', '.join(columns)}) FROM STDIN", buf)
            if producer and verdicts:
                groups: dict[int, list] = {}
                for v in verdicts:
                    groups.setdefault(partition_of(key_of(v), 6), []).append(v)
                sends = [
                    await producer.send(verdicts_topic, value=value, key=key_of(carried[0]), partition=p)
                    for p, vs in groups.items()
                    for carried, value in encode_batches(vs)
                ]
                await asyncio.gather(*sends)
        return Ceiling(mode, got, time.monotonic() - start, _cpu() - cpu0)
    finally:
        await consumer.stop()
        if producer:
            await producer.stop()
        store.engine.dispose()
