"""Kafka delivery: records to the zhengai topics with ``acks=all``, returning only once acknowledged.

==========================  ==========================  ===========================================
record                      topic (``prefix`` + name)   key (``serde.key_of``)
==========================  ==========================  ===========================================
Observation                 ``zg.observations``         entity id (batch messages per partition)
AttendanceEvent, Grade…,    ``zg.events``               the entity the event belongs to (batch
FinanceEvent                                            messages per partition)
Entity, Person              ``zg.entities`` (compacted) id (one record per message)
DeadLetter                  ``zg.dlq``                  source (``<connector>.<stream>``)
==========================  ==========================  ===========================================

:meth:`KafkaDelivery.deliver` sends a batch, flushes, and checks every future: it returns only
when the broker acknowledged every record (``acks=all``), and raises otherwise — so the runner
stores the bookmark only after the broker has the batch. The producer is idempotent
(``enable_idempotence``; ``max_in_flight_requests_per_connection`` ≤ 5 keeps order with it, 1
without it), so its own retries never reorder or duplicate a partition's records; a batch that
failed half-way is sent again whole by the next run, which downstream absorbs by idempotency key.

Topics are not created here (they are created explicitly with their partition counts, see
``zhengai.ingest.topics``); a missing topic shows as a delivery that times out on metadata.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from zhengai.ingest import serde, topics
from zhengai.ingest.records import (
    AttendanceEvent,
    DeadLetter,
    Entity,
    FinanceEvent,
    GradeEvent,
    Observation,
    Person,
)

from . import _metrics
from .base import Record
from .errors import FatalDeliveryError, RetryableDeliveryError

__all__ = ["KafkaDelivery", "TOPIC_OF", "topic_names"]

log = logging.getLogger("zhengai.connectors")

# Record type → topic spec. One table, so adding a record type is one line.
TOPIC_OF: Mapping[type, topics.TopicSpec] = {
    Observation: topics.OBSERVATIONS,
    AttendanceEvent: topics.EVENTS,
    GradeEvent: topics.EVENTS,
    FinanceEvent: topics.EVENTS,
    Entity: topics.ENTITIES,
    Person: topics.ENTITIES,
    DeadLetter: topics.DLQ,
}


def topic_names(prefix: str = "") -> dict[str, str]:
    """The topics a KafkaDelivery with ``prefix`` writes to, by their unprefixed names."""
    return {spec.name: prefix + spec.name for spec in dict.fromkeys(TOPIC_OF.values())}


class KafkaDelivery:
    """A :class:`~zhengai.connectors.base.Delivery` onto Kafka with kafka-python.

    ``producer`` may be injected (tests, a shared producer); otherwise one is created from
    ``bootstrap_servers`` and ``producer_config`` (e.g. SASL settings), and closed by
    :meth:`close`. ``timeout`` bounds one ``deliver()`` call in seconds.
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] | None = None,
        *,
        topic_prefix: str = "",
        producer: Any = None,
        timeout: float = 60.0,
        idempotence: bool = True,
        client_id: str = "zhengai-connectors",
        **producer_config: Any,
    ) -> None:
        self.topic_prefix = topic_prefix
        self.timeout = timeout
        self._topics = {cls: topic_prefix + spec.name for cls, spec in TOPIC_OF.items()}
        self._owns_producer = producer is None
        if producer is None:
            if not bootstrap_servers:
                raise ValueError("KafkaDelivery needs bootstrap_servers or a producer")
            producer = _producer(bootstrap_servers, idempotence=idempotence, client_id=client_id, **producer_config)
        self._producer = producer
        self._partition_counts: dict[str, int] = {}
        self.bootstrap_servers = bootstrap_servers

    def topic_of(self, record: Record) -> str:
        try:
            return self._topics[type(record)]
        except KeyError:
            raise FatalDeliveryError(f"no topic for {type(record).__name__} records") from None

    def _partitions(self, topic: str) -> int:
        n = self._partition_counts.get(topic)
        if n is None:
            parts = self._producer.partitions_for(topic)  # waits for metadata (max_block_ms)
            if not parts:
                from kafka.errors import KafkaTimeoutError

                raise KafkaTimeoutError(f"no partitions for {topic}")
            n = self._partition_counts[topic] = len(parts)
        return n

    def deliver(self, records: Sequence[Record]) -> None:
        """Send every record, wait for the broker, and raise unless all were acknowledged.

        Records for a batched topic (observations, events) go as batch messages, one per
        partition run (``serde.encode_batches``): grouped by the partition their own key maps to,
        in order, so each entity's records stay ordered. Directory records and dead letters go
        one per message (the directory topic is compacted by key)."""
        from kafka.errors import KafkaError, KafkaTimeoutError

        start = time.monotonic()
        futures = []  # (topic, records in the message, future)
        try:
            grouped: dict[tuple[str, int], list[Record]] = {}
            for record in records:
                topic = self.topic_of(record)
                if TOPIC_OF[type(record)].batched:
                    partition = topics.partition_of(serde.key_of(record), self._partitions(topic))
                    grouped.setdefault((topic, partition), []).append(record)
                else:
                    futures.append(
                        (topic, 1, self._producer.send(topic, key=serde.key_of(record), value=serde.encode(record)))
                    )
            for (topic, partition), group in grouped.items():
                for carried, value in serde.encode_batches(group):
                    futures.append(
                        (
                            topic,
                            len(carried),
                            self._producer.send(topic, key=serde.key_of(carried[0]), value=value, partition=partition),
                        )
                    )
            self._producer.flush(timeout=self.timeout)
        except KafkaTimeoutError as exc:
            raise RetryableDeliveryError(
                f"Kafka did not acknowledge ({exc}); is the broker up and do the topics exist?"
            ) from None
        except KafkaError as exc:
            raise _delivery_error(exc, "send") from None
        failed: list[tuple[str, BaseException]] = []
        for topic, _, future in futures:
            if not future.is_done:
                failed.append((topic, KafkaTimeoutError("not acknowledged after flush")))
            elif future.failed():
                failed.append((topic, future.exception))
        if failed:
            topic, first = failed[0]
            raise _delivery_error(first, f"{len(failed)} of {len(futures)} messages to {topic}")
        elapsed = time.monotonic() - start
        _metrics.DELIVERY_SECONDS.observe(elapsed)
        counts: dict[str, int] = {}
        for topic, n, _ in futures:
            counts[topic] = counts.get(topic, 0) + n
        for topic, n in counts.items():
            _metrics.PRODUCED.labels(topic).inc(n)
        log.debug("delivered %d records in %d messages in %.3fs: %s", len(records), len(futures), elapsed, counts)

    def close(self) -> None:
        if self._owns_producer and self._producer is not None:
            self._producer.close(timeout=self.timeout)
            self._producer = None

    def __enter__(self) -> KafkaDelivery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KafkaDelivery({self.bootstrap_servers!r}, topic_prefix={self.topic_prefix!r})"


