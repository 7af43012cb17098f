"""Helpers for tests that run the streaming worker on a real broker and PostgreSQL: a small
college, producing and consuming, and ``python -m zhengai worker`` as a subprocess (the way it is
deployed, and the only way to SIGKILL it). Each test gets its own topics (a unique prefix),
consumer group and database (the ``env`` fixture)."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from zhengai.ingest.aggregate import directory_metrics
from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Entity, EntityKind, Level, Observation, Person
from zhengai.ingest.serde import encode, key_of
from zhengai.ingest.topics import TOPICS
from zhengai.ingest.units import term_of_week
from zhengai.rules.engine import evaluate_batch
from zhengai.rules.loader import load_rulebook
from zhengai.warnings.store import WarningStore

NOW = datetime.now(UTC)
LAST_WEEK = "{}-W{:02d}".format(*(NOW - timedelta(days=7)).isocalendar()[:2])
TERM = term_of_week(LAST_WEEK)


# --- a small college ---------------------------------------------------------------------------


def college(students_per_class: int = 10, classes: int = 4) -> list[Entity | Person]:
    """One school, two departments, a major per department, ``classes`` classes and a course per
    major; every role that routing needs is filled."""
    out: list[Entity | Person] = [
        Entity(
            id="SCH",
            kind=EntityKind.school,
            name="测试学院",
            responsible={"quality_office": Person(id="Q01", name="质量办")},
        ),
    ]
    for d in (1, 2):
        out.append(
            Entity(
                id=f"D{d}",
                kind=EntityKind.department,
                name=f"二级学院{d}",
                parent_id="SCH",
                responsible={"dean": Person(id=f"DN{d}", name=f"院长{d}")},
            )
        )
        out.append(
            Entity(
                id=f"M{d}",
                kind=EntityKind.major,
                name=f"专业{d}",
                parent_id=f"D{d}",
                responsible={"major_leader": Person(id=f"ML{d}", name=f"带头人{d}")},
            )
        )
        out.append(
            Entity(
                id=f"C{d}",
                kind=EntityKind.course,
                name=f"课程{d}",
                parent_id=f"M{d}",
                responsible={"course_teacher": Person(id=f"T{d}", name=f"教师{d}")},
            )
        )
        out.append(Person(id=f"T{d}", name=f"教师{d}", mobile=f"1380000000{d}", email=f"t{d}@example.edu"))
    for k in range(1, classes + 1):
        d = 1 + (k - 1) % 2
        out.append(
            Entity(
                id=f"K{k}",
                kind=EntityKind.class_,
                name=f"班级{k}",
                parent_id=f"M{d}",
                responsible={"counsellor": Person(id=f"CO{k}", name=f"辅导员{k}")},
            )
        )
        for i in range(1, students_per_class + 1):
            out.append(Entity(id=f"S{k}{i:03d}", kind=EntityKind.student, name=f"学生{k}-{i}", parent_id=f"K{k}"))
    return out


# What the worker derives from any directory (the stream's directory processor): left out where a
# test compares the verdicts and warnings of the observations it sent.
DIRECTORY_METRICS = frozenset(
    o.metric for o in directory_metrics(Directory(college()), year="2026", term=TERM, as_of=NOW)
)


def students(records: Iterable[Entity | Person]) -> list[str]:
    return [r.id for r in records if isinstance(r, Entity) and r.kind is EntityKind.student]


def student_observations(ids: Iterable[str], seed: int, source: str = "test") -> list[Observation]:
    """Three student metrics per student with values spread over every band."""
    rng = random.Random(seed)
    out = []
    for sid in ids:
        out.append(
            Observation(
                level=Level.student,
                entity_id=sid,
                metric="student.attendance_rate",
                value=rng.choice([99.0, 96.5, 93.0, 85.0]),
                period=LAST_WEEK,
                observed_at=NOW,
                source=source,
            )
        )
        out.append(
            Observation(
                level=Level.student,
                entity_id=sid,
                metric="student.absence_hours",
                value=float(rng.choice([0, 6, 14, 30])),
                period=TERM,
                observed_at=NOW,
                source=source,
            )
        )
        out.append(
            Observation(
                level=Level.student,
                entity_id=sid,
                metric="student.gpa",
                value=rng.choice([3.4, 2.5, 1.8, 1.0]),
                period=TERM,
                observed_at=NOW,
                source=source,
            )
        )
    return out


# --- Kafka and the store -----------------------------------------------------------------------


def producer(bootstrap: str):
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=2_000_000)


def produce(bootstrap: str, topic: str, records: Iterable) -> None:
    """Records (encoded and keyed like the connectors do) or (key, raw bytes) pairs."""
    p = producer(bootstrap)
    try:
        for r in records:
            key, value = r if isinstance(r, tuple) else (key_of(r), encode(r))
            p.send(topic, key=key, value=value)
        p.flush()
    finally:
        p.close()


def consume(bootstrap: str, topic: str, n: int, timeout: float = 30.0) -> list:
    from kafka import KafkaConsumer

    c = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
        max_partition_fetch_bytes=2_000_000,
    )
    out, deadline = [], time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            out += list(c)
    finally:
        c.close()
    return out


def wait_until(
    predicate: Callable[[], object], timeout: float, what: str, worker: Worker | None = None, every: float = 0.2
):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and worker.proc.poll() is not None:
            pytest.fail(f"worker exited ({worker.proc.returncode}) while waiting for {what}\n{worker.tail()}")
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}" + (f"\n{worker.tail()}" if worker else ""))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Env:
    """One test's deployment: unique topics and group, a fresh database."""

    def __init__(self, bootstrap: str, store_url: str, prefix: str, workdir: Path):
        self.bootstrap, self.store_url, self.prefix, self.workdir = bootstrap, store_url, prefix, workdir
        self.app_id = prefix.rstrip(".") + "-worker"
        self.engine = create_engine(store_url)
        self.workers: list[Worker] = []

    def topic(self, spec) -> str:
        return self.prefix + spec.name

    def worker(self, **settings) -> Worker:
        w = Worker(self, len(self.workers), settings)
        self.workers.append(w)
        return w

    def scalar(self, sql: str, **params):
        with self.engine.connect() as c:
            return c.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params):
        with self.engine.connect() as c:
            return c.execute(text(sql), params).all()

    def verdict_keys(self) -> set[str]:
        """Verdicts of the observations a test sent (the worker also derives metrics from the
        directory — 生师比, enrolment …: ``DIRECTORY_METRICS``)."""
        return {r[0] for r in self.rows("SELECT key, metric FROM verdicts") if r[1] not in DIRECTORY_METRICS}


