"""End-to-end throughput and latency of the streaming worker on a real broker and PostgreSQL,
against a bare aiokafka consumer reading the same topic.

    python bench/bench_stream.py [--size small|default] [--broker 127.0.0.1:19092] [--url postgresql+psycopg2://…]

A synthetic college (``zhengai.demo``: generated sources read by the real connectors, aggregated
by the embedded runner's functions) gives the directory and the observations. The directory goes
to ``zg.entities``; then ``zhengai worker`` runs as its own process, and

1. **bulk**: every observation is produced at once; the benchmark polls PostgreSQL and records
   when each observation's first verdict row and each warning's opening event are committed.
   Observations/s is observations ÷ (last verdict committed − first produce); latency is produce →
   row committed, so under a bulk load it includes the queue in front of the worker;
2. **paced**: the same observations again under a new source (new keys, so new verdicts) at half
   the bulk rate — latency at a load the worker keeps up with;
3. **baseline**: a bare aiokafka consumer (no group, no decoding) reads the same topic from the
   beginning; the ratio says what validation, evaluation, two more topics and the store cost.

Uses fresh topics (unique prefix) and a fresh database, both removed afterwards. The worker judges
each observation as of when it was observed (``ZHENGAI_EVALUATE_AS_OBSERVED``): the demo college
is history. No assertions: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from zhengai.ingest.records import Entity, EntityKind, Observation, Person
from zhengai.ingest.serde import encode, key_of
from zhengai.ingest.topics import ENTITIES, OBSERVATIONS, TOPICS

DEFAULT_PG = "postgresql+psycopg2://zhengai:zhengai@127.0.0.1:15432/zhengai"


def college(size: str, workdir: Path) -> tuple[list[Entity | Person], list[Observation]]:
    """The demo college through its real connectors and the shared aggregation functions."""
    from zhengai.connectors.caiwu import CaiwuConnector
    from zhengai.connectors.jiaowu import JiaowuConnector
    from zhengai.connectors.pingjiao import PingjiaoConnector
    from zhengai.connectors.renshi import RenshiConnector
    from zhengai.demo.api import DemoApi
    from zhengai.demo.college import SIZES, generate
    from zhengai.embedded import Pipeline, PipelineResult
    from zhengai.rules.loader import load_rulebook
    from zhengai.warnings.store import WarningStore

    c = generate(workdir / "sources", SIZES[size])
    store = WarningStore(f"sqlite:///{workdir / 'scratch.sqlite'}")
    store.create_schema()
    pipeline = Pipeline(store, load_rulebook(), clock=lambda: c.as_of)
    with DemoApi(c.api_data) as api:
        connectors = [
            JiaowuConnector(f"sqlite:///{c.jiaowu_db}", school_id=c.school_id),
            RenshiConnector(api.base_url, api.username, api.password),
            PingjiaoConnector(api.base_url, api.username, api.password, term=c.current_term),
            CaiwuConnector(c.finance_csv, school_id=c.school_id),
        ]
        try:
            pipeline.ingest(connectors, PipelineResult())
        finally:
            for conn in connectors:
                conn.close()
    observations = pipeline.aggregate(term=c.current_term, year=str(c.as_of.year), as_of=c.as_of)
    d = pipeline.directory
    entities = [e for kind in EntityKind for e in d.of_kind(kind)]
    persons = {p.id: d.person(p.id) for e in entities for p in e.responsible.values()}
    return [p for p in persons.values() if p is not None] + entities, observations


def produce(bootstrap: str, topic: str, records, sent_at: dict[str, float] | None = None, rate: float | None = None) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024)
    start = time.monotonic()
    for i, r in enumerate(records):
        if rate:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if sent_at is not None:
            sent_at[r.key] = time.monotonic()
        p.send(topic, key=key_of(r), value=encode(r))
    p.flush()
    p.close()


def observation_key(verdict_key: str) -> str:
    """rule@version|<observation key>|value — the observation key may itself contain '|'."""
    return verdict_key.split("|", 1)[1].rsplit("|", 1)[0]


class Watch:
    """Polls the store and notes when each observation's first verdict and each warning's opening
    event became visible (committed)."""

    def __init__(self, url: str):
        self.engine = create_engine(url)
        self.verdict_seen: dict[str, float] = {}
        self.warning_seen: dict[str, float] = {}
        self._last = {"verdicts": 0, "warning_events": 0}

    def poll(self) -> None:
        with self.engine.connect() as c:
            now = time.monotonic()
            rows = c.execute(text("SELECT id, key FROM verdicts WHERE id > :i ORDER BY id"), {"i": self._last["verdicts"]}).all()
            for rid, key in rows:
                self.verdict_seen.setdefault(observation_key(key), now)
                self._last["verdicts"] = rid
            rows = c.execute(text("SELECT id, cause FROM warning_events WHERE id > :i AND kind = 'opened' ORDER BY id"),
                             {"i": self._last["warning_events"]}).all()
            for rid, cause in rows:
                self.warning_seen.setdefault(observation_key(cause), now)
                self._last["warning_events"] = rid

    def until(self, keys: set[str], stall: float, worker: subprocess.Popen) -> None:
        """Until every key has a verdict; gives up after ``stall`` seconds without progress."""
        progress, seen = time.monotonic(), -1
        while time.monotonic() - progress < stall:
            self.poll()
            if keys <= self.verdict_seen.keys():
                return
            if len(self.verdict_seen) != seen:
                progress, seen = time.monotonic(), len(self.verdict_seen)
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with {worker.returncode}")
            time.sleep(0.02)
        missing = len(keys - self.verdict_seen.keys())
        raise SystemExit(f"no progress for {stall:.0f} s: {missing} observations without a verdict")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def latency_line(label: str, sent: dict[str, float], seen: dict[str, float]) -> str:
    lat = [seen[k] - sent[k] for k in seen if k in sent]
    if not lat:
        return f"  {label}: none"
    return f"  {label}: n={len(lat)}  p50 {pct(lat, 0.5) * 1000:.0f} ms  p99 {pct(lat, 0.99) * 1000:.0f} ms  max {max(lat) * 1000:.0f} ms"


async def raw_consume(bootstrap: str, topic: str, n: int) -> float:
    """Seconds a bare aiokafka consumer (no group, no decoding) needs to read n messages."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    await c.start()
    try:
        parts = (await c._client.fetch_all_metadata()).partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in parts]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        got, start = 0, time.monotonic()
        while got < n:
            batch = await c.getmany(timeout_ms=1000, max_records=10000)
            got += sum(len(v) for v in batch.values())
        return time.monotonic() - start
    finally:
        await c.stop()


