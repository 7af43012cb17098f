"""Kafka delivery against a real broker: routing and keys, and no loss and no duplicates (by
idempotency key) when a connector is killed mid-run or its delivery dies mid-batch; late commits
picked up; bad rows in the dead-letter topic with reasons while good rows flow."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from zhengai.connectors import (
    JiaowuConnector,
    KafkaDelivery,
    RetryableDeliveryError,
    SqlBookmarks,
    run_connector,
)
from zhengai.ingest import serde
from zhengai.ingest.records import (
    AttendanceEvent,
    DeadLetter,
    Entity,
    EntityKind,
    FinanceEvent,
    GradeEvent,
    Observation,
    Person,
)
from zhengai.ingest.topics import DLQ, ENTITIES, EVENTS, OBSERVATIONS, TOPICS, partition_of

T = datetime(2026, 9, 11, 18, 0, tzinfo=timezone(timedelta(hours=8)))
REPO = Path(__file__).resolve().parents[1]


def consume(bootstrap: str, topics: list[str], done, timeout: float = 60.0) -> list:  # type: ignore[no-untyped-def]
    """Every message of ``topics`` from the beginning, until ``done(messages)`` or timeout."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=500,
    )
    parts = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    messages: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done(messages):
            for batch in consumer.poll(timeout_ms=300).values():
                messages.extend(batch)
    finally:
        consumer.close()
    return messages


def test_records_go_to_their_topics_with_entity_keys(kafka_bootstrap: str, kafka_topics) -> None:  # type: ignore[no-untyped-def]
    kafka_topics(TOPICS)
    p = kafka_topics.prefix
    records = [
        Observation(
            level="course",
            entity_id="C1",
            metric="course.pass_rate",
            value=91.0,
            period="2026-2027-1",
            observed_at=T,
            source="t.s",
        ),
        AttendanceEvent(
            occurred_at=T,
            source="t.a",
            key="k1",
            student_id="S1",
            course_id="C1",
            week="2026-W37",
            scheduled=4,
            attended=4,
        ),
        GradeEvent(
            occurred_at=T,
            source="t.g",
            key="k2",
            student_id="S2",
            course_id="C1",
            term="2026-2027-1",
            score=70,
            credits=2,
        ),
        FinanceEvent(
            occurred_at=T,
            source="t.f",
            key="k3",
            school_id="SCH",
            year="2026",
            category="teaching",
            item="日常教学经费",
            budget=1,
            actual=1,
        ),
        Entity(id="K1", kind=EntityKind.class_, name="软件2401", parent_id="M1"),
        Person(id="T1", name="周老师", dingtalk_user_id="d1"),
        DeadLetter(source="t.a", reason="score: is missing", raw="{}", at=T),
    ]
    with KafkaDelivery(kafka_bootstrap, topic_prefix=p) as delivery:
        delivery.deliver(records)
    got = consume(kafka_bootstrap, [p + s.name for s in TOPICS], lambda m: len(m) >= len(records))
    placed = {(m.topic.removeprefix(p), serde.key_of(r).decode()): r for m in got for r in serde.decode_many(m.value)}
    assert placed == {
        (OBSERVATIONS.name, "C1"): records[0],
        (EVENTS.name, "S1"): records[1],
        (EVENTS.name, "S2"): records[2],
        (EVENTS.name, "SCH"): records[3],
        (ENTITIES.name, "K1"): records[4],
        (ENTITIES.name, "person:T1"): records[5],
        (DLQ.name, "t.a"): records[6],
    }


def test_a_missing_topic_is_a_retryable_delivery_error(kafka_bootstrap: str) -> None:
    delivery = KafkaDelivery(kafka_bootstrap, topic_prefix="absent-9f8e.", timeout=5, max_block_ms=1500)
    with pytest.raises(RetryableDeliveryError, match="do the topics exist"):
        delivery.deliver([Person(id="T1", name="周老师")])
    delivery.close()


# --- no loss, no duplicates -------------------------------------------------------------------

N = 6000
BAD = {i for i in range(1, N + 1) if i % 997 == 0}  # attended > scheduled: dead letters


def attendance_db(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE attendance (id bigint PRIMARY KEY, student_id text, course_id text, "
                "week text, scheduled int, attended int, excused int, updated_at timestamptz)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO attendance SELECT i, 'S' || (i % 97), 'C' || (i % 13), '2026-W37', 4, "
                "CASE WHEN i % 997 = 0 THEN 9 ELSE i % 5 END - CASE WHEN i % 5 = 4 THEN 1 ELSE 0 END,"
                " 0, :t + i * interval '1 second' FROM generate_series(1, :n) AS i"
            ),
            {"t": T, "n": N},
        )
    return engine


