"""The real-service fixtures work: Kafka round trip on per-test topics, topic configs, and a fresh,
isolated PostgreSQL database per test (deploy/local/services.sh; `make test` starts both)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from zhengai.ingest.topics import ENTITIES

pytestmark = pytest.mark.integration


def _consume(bootstrap: str, topic: str, expected: int, group: str, timeout_s: float = 60.0) -> list:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False
    )
    records = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def test_kafka_round_trip_on_a_per_test_topic(kafka_bootstrap, kafka_topics):
    [topic] = kafka_topics("roundtrip", partitions=3)
    assert topic.startswith(kafka_topics.prefix) and topic.endswith(".roundtrip")

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    sent = {f"entity-{i}".encode(): f"观测-{i}".encode() for i in range(12)}
    partitions = {}
    try:
        for key, value in sent.items():
            meta = producer.send(topic, key=key, value=value).get(timeout=30)
            partitions[key] = meta.partition
        # The same key lands on the same partition again (per-entity ordering).
        again = producer.send(topic, key=b"entity-0", value=b"second").get(timeout=30)
        producer.flush()
    finally:
        producer.close()
    assert again.partition == partitions[b"entity-0"]

    records = _consume(kafka_bootstrap, topic, len(sent) + 1, group=f"{topic}.g")
    received = [(r.key, r.value) for r in records]
    assert len(received) == len(sent) + 1
    assert {k: v for k, v in received if v != b"second"} == sent
    assert {r.partition for r in records if r.key == b"entity-0"} == {partitions[b"entity-0"]}


def test_kafka_topics_are_separate_per_test(kafka_bootstrap, kafka_topics):
    # Same logical name as the round-trip test: a different real topic, and empty.
    [topic] = kafka_topics("roundtrip")
    assert _consume(kafka_bootstrap, topic, 1, group=f"{topic}.g", timeout_s=3) == []


def test_compacted_topic_from_spec(kafka_bootstrap, kafka_topics):
    [name] = kafka_topics(ENTITIES)
    assert name == kafka_topics.prefix + ENTITIES.name
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        [described] = admin.describe_topics([name])
    finally:
        admin.close()
    assert configs["topic"][name]["cleanup.policy"]["value"] == "compact"
    assert len(described["partitions"]) == ENTITIES.partitions


def test_fresh_database_accepts_ddl_and_dml(pg_url):
    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar() == 0
            conn.execute(sa.text("CREATE TABLE observation (entity text, metric text, value double precision)"))
            conn.execute(
                sa.text("INSERT INTO observation VALUES (:e, :m, :v)"),
                [{"e": "major:0101", "m": "到课率", "v": 0.93}, {"e": "major:0102", "m": "到课率", "v": 0.71}],
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT entity, value FROM observation WHERE value < 0.8")).all()
            assert [tuple(r) for r in rows] == [("major:0102", 0.71)]
            assert conn.execute(sa.text("SELECT current_user")).scalar() == "zhengai"
    finally:
        engine.dispose()  # the fixture would terminate leftover connections anyway


def test_two_databases_are_isolated(pg_url, pg_database):
    other_url = pg_database()
    assert sa.engine.make_url(other_url).database != sa.engine.make_url(pg_url).database
    first, second = sa.create_engine(pg_url), sa.create_engine(other_url)
    try:
        with first.begin() as conn:
            conn.execute(sa.text("CREATE TABLE only_here (x int)"))
            conn.execute(sa.text("INSERT INTO only_here VALUES (1)"))
        with second.connect() as conn:
            assert conn.execute(sa.text("SELECT to_regclass('public.only_here')")).scalar() is None
        with first.connect() as conn:
            assert conn.execute(sa.text("SELECT x FROM only_here")).scalar() == 1
    finally:
        first.dispose()
        second.dispose()  # connections still open here are terminated by the fixture


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_an_empty_database(pg_url, run):
    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT to_regclass('public.leftover')")).scalar() is None
            conn.execute(sa.text("CREATE TABLE leftover (run int)"))
    finally:
        engine.dispose()