def _producer(bootstrap_servers: str | Sequence[str], *, idempotence: bool, client_id: str, **config: Any) -> Any:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    settings: dict[str, Any] = {
        "acks": "all",
        "retries": 2**31 - 1,  # bounded by delivery_timeout_ms, as the Java client does
        "enable_idempotence": idempotence,
        # Idempotence keeps order with up to 5 requests in flight; without it only 1 does.
        "max_in_flight_requests_per_connection": 5 if idempotence else 1,
        "delivery_timeout_ms": 120_000,
        "max_block_ms": 30_000,
        "linger_ms": 5,
        # kafka-python backs reconnects off to 30 s by default: a broker back after an outage
        # would stay unused for up to half a minute. Probe every 2 s at most instead.
        "reconnect_backoff_max_ms": 2_000,
        "client_id": client_id,
    }
    settings.update(config)
    try:
        return KafkaProducer(bootstrap_servers=bootstrap_servers, **settings)
    except KafkaError as exc:
        raise RetryableDeliveryError(f"cannot reach Kafka at {bootstrap_servers!r}: {type(exc).__name__}") from None


def _delivery_error(exc: BaseException, what: str) -> Exception:
    name = type(exc).__name__
    if getattr(exc, "retriable", False):
        return RetryableDeliveryError(f"{what}: {name}: {exc}")
    return FatalDeliveryError(f"{what}: {name}: {exc}")
