"""Stream plumbing every agent shares: validation at the edge, batches that are acknowledged only
after their results are durable, sends that wait for the broker, and the directory replica.

Delivery contract (architecture "Commit after delivery"; read against faust-streaming 0.15.3):

* Faust commits, every ``broker_commit_interval``, the highest offset below which *every* message
  of a partition was acknowledged (``Consumer._new_offset``). A message is acknowledged when a
  stream acks its event.
* ``Stream.take()`` / ``take_events()`` ack their buffer in a ``finally`` after the batch is
  yielded — also when the agent body raised and the generator is closed, which would commit a
  batch that never reached the store. ``noack_take()`` never acks: :func:`batches` uses it and
  the agent calls :func:`ack` only after its sink confirmed the batch.
* Faust can commit past an unacknowledged message when acks arrive out of order within a
  partition (faust issue 606: a single gap at the head of the acked run is taken for a compacted
  offset). So every agent here runs with ``concurrency=1``, processes a batch whole, never lets an
  exception out (a crashed and restarted agent would leave exactly such a gap) and acks in
  offset order.
* ``Topic.send()`` inside an agent may *attach* the message to the current event and publish it
  only at commit time; :func:`send` passes ``force=True`` and awaits the broker's acknowledgement
  (``acks=all``) before the batch is acked.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel

from zhengai.ingest import metrics
from zhengai.ingest.directory import Directory
from zhengai.ingest.privacy import dead_letter_raw_kept
from zhengai.ingest.records import DeadLetter, Entity, Person
from zhengai.ingest.retrying import Backoff, async_retrying
from zhengai.ingest.serde import DecodeError, decode, decode_many, encode, encode_batches, key_of
from zhengai.ingest.topics import partition_of

__all__ = [
    "Rejected",
    "source_of",
    "event_source",
    "raw_text",
    "validate",
    "decode_batch",
    "dead_letter_for",
    "BACKLOG",
    "batches",
    "ack",
    "send",
    "send_dead_letters",
    "run_blocking",
    "store_batch",
    "DirectoryReplica",
    "utcnow",
]

log = logging.getLogger("zhengai.stream")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

RAW_BYTES_LIMIT = 48 * 1024  # non-UTF-8 payloads are kept as base64 of at most this many bytes


def utcnow() -> datetime:
    return datetime.now(UTC)


def source_of(topic: str, partition: int, offset: int) -> str:
    return f"kafka:{topic}/{partition}/{offset}"


def raw_text(raw: bytes | None) -> str:
    """The message bytes for a dead letter: the text when it is UTF-8 (DeadLetter masks it and
    bounds its length). Other bytes: the text with undecodable bytes replaced, which DeadLetter
    masks; only where original bytes are kept (``ZHENGAI_DEAD_LETTER_RAW=1``) ``base64:`` and the
    first ``RAW_BYTES_LIMIT`` bytes."""
    if raw is None:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        if not dead_letter_raw_kept():
            return raw[:RAW_BYTES_LIMIT].decode("utf-8", "replace")
        cut = len(raw) - RAW_BYTES_LIMIT
        text = "base64:" + base64.b64encode(raw[:RAW_BYTES_LIMIT]).decode("ascii")
        return text + (f"…[truncated {cut} bytes]" if cut > 0 else "")


@dataclass(frozen=True)
class Rejected:
    letter: DeadLetter
    code: str


def validate(
    raw: bytes | None, accept: tuple[type[BaseModel], ...], source: str, now: datetime
) -> BaseModel | Rejected:
    """Raw message value → a record of one of the ``accept``-ed types, or the dead letter saying why."""
    try:
        record = decode(raw)  # size first, then depth and numbers: limits before the work
    except DecodeError as exc:
        return Rejected(DeadLetter(source=source, reason=str(exc), raw=raw_text(raw), at=now), exc.code)
    if not isinstance(record, accept):
        names = ", ".join(sorted(a.__name__ for a in accept))
        reason = f"a {type(record).__name__} record does not belong on this topic (expected {names})"
        return Rejected(DeadLetter(source=source, reason=reason, raw=raw_text(raw), at=now), "wrong_topic")
    return record


def decode_batch(
    events: Sequence[Any],
    accept: tuple[type[M], ...],
    now: datetime,
) -> tuple[list[tuple[M, str]], list[tuple[DeadLetter, str]]]:
    """A batch of Faust events → the records with their Kafka source, and the dead letters (with
    reason codes) of those that are not records of the ``accept``-ed types. A message may carry
    one record or a batch (``serde``); an item's source ends in ``#<index>`` when its message
    carried several, and a bad item
    is dead-lettered alone while the rest of its message goes on. Every agent decodes through
    this one function."""
    records: list[tuple[M, str]] = []
    rejected: list[tuple[DeadLetter, str]] = []
    for event in events:
        source = event_source(event)
        raw = event.value
        items = decode_many(raw)
        batch = len(items) > 1
        for i, item in enumerate(items):
            where = f"{source}#{i}" if batch else source
            if isinstance(item, DecodeError):
                text = raw_text(raw) if item.item is None else json.dumps(item.item, ensure_ascii=False)
                rejected.append((DeadLetter(source=where, reason=str(item), raw=text, at=now), item.code))
            elif not isinstance(item, accept):
                names = ", ".join(sorted(a.__name__ for a in accept))
                reason = f"a {type(item).__name__} record does not belong on this topic (expected {names})"
                text = raw_text(raw) if not batch else item.model_dump_json()
                rejected.append((DeadLetter(source=where, reason=reason, raw=text, at=now), "wrong_topic"))
            else:
                records.append((item, where))
    return records, rejected


def dead_letter_for(record: BaseModel, source: str, reason: str, now: datetime) -> DeadLetter:
    return DeadLetter(source=source, reason=reason, raw=encode(record).decode("utf-8"), at=now)


# --- batches, acks and sends ------------------------------------------------------------------


class Backlog:
    """Which agents are catching up: an agent whose batches come full has more waiting behind
    them — facts for units that would otherwise be emitted half-complete. The flush waits while
    any agent is catching up, but never longer than its limit (a steady full load must not
    starve it)."""

    def __init__(self) -> None:
        self._full_since: dict[str, float] = {}

    def note(self, agent: str, full: bool) -> None:
        if full:
            self._full_since.setdefault(agent, time.monotonic())
        else:
            self._full_since.pop(agent, None)

    def catching_up(self, limit: float) -> bool:
        now = time.monotonic()
        return any(now - since < limit for since in self._full_since.values())


BACKLOG = Backlog()


async def batches(stream: Any, size: int, within: float, topic: str, agent: str) -> AsyncIterator[list[Any]]:
    """Batches of Faust events that nobody acks but :func:`ack` (see the module docstring)."""
    counter = metrics.RECORDS_IN.labels(topic=topic, agent=agent)
    async for events in stream.noack_take(size, within):
        counter.inc(len(events))
        BACKLOG.note(agent, len(events) >= size)
        yield events


async def ack(stream: Any, events: Sequence[Any]) -> None:
    """Acknowledge a processed batch, in the order it was consumed (offset order per partition)."""
    for event in events:
        await stream.ack(event)


def event_source(event: Any) -> str:
    m = event.message
    return source_of(m.topic, m.partition, m.offset)


async def send(topic: Any, records: Iterable[BaseModel], metric_topic: str, *, partitions: int | None = None) -> int:
    """Produce records keyed by entity and wait until the broker acknowledged every one.

    With ``partitions`` (the topic's partition count) the records go as batch messages: grouped
    by the partition their key maps to (Kafka's default partitioner), in order, so each entity's
    records keep their order on its partition — many records for one message's cost."""
    records = list(records)
    futures = []
    if partitions:
        by_partition: dict[int, list[BaseModel]] = {}
        for record in records:
            by_partition.setdefault(partition_of(key_of(record), partitions), []).append(record)
        for partition, group in sorted(by_partition.items()):
            for carried, value in encode_batches(group):
                futures.append(await topic.send(key=key_of(carried[0]), value=value, partition=partition, force=True))
    else:
        for record in records:
            futures.append(await topic.send(key=key_of(record), value=encode(record), force=True))
    if futures:
        await asyncio.gather(*futures)
        metrics.RECORDS_OUT.labels(topic=metric_topic).inc(len(records))
    return len(records)


async def send_dead_letters(dlq: Any, rejected: Sequence[tuple[DeadLetter, str]]) -> None:
    if not rejected:
        return
    await send(dlq, [letter for letter, _ in rejected], "zg.dlq")
    for letter, code in rejected:
        metrics.count_dead_letter(code)
        log.info("dead letter %s from %s", code, letter.source)


_EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="zhengai-db")


async def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking work (the database) off the event loop, so heartbeats and fetches go on."""
    return await asyncio.get_running_loop().run_in_executor(_EXECUTOR, partial(fn, *args, **kwargs))


# The store is down or the connection broke: wait and write the same batch again, for as long as
# it takes (the batch is not acked meanwhile, so nothing is lost and nothing runs ahead).
def _transient() -> tuple[type[BaseException], ...]:
    from sqlalchemy import exc

    return (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, exc.DisconnectionError, ConnectionError)


async def store_batch(
    write: Callable[[Sequence[T]], Any], items: Sequence[T], what: str
) -> list[tuple[T, BaseException]]:
    """Hand ``items`` to the blocking ``write`` (one store transaction) until the store has them.

    An outage is retried indefinitely, backing off to at most ``STORE_MAX_BACKOFF`` seconds (so a
    store that returns, or a killed worker's partitions picked up elsewhere, resume within
    seconds). Any other error is retried twice (another worker may have written the same keys
    during a rebalance), then the batch is halved until the records the store refuses on their
    own are isolated; those are returned, with the error, for the dead-letter topic — one bad
    record never stops the stream. Retries use the one retry primitive (``ingest.retrying``)."""
    if not items:
        return []
    transient, others = _transient(), 0

    def again(exc: BaseException) -> bool:
        nonlocal others
        metrics.STORE_RETRIES.labels(what=what).inc()
        if isinstance(exc, transient):
            return True
        others += 1
        return others <= 2

    async def once() -> None:
        with metrics.STORE_WRITE_SECONDS.labels(what=what).time():
            await run_blocking(write, items)

    try:
        await async_retrying(
            again,
            _STORE_BACKOFF,
            log=log,
            what=f"store unavailable writing {what}",
            show=lambda exc: type(exc).__name__,
        )(once)
        return []
    except Exception as exc:
        if len(items) == 1:
            log.error("store refused a %s record (%s); it goes to the dead-letter topic", what, type(exc).__name__)
            return [(items[0], exc)]
        mid = len(items) // 2
        return await store_batch(write, items[:mid], what) + await store_batch(write, items[mid:], what)


STORE_MAX_BACKOFF = 5.0
_STORE_BACKOFF = Backoff(0.25, STORE_MAX_BACKOFF, jitter=0.1)


# --- the directory replica ----------------------------------------------------------------------


async def _caught_up(consumer: Any, ends: dict) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


class DirectoryReplica:
    """Every worker's own copy of the entity directory.

    The directory topic is compacted and small (one record per entity and person), and every
    agent needs all of it — roll-ups walk up from a student to the department, routing walks up
    to the responsible person, overrides follow the lineage — whatever partitions the worker owns.
    So each worker reads *all* partitions of the topic from the beginning with a plain consumer
    outside the consumer group and keeps following it. (A Faust GlobalTable would do the same
    through a changelog and table recovery, which is where faust issue 596 lives.)

    ``directory`` is an immutable snapshot, replaced whole when records arrive, so code running
    on a database thread can hold it safely. ``wait_ready()`` returns once the replica has read
    up to the end offsets seen at start.
    """

    def __init__(self, bootstrap_servers: str, topic: str):
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.directory = Directory()
        self._records: dict[tuple[str, str], Entity | Person] = {}
        self._ready = asyncio.Event()
        self._consumer: Any = None
        self._partitions: list[Any] = []
        self.skipped = 0

    # --- for tests and the embedded runtime: a fixed directory, no broker ---------------------
    def use(self, records: Iterable[Entity | Person]) -> None:
        for r in records:
            self._records[(type(r).__name__, r.id)] = r
        self._publish()
        self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            log.warning(
                "directory replica not ready after %.0f s; going on with %d entities", timeout or 0, len(self.directory)
            )
            return False
        return True

    def _publish(self) -> None:
        self.directory = Directory(self._records.values())
        metrics.DIRECTORY_ENTITIES.set(len(self.directory))

    def _apply(self, raw_values: Iterable[bytes | None]) -> int:
        """Take a batch of directory records. Never raises for a record: the topic is compacted,
        so a poison record stays on it for good, and a replica that stopped on it would hold no
        directory at all. ``decode`` has a closed contract (DecodeError only); the guard below
        is the last resort should anything else escape — counted, logged, and the batch goes on."""
        changed = 0
        for raw in raw_values:
            if raw is None:  # a tombstone: the directory has no removal; keep the last record
                continue
            try:
                record = decode(raw)
            except DecodeError:
                self.skipped += 1  # the group's directory agent dead-letters it, once
                continue
            except Exception as exc:  # noqa: BLE001 — see the docstring
                self.skipped += 1
                metrics.REPLICA_SKIPPED.inc()
                log.error("directory replica skipped a record that failed unexpectedly (%s)", type(exc).__name__)
                continue
            if isinstance(record, (Entity, Person)):
                self._records[(type(record).__name__, record.id)] = record
                changed += 1
        return changed

    async def run(self) -> None:
        """Read the topic until cancelled (the worker runs this as an app task)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="zhengai-directory-replica",
        )
        await consumer.start()
        self._consumer = consumer
        try:
            while True:
                # Not subscribed, so the client holds no metadata for the topic: ask for all of it.
                parts = (await consumer._client.fetch_all_metadata()).partitions_for_topic(self.topic)
                if parts:
                    break
                log.warning("directory topic %s not found; retrying", self.topic)
                await asyncio.sleep(1.0)
            self._partitions = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(self._partitions)
            await consumer.seek_to_beginning(*self._partitions)
            start_ends = await consumer.end_offsets(self._partitions)
            if all(v == 0 for v in start_ends.values()):
                self._publish()
                self._ready.set()
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                changed = self._apply(m.value for msgs in batch.values() for m in msgs)
                if self.ready:
                    if changed:
                        self._publish()
                elif await _caught_up(consumer, start_ends):
                    self._publish()
                    self._ready.set()
                    log.info("directory replica ready: %d entities", len(self.directory))
        finally:
            self._consumer = None
            await consumer.stop()

    async def catch_up(self, timeout: float = 5.0) -> bool:
        """Wait until the replica has read everything on the topic *now* — for a batch that names
        an entity the replica does not know yet (it may be just behind)."""
        consumer = self._consumer
        if consumer is None or not self._partitions:
            return False
        deadline = time.monotonic() + timeout
        ends = await consumer.end_offsets(self._partitions)
        while time.monotonic() < deadline:
            if await _caught_up(consumer, ends):
                await asyncio.sleep(0)  # let run() publish what it read
                return True
            await asyncio.sleep(0.05)
        return False