def bookmark_id(engine: sa.Engine) -> int | None:
    with engine.connect() as conn:
        value = conn.execute(
            sa.text("SELECT value FROM connector_bookmarks WHERE connector = 'jiaowu' AND stream = 'attendance'")
        ).scalar_one_or_none()
    return None if value is None else json.loads(value)["id"]


def check_exactly_once(messages: list, expected_keys: set[str], bad_ids: set[int]) -> int:
    """Distinct keys are exactly the expected ones and every copy of a key is the same record;
    returns the number of duplicate messages (redeliveries) seen."""
    events: dict[str, set[bytes]] = defaultdict(set)
    dead: dict[int, set[str]] = defaultdict(set)
    copies = 0
    for m in messages:
        for record in serde.decode_many(m.value):  # events come in batch messages
            if isinstance(record, DeadLetter):
                dead[json.loads(record.raw)["id"]].add(record.reason)
                continue
            assert isinstance(record, AttendanceEvent)
            # on the partition its own key maps to (a batch message carries one partition's records)
            assert m.partition == partition_of(record.student_id.encode(), EVENTS.partitions)
            copies += record.key in events
            events[record.key].add(record.model_dump_json())
    assert set(events) == expected_keys  # nothing lost, nothing extra
    assert all(len(v) == 1 for v in events.values())  # a redelivery is the same record
    assert set(dead) == bad_ids
    assert all(
        r == {"AttendanceEvent invalid: (record): Value error, attended + excused exceeds scheduled sessions"}
        for r in dead.values()
    )
    return copies