def print_worker_timings(port: int) -> None:
    """Where the worker spent its time, from its own /metrics (sums and counts of the histograms)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text_ = r.read().decode()
    sums: dict[str, float] = {}
    for m in re.finditer(r"^(zhengai_(?:store_write|evaluation)_seconds)_(sum|count)(\{[^}]*\})? (\S+)$", text_, re.M):
        sums[f"{m.group(1)}{m.group(3) or ''} {m.group(2)}"] = float(m.group(4))
    print("\nworker time (from its /metrics):")
    for key in sorted(k for k in sums if k.endswith(" sum")):
        label = key[: -len(" sum")]
        n = sums.get(f"{label} count", 0)
        print(f"  {label}: {n:.0f} batches, {sums[key]:.2f} s in all, {1000 * sums[key] / max(n, 1):.1f} ms each")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["small", "default"], default="small")
    ap.add_argument("--broker", default=os.environ.get("ZHENGAI_TEST_KAFKA", "127.0.0.1:19092"))
    ap.add_argument("--url", default=os.environ.get("ZHENGAI_TEST_PG_URL", DEFAULT_PG), help="a role that may create databases")
    ap.add_argument("--paced-seconds", type=float, default=10.0, help="length of the paced phase (0 = skip)")
    ap.add_argument("--paced-rate", type=float, default=0.0, help="observations/s of the paced phase (default: half the bulk rate)")
    args = ap.parse_args()

    from kafka.admin import KafkaAdminClient

    from zhengai.ingest.app import ensure_topics

    workdir = Path(tempfile.mkdtemp(prefix="zhengai-bench-"))
    print(f"generating the {args.size} demo college …", flush=True)
    directory, observations = college(args.size, workdir)
    print(f"{len(directory)} directory records, {len(observations)} observations")

    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        metrics_port = sock.getsockname()[1]
    admin_engine = create_engine(args.url, isolation_level="AUTOCOMMIT")
    db = f"zhengai_bench_{uuid.uuid4().hex[:8]}"
    with admin_engine.connect() as c:
        c.execute(text(f'CREATE DATABASE "{db}"'))
    url = make_url(args.url).set(database=db).render_as_string(hide_password=False)
    ensure_topics(args.broker, TOPICS, prefix=prefix)
    worker = None
    try:
        produce(args.broker, prefix + ENTITIES.name, directory)
        env = {**os.environ, "PYTHONSAFEPATH": "1", "ZHENGAI_BROKER": args.broker, "ZHENGAI_STORE_URL": url,
               "ZHENGAI_TOPIC_PREFIX": prefix, "ZHENGAI_APP_ID": prefix + "worker", "ZHENGAI_METRICS_PORT": str(metrics_port),
               "ZHENGAI_EVALUATE_AS_OBSERVED": "true"}
        log = open(workdir / "worker.log", "wb")
        worker = subprocess.Popen([sys.executable, "-m", "zhengai", "worker", "--log-level", "info"], cwd=workdir, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        while b"Worker]: Ready" not in (workdir / "worker.log").read_bytes():
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with {worker.returncode}; see {workdir / 'worker.log'}")
            time.sleep(0.1)
        watch = Watch(url)
        # Observations the rulebook has no rule for, or for entities outside the directory, are
        # dead-lettered, not judged: wait for the verdicts of the others.
        from zhengai.ingest.directory import Directory
        from zhengai.rules.engine import evaluate_batch
        from zhengai.rules.loader import load_rulebook

        judged = evaluate_batch(load_rulebook(), observations, Directory(directory), datetime.now(timezone.utc), replay=True)
        keys = {v.observation_key for v in judged.verdicts}
        if len(keys) < len(observations):
            dead = len(judged.dead_letters)
            print(f"{len(observations) - len(keys)} observations are not judged: {dead} go to the dead-letter topic, "
                  f"{len(observations) - len(keys) - dead} are informational (their rule is disabled)")

        # 1. bulk
        sent: dict[str, float] = {}
        t0 = time.monotonic()
        threading.Thread(target=produce, args=(args.broker, prefix + OBSERVATIONS.name, observations, sent), daemon=True).start()
        watch.until(keys, 60, worker)
        elapsed = max(watch.verdict_seen[k] for k in keys) - t0
        rate = len(observations) / elapsed
        print(f"\nbulk: {len(observations)} observations in {elapsed:.2f} s → {rate:.0f} observations/s end to end "
              f"({len(keys)} judged, {len(judged.verdicts)} verdicts)")
        print(latency_line("produce → verdict row committed", sent, watch.verdict_seen))
        print(latency_line("produce → warning row committed", sent, watch.warning_seen))

        # 2. paced, at half the bulk rate
        if args.paced_seconds > 0:
            pace = args.paced_rate or rate / 2
            n = min(len(observations), int(pace * args.paced_seconds))
            again = [o.model_copy(update={"source": "bench.paced", "key": f"paced|{o.key}"}) for o in observations if o.key in keys][:n]
            sent2: dict[str, float] = {}
            threading.Thread(target=produce, args=(args.broker, prefix + OBSERVATIONS.name, again, sent2, pace), daemon=True).start()
            watch.until({o.key for o in again}, 60, worker)
            n = len(again)
            print(f"\npaced: {n} observations at {pace:.0f}/s")
            print(latency_line("produce → verdict row committed", sent2, watch.verdict_seen))
        total = len(observations) + (n if args.paced_seconds > 0 else 0)

        # 3. the baseline: the same topic, read bare
        seconds = asyncio.run(raw_consume(args.broker, prefix + OBSERVATIONS.name, total))
        raw = total / seconds
        print(f"\nbaseline: a bare aiokafka consumer reads the {total} messages at {raw:.0f} messages/s")
        print(f"ratio: end to end {rate:.0f} obs/s ÷ raw consume {raw:.0f} msg/s = {rate / raw:.3f}")
        print_worker_timings(metrics_port)
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
        admin = KafkaAdminClient(bootstrap_servers=args.broker)
        admin.delete_topics([prefix + s.name for s in TOPICS], raise_errors=False)
        admin.close()
        with admin_engine.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