class Worker:
    """``python -m zhengai worker`` as a subprocess, with short timings for tests."""

    def __init__(self, env: Env, n: int, settings: dict):
        self.env = env
        self.log_path = env.workdir / f"worker{n}.log"
        self.metrics_port = free_port()
        self.environ = {
            **os.environ,
            "PYTHONSAFEPATH": "1",
            "ZHENGAI_BROKER": env.bootstrap,
            "ZHENGAI_STORE_URL": env.store_url,
            "ZHENGAI_TOPIC_PREFIX": env.prefix,
            "ZHENGAI_APP_ID": env.app_id,
            "ZHENGAI_METRICS_PORT": str(self.metrics_port),
            "ZHENGAI_BATCH_WITHIN": "0.1",
            "ZHENGAI_COMMIT_INTERVAL": "0.5",
            "ZHENGAI_RULES_POLL_INTERVAL": "0.5",
            "ZHENGAI_WINDOW_GRACE": "0",
            "ZHENGAI_WINDOW_SETTLE": "1.0",
            "ZHENGAI_WINDOW_FLUSH_INTERVAL": "0.3",
            "ZHENGAI_SESSION_TIMEOUT": "6",
            "ZHENGAI_HEARTBEAT_INTERVAL": "1",
            "ZHENGAI_LAG_INTERVAL": "1",
            **{f"ZHENGAI_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> Worker:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zhengai", "worker", "--log-level", "info"],
            cwd=self.env.workdir,
            env=self.environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(lambda: "Worker]: Ready" in self.log_text(), 90, "the worker to be ready", self)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, n: int = 60) -> str:
        return "---- worker log ----\n" + "\n".join(self.log_text().splitlines()[-n:])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name: str, **labels) -> float:
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.metrics().splitlines():
            m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
            if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) == want:
                return float(m.group(3))
        return 0.0


def stream_env(tmp_path, kafka_bootstrap, pg_url, kafka_topics):
    """The ``env`` fixture (conftest): topics, a database, and workers stopped afterwards."""
    kafka_topics(TOPICS)
    e = Env(kafka_bootstrap, pg_url, kafka_topics.prefix, tmp_path)
    WarningStore(pg_url).create_schema()
    yield e
    for w in e.workers:
        w.kill(signal.SIGTERM)
        print(w.tail(120))  # shown by pytest only when the test failed
    e.engine.dispose()


def expected(observations: list[Observation], records: list[Entity | Person], rulebook: Path | None = None):
    """What the worker must store: verdict keys, and the (rule, entity) pairs with a warning."""
    result = evaluate_batch(load_rulebook(rulebook), observations, Directory(records), NOW)
    keys = {v.key for v in result.verdicts}
    breaches = {(v.rule_id, v.entity_id) for v in result.verdicts if v.band.is_breach}
    return keys, breaches, result


def warnings_by_pair(env: Env) -> list[tuple[str, str]]:
    """Warnings on the metrics tests send (not on the directory's own metrics, see ``verdict_keys``)."""
    return [
        (r[0], r[1])
        for r in env.rows("SELECT rule_id, entity_id, metric FROM warnings ORDER BY id")
        if r[2] not in DIRECTORY_METRICS
    ]