def run_cli(env: dict[str, str], config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "zhengai", "connectors", "run", "jiaowu", "--once", "--config", str(config)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_mid_run_and_restarted_delivers_every_row_exactly_once(
    pg_url: str, kafka_bootstrap: str, kafka_topics, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    kafka_topics(TOPICS)
    engine = attendance_db(pg_url)
    config = tmp_path / "jiaowu.yaml"
    config.write_text(
        "connector: jiaowu\nschedule: {every: 1h}\nbatch_size: 100\n"
        "source: {kind: sql, url_env: JW_URL}\n"
        "options: {school_id: SCH, lookback: 10m}\nstreams: [attendance]\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "PYTHONSAFEPATH": "1",
        "JW_URL": pg_url,
        "ZHENGAI_BROKER": kafka_bootstrap,
        "ZHENGAI_TOPIC_PREFIX": kafka_topics.prefix,
        "ZHENGAI_BOOKMARKS": pg_url,
    }

    # 1. Start, and SIGKILL it once a third of the rows are acknowledged: mid-run.
    proc = run_cli(env, config)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if (bookmark_id(engine) or 0) >= N // 3:
                break
        except sa.exc.ProgrammingError:  # the bookmark table is not there yet
            pass
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    killed_at = bookmark_id(engine)
    assert killed_at is not None and killed_at < N  # it really died mid-run
    print(f"killed at bookmark id {killed_at} of {N}")

    # 2. Restart: it resumes from the acknowledged bookmark (minus the lookback) to the end.
    proc = run_cli(env, config)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.startswith("✓ jiaowu: read ")
    assert bookmark_id(engine) == N

    good = {f"jiaowu:attendance:{i}" for i in range(1, N + 1) if i not in BAD}
    topics = [kafka_topics.prefix + EVENTS.name, kafka_topics.prefix + DLQ.name]

    def complete(messages: list) -> bool:
        keys = {getattr(r, "key", None) for m in messages for r in serde.decode_many(m.value)}
        return good <= keys and len([m for m in messages if m.topic.endswith(DLQ.name)]) >= len(BAD)

    messages = consume(kafka_bootstrap, topics, complete)
    check_exactly_once(messages, good, BAD)

    # 3. A transaction that began before the run commits now, older than the bookmark.
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO attendance VALUES (:i, 'S1', 'C1', '2026-W37', 4, 3, 1, :t)"),
            {"i": N + 1, "t": T + timedelta(seconds=N - 120)},
        )
    proc = run_cli(env, config)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    late = f"jiaowu:attendance:{N + 1}"
    messages = consume(kafka_bootstrap, topics, lambda ms: any(late.encode() in m.value for m in ms) and complete(ms))
    check_exactly_once(messages, good | {late}, BAD)
    engine.dispose()


def test_a_delivery_that_dies_mid_batch_loses_nothing(
    pg_url: str, kafka_bootstrap: str, kafka_topics, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    kafka_topics(TOPICS)
    engine = attendance_db(pg_url)

    class DiesMidBatch(KafkaDelivery):
        calls = 0

        def deliver(self, records):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls == 4:  # half of the batch reaches the broker, then the process dies
                super().deliver(records[: len(records) // 2])
                raise ConnectionError("connector host lost power mid-batch")
            super().deliver(records)

    bookmarks = SqlBookmarks(pg_url)
    with JiaowuConnector(pg_url, "SCH", lookback=timedelta(0)) as jw:
        jw.streams = tuple(s for s in jw.streams if s.name == "attendance")
        with DiesMidBatch(kafka_bootstrap, topic_prefix=kafka_topics.prefix) as dying:
            report = run_connector(jw, dying, bookmarks, batch_size=500)
        assert report.errors["attendance"].startswith("delivery failed: ConnectionError")
        assert bookmark_id(engine) == 1500  # three acknowledged batches
        with KafkaDelivery(kafka_bootstrap, topic_prefix=kafka_topics.prefix) as delivery:
            assert run_connector(jw, delivery, bookmarks, batch_size=500).ok
    good = {f"jiaowu:attendance:{i}" for i in range(1, N + 1) if i not in BAD}
    topics = [kafka_topics.prefix + EVENTS.name, kafka_topics.prefix + DLQ.name]
    expected_records = len(good) + len(BAD) + 250  # the half batch came twice

    def records(msgs) -> int:  # events travel in batch messages
        return sum(len(serde.decode_many(m.value)) for m in msgs)

    messages = consume(kafka_bootstrap, topics, lambda m: records(m) >= expected_records)
    assert records(messages) == expected_records
    assert check_exactly_once(messages, good, BAD) == 250 - sum(1 for i in BAD if 1500 < i <= 1750)
    bookmarks.close()
    engine.dispose()


def test_the_run_loop_serves_health_and_warns_about_a_silent_connector(
    kafka_bootstrap: str, kafka_topics, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import socket
    import sqlite3
    import urllib.request

    kafka_topics(TOPICS)
    db = tmp_path / "jw.sqlite"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE attendance (id INTEGER PRIMARY KEY, student_id TEXT, course_id TEXT,"
        " week TEXT, scheduled INT, attended INT, excused INT, updated_at TEXT)"
    )
    con.execute("INSERT INTO attendance VALUES (1,'S1','C1','2026-W37',4,4,0,'2026-09-11T18:00:00+08:00')")
    con.commit()
    (tmp_path / "jiaowu.yaml").write_text(
        f"connector: jiaowu\nschedule: {{every: 300ms}}\nsource: {{kind: sql, url: "
        f"'sqlite:///{db}'}}\noptions: {{school_id: SCH}}\nstreams: [attendance]\n",
        encoding="utf-8",
    )
    (tmp_path / "caiwu.yaml").write_text(  # its export never arrives: fatal every run
        f"connector: caiwu\nschedule: {{every: 300ms}}\nexpect_within: 1s\nsource: {{kind: files, "
        f"path: '{tmp_path / 'missing.csv'}'}}\noptions: {{school_id: SCH}}\n",
        encoding="utf-8",
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONSAFEPATH": "1",
        "ZHENGAI_BROKER": kafka_bootstrap,
        "ZHENGAI_TOPIC_PREFIX": kafka_topics.prefix,
        "ZHENGAI_BOOKMARKS": str(tmp_path / "bookmarks.json"),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zhengai",
            "connectors",
            "run",
            "--config-dir",
            str(tmp_path),
            "--metrics-port",
            str(port),
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        con.execute("INSERT INTO attendance VALUES (2,'S2','C1','2026-W37',4,3,0,'2026-09-11T18:00:01+08:00')")
        con.commit()
        con.close()
        # the default lookback (1 h) re-reads row 1 every run: duplicates by key, harmless
        got = consume(
            kafka_bootstrap,
            [kafka_topics.prefix + EVENTS.name],
            lambda m: len({r.key for x in m for r in serde.decode_many(x.value)}) >= 2,
            timeout=30,
        )
        assert {r.key for m in got for r in serde.decode_many(m.value)} == {
            "jiaowu:attendance:1",
            "jiaowu:attendance:2",
        }
        metrics = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and 'zhengai_connector_overdue{connector="caiwu"} 1.0' not in metrics:
            time.sleep(0.2)
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        assert 'zhengai_connector_overdue{connector="caiwu"} 1.0' in metrics
        assert 'zhengai_connector_overdue{connector="jiaowu"} 0.0' in metrics
        assert 'zhengai_connector_last_success_timestamp_seconds{connector="jiaowu"}' in metrics
        assert 'zhengai_connector_lag_seconds{connector="jiaowu",stream="attendance"}' in metrics
        assert re.search(
            r'zhengai_connector_rows_total\{connector="jiaowu",outcome="read",'
            r'stream="attendance"\} [2-9]',
            metrics,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    warnings = [ln for ln in err.splitlines() if "event=connector_overdue" in ln]
    assert len(warnings) == 1, err  # one warning per episode
    assert "connector=caiwu" in warnings[0] and "expected_within_s=1" in warnings[0]
    assert 'last_error="budget: source failed (fatal): cannot read missing.csv' in warnings[0]
