"""Kafka topics: names, partition counts and configs, in one place.

Every topic is keyed by entity id so one entity's records stay ordered within a partition.
Topics are created explicitly (never auto-created) because Faust needs the source topics and
table changelogs to agree on partition counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "TopicSpec",
    "TOPICS",
    "check_topic_prefix",
    "partition_of",
    "OBSERVATIONS",
    "EVENTS",
    "ENTITIES",
    "VERDICTS",
    "TRANSITIONS",
    "DLQ",
]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    doc: str = ""
    # Producers of this project send batch messages here (``serde.encode_batches``, per partition);
    # readers take single-record messages as well. Never on the compacted directory topic.
    batched: bool = False


OBSERVATIONS = TopicSpec("zg.observations", 6, doc="metric observations from connectors and aggregation", batched=True)
EVENTS = TopicSpec(
    "zg.events", 6, doc="raw events (attendance, grades, finance lines) before aggregation", batched=True
)
ENTITIES = TopicSpec(
    "zg.entities", 3, {"cleanup.policy": "compact"}, doc="the entity directory and persons, latest per key"
)
VERDICTS = TopicSpec("zg.verdicts", 6, doc="stored rule verdicts, a side output for other consumers", batched=True)
TRANSITIONS = TopicSpec("zg.warnings", 3, doc="warning transitions (opened, severity, resolved …)")
DLQ = TopicSpec(
    "zg.dlq", 3, {"retention.ms": str(30 * 24 * 3600 * 1000)}, doc="dead letters with reason, raw bytes and source"
)

TOPICS: tuple[TopicSpec, ...] = (OBSERVATIONS, EVENTS, ENTITIES, VERDICTS, TRANSITIONS, DLQ)


def check_topic_prefix(value: str) -> str:
    """A topic-name prefix (isolates tests and tenants): letters, digits, '.', '_' and '-' only."""
    if value and not all(c.isalnum() or c in "._-" for c in value):
        raise ValueError("topic_prefix may contain letters, digits, '.', '_' and '-' only")
    return value


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as in the Java client, aiokafka and
    kafka-python) chooses for a key: producers that batch records per partition use it to put
    each batch where its records' own keys would have gone."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions
