"""End-to-end throughput and latency of the streaming worker on a real broker and PostgreSQL,
against a same-run ceiling: the same work without the framework (``bench/ceiling.py``).

    python bench/bench_stream.py [--size small|default] [--workers 1] [--broker …] [--url …]

The demo college's sources are read by the real connectors; the embedded runner (the same
processors) gives the full set of observations. Then, each phase on fresh topics (unique prefix)
and a fresh database, with ``zhengai worker`` as its own process(es), judging as observed:

1. **bulk**: every observation produced at once as batch messages (what the connectors send);
   observations/s = observations ÷ (last verdict committed − first produce); the worker's CPU per
   observation from ``/proc``;
2. **paced** at 2,000 and 5,000 observations/s (their own keys), run first on the quiet
   deployment: produce → verdict committed, p50/p99 at a rate the worker keeps up with;
3. **ceiling**: a bare aiokafka consumer reading the bulk topic with the worker's per-batch work
   (``bare``: decode, evaluate, one COPY of verdicts; ``full``: the one-hop judge and publishing);
4. **replay**: the college's whole input — directory, raw events, the connectors' observations —
   through Kafka until every derived unit is emitted and judged; attendance events/s into units.

The watcher counts committed rows correctly with several writers (ids are drawn before commit,
so it rereads above the lowest id it has not seen until that gap is older than a few seconds).
No assertions: it prints figures; on two shared cores compare ratios within one run.
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
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from zhengai.ingest.records import Entity, Observation, Person
from zhengai.ingest.serde import encode, encode_batches, key_of
from zhengai.ingest.topics import ENTITIES, EVENTS, OBSERVATIONS, TOPICS, partition_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datetime import UTC

from ceiling import run_ceiling  # noqa: E402 — the bench folder's own helper

DEFAULT_PG = "postgresql+psycopg2://zhengai:zhengai@127.0.0.1:15432/zhengai"
TICKS = os.sysconf("SC_CLK_TCK")


def college(size: str, workdir: Path):
    """The demo college through its real connectors; all its observations via the embedded runner."""
    from zhengai.demo.college import SIZES, generate
    from zhengai.demo.run import read_college
    from zhengai.embedded import Pipeline
    from zhengai.rules.loader import load_rulebook
    from zhengai.warnings.schema import ObservationRow
    from zhengai.warnings.store import WarningStore

    c = generate(workdir / "sources", SIZES[size])
    records = read_college(c)
    store = WarningStore(f"sqlite:///{workdir / 'scratch.sqlite'}")
    store.create_schema()
    pipeline = Pipeline(store, load_rulebook(), clock=lambda: c.as_of)
    for i in range(0, len(records), 1000):
        pipeline.deliver(records[i : i + 1000])
    pipeline.flush()
    with store.session() as s:
        observations = [
            Observation(
                level=r.level,
                entity_id=r.entity_id,
                metric=r.metric,
                value=bool(r.value) if r.is_bool else r.value,
                period=r.period,
                observed_at=r.observed_at,
                source=r.source,
                key=r.key,
            )
            for r in s.query(ObservationRow).order_by(ObservationRow.id)
        ]
    return records, observations, pipeline.directory


# --- Kafka --------------------------------------------------------------------------------------


def produce(
    bootstrap: str,
    topic: str,
    records,
    *,
    partitions: int,
    batched: bool = True,
    sent_at: dict[str, float] | None = None,
    rate: float | None = None,
) -> None:
    """Records as the connectors send them: batch messages per partition (or one record per
    message for the compacted directory). Paced: a tick every 20 ms with the records due by then."""
    from kafka import KafkaProducer

    p = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=512 * 1024, max_request_size=4 * 1024 * 1024
    )
    records = list(records)
    step = max(1, int(rate * 0.02)) if rate else 5000
    start = time.monotonic()
    for i in range(0, len(records), step):
        chunk = records[i : i + step]
        if rate:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        now = time.monotonic()
        if sent_at is not None:
            for r in chunk:
                sent_at[r.key] = now
        if not batched:
            for r in chunk:
                p.send(topic, key=key_of(r), value=encode(r))
            continue
        groups: dict[int, list] = {}
        for r in chunk:
            groups.setdefault(partition_of(key_of(r), partitions), []).append(r)
        for partition, group in groups.items():
            for carried, value in encode_batches(group):
                p.send(topic, key=key_of(carried[0]), value=value, partition=partition)
        if rate:
            p.flush()
    p.flush()
    p.close()


def observation_key(verdict_key: str) -> str:
    """rule@version|<observation key>|value — the observation key may itself contain '|'."""
    return verdict_key.split("|", 1)[1].rsplit("|", 1)[0]


class Watch:
    """Polls the store and notes when each observation's first verdict became visible (committed).

    Row ids are drawn when a row is written, not when it commits: with several writers a lower id
    can commit after a higher one. So the watcher rereads everything above the lowest id it has not
    seen, until that id has been missing for ``GAP_SECONDS`` (an id a conflict or a rollback used
    up never appears)."""

    GAP_SECONDS = 5.0

    def __init__(self, url: str):
        self.engine = create_engine(url)
        self.verdict_seen: dict[str, float] = {}
        self._ids: set[int] = set()
        self._floor = 0  # every id ≤ floor is seen or given up
        self._missing_since: dict[int, float] = {}

    def poll(self) -> list[str]:
        """Reads what committed since the last poll; returns the observation keys seen for the first time."""
        with self.engine.connect() as c:
            rows = c.execute(text("SELECT id, key FROM verdicts WHERE id > :f"), {"f": self._floor}).all()
        now = time.monotonic()
        new = []
        for rid, key in rows:
            if rid not in self._ids:
                self._ids.add(rid)
                okey = observation_key(key)
                if okey not in self.verdict_seen:
                    self.verdict_seen[okey] = now
                    new.append(okey)
        top = max(self._ids, default=0)
        while self._floor < top:
            nxt = self._floor + 1
            if nxt in self._ids:
                self._ids.discard(nxt)
            elif now - self._missing_since.setdefault(nxt, now) < self.GAP_SECONDS:
                break
            self._floor = nxt
        return new

    def until(self, keys: set[str], stall: float, workers) -> float:
        """Until every key has a verdict; returns when the last arrived; gives up after ``stall``
        seconds without progress."""
        # The harness shares the cores with the worker: it keeps what is still missing (no subset test
        # of every key on every poll), so its own cost stays small against the worker's.
        remaining = set(keys) - self.verdict_seen.keys()
        progress = time.monotonic()
        while time.monotonic() - progress < stall:
            new = self.poll()
            if new:
                remaining.difference_update(new)
                progress = time.monotonic()
            if not remaining:
                return max(self.verdict_seen[k] for k in keys)
            for w in workers:
                if w.poll() is not None:
                    raise SystemExit(f"a worker exited with {w.returncode}")
            time.sleep(0.01)  # the resolution of the latency figures
        missing = len(remaining)
        raise SystemExit(f"no progress for {stall:.0f} s: {missing} observations without a verdict")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def latency_line(label: str, sent: dict[str, float], seen: dict[str, float]) -> str:
    lat = [seen[k] - sent[k] for k in sent if k in seen]
    if not lat:
        return f"  {label}: none"
    return (
        f"  {label}: n={len(lat)}  p50 {pct(lat, 0.5) * 1000:.0f} ms  p99 {pct(lat, 0.99) * 1000:.0f} ms "
        f" max {max(lat) * 1000:.0f} ms"
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


# --- one deployment: topics, database, workers ----------------------------------------------------


class Deployment:
    def __init__(self, broker: str, admin_url: str, workdir: Path, name: str):
        from zhengai.ingest.app import ensure_topics

        self.broker, self.workdir, self.name = broker, workdir, name
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}."
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.db = f"zhengai_bench_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{self.db}"'))
        self.url = make_url(admin_url).set(database=self.db).render_as_string(hide_password=False)
        ensure_topics(broker, TOPICS, prefix=self.prefix)
        self.workers: list[subprocess.Popen] = []
        self.ports: list[int] = []

    def topic(self, spec) -> str:
        return self.prefix + spec.name

    def start_workers(self, n: int, **settings) -> None:
        for i in range(n):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            env = {
                **os.environ,
                "PYTHONSAFEPATH": "1",
                "ZHENGAI_BROKER": self.broker,
                "ZHENGAI_STORE_URL": self.url,
                "ZHENGAI_TOPIC_PREFIX": self.prefix,
                "ZHENGAI_APP_ID": self.prefix + "worker",
                "ZHENGAI_METRICS_PORT": str(port),
                "ZHENGAI_EVALUATE_AS_OBSERVED": "true",
                **{f"ZHENGAI_{k.upper()}": str(v) for k, v in settings.items()},
            }
            log_path = self.workdir / f"{self.name}-worker{i}.log"
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "zhengai", "worker", "--log-level", "info"],
                    cwd=self.workdir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            while b"Worker]: Ready" not in log_path.read_bytes():
                if proc.poll() is not None:
                    raise SystemExit(f"the worker exited with {proc.returncode}; see {log_path}")
                time.sleep(0.1)
            self.workers.append(proc)
            self.ports.append(port)

    def scalar(self, sql: str):
        with create_engine(self.url).connect() as c:
            return c.execute(text(sql)).scalar()

    def stop_workers(self) -> None:
        for w in self.workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
                try:
                    w.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    w.kill()

    def close(self) -> None:
        from kafka.admin import KafkaAdminClient

        self.stop_workers()
        admin = KafkaAdminClient(bootstrap_servers=self.broker)
        admin.delete_topics([self.prefix + s.name for s in TOPICS], raise_errors=False)
        admin.close()
        with self.admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)'))


def print_worker_timings(ports: list[int]) -> None:
    """Where the workers spent their time, from their own /metrics (sums and counts of the histograms)."""
    import urllib.request

    sums: dict[str, float] = {}
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text_ = r.read().decode()
        for m in re.finditer(
            r"^(zhengai_(?:store_write|evaluation)_seconds)_(sum|count)(\{[^}]*\})? (\S+)$", text_, re.M
        ):
            key = f"{m.group(1)}{m.group(3) or ''} {m.group(2)}"
            sums[key] = sums.get(key, 0.0) + float(m.group(4))
    print("  worker time (from /metrics):")
    for key in sorted(k for k in sums if k.endswith(" sum")):
        label = key[: -len(" sum")]
        n = sums.get(f"{label} count", 0)
        print(f"    {label}: {n:.0f} batches, {sums[key]:.2f} s in all, {1000 * sums[key] / max(n, 1):.1f} ms each")


# --- the phases --------------------------------------------------------------------------------------


def phase_bulk(args, workdir, directory_records, observations, directory) -> dict:
    d = Deployment(args.broker, args.url, workdir, "bulk")
    try:
        produce(args.broker, d.topic(ENTITIES), directory_records, partitions=ENTITIES.partitions, batched=False)
        d.start_workers(args.workers)
        # The directory first (as a deployment has it before the first observations): the ceilings get it
        # in memory for free, and observations whose entity is not stored yet would be parked and replayed.
        entities = sum(1 for r in directory_records if isinstance(r, Entity))
        deadline = time.monotonic() + 120
        probe = create_engine(d.url)
        with probe.connect() as c:
            while (
                c.execute(text("SELECT count(*) FROM entities")).scalar() or 0
            ) < entities and time.monotonic() < deadline:
                c.commit()
                time.sleep(0.2)
        probe.dispose()
        watch = Watch(d.url)
        from datetime import datetime

        from zhengai.rules.engine import evaluate_batch
        from zhengai.rules.loader import load_rulebook

        judged = evaluate_batch(load_rulebook(), observations, directory, datetime.now(UTC), replay=True)
        keys = {v.observation_key for v in judged.verdicts}
        print(
            f"\nbulk ({args.workers} worker{'s' if args.workers > 1 else ''}): {len(observations)} observations, "
            f"{len(keys)} judged ({len(observations) - len(keys)} informational or dead-lettered)"
        )
        paced = {}
        for pace in args.paced:
            n = min(len(keys), int(pace * args.paced_seconds))
            again = [
                o.model_copy(update={"source": f"bench.paced{pace}", "key": f"paced{pace}|{o.key}"})
                for o in observations
                if o.key in keys
            ][:n]
            sent2: dict[str, float] = {}
            threading.Thread(
                target=produce,
                args=(args.broker, d.topic(OBSERVATIONS), again),
                daemon=True,
                kwargs=dict(partitions=OBSERVATIONS.partitions, sent_at=sent2, rate=pace),
            ).start()
            watch.until({o.key for o in again}, 60, d.workers)  # polls while the producer paces
            print(f"  paced at {pace}/s: {len(again)} observations")
            print(latency_line("  produce → verdict committed", sent2, watch.verdict_seen))
            paced[pace] = sent2
        sent: dict[str, float] = {}
        cpu0 = [cpu_seconds(w.pid) for w in d.workers]
        t0 = time.monotonic()
        threading.Thread(
            target=produce,
            args=(args.broker, d.topic(OBSERVATIONS), observations),
            kwargs=dict(partitions=OBSERVATIONS.partitions, sent_at=sent),
            daemon=True,
        ).start()
        last = watch.until(keys, 120, d.workers)
        elapsed = last - t0
        cpu = sum(cpu_seconds(w.pid) - c for w, c in zip(d.workers, cpu0, strict=True))
        rate = len(observations) / elapsed
        print(
            f"  end to end: {elapsed:.2f} s → {rate:.0f} observations/s; worker CPU {cpu:.1f} s = "
            f"{1000 * cpu / len(observations):.3f} ms per observation"
            f" ({len(observations) / cpu:.0f} obs per CPU-second)"
        )
        print(latency_line("produce → verdict committed", sent, watch.verdict_seen))

        print_worker_timings(d.ports)
        total = len(observations) + sum(len(s) for s in paced.values())
        return {
            "rate": rate,
            "topic": d.topic(OBSERVATIONS),
            "total": total,
            "deployment": d,
            "observations": observations,
        }
    except BaseException:
        d.close()
        raise


def phase_ceiling(args, workdir, bulk: dict, directory) -> float:
    """The same-run ceilings: ``bare`` (decode → evaluate → one COPY of verdicts per batch) and ``full``
    (the project's Judge: observations, verdicts, lifecycle, outbox, publishing) on the bulk topic,
    already written; and ``bare`` again while a producer writes the topic — the conditions the worker's
    end-to-end figure is measured in (producer, broker, database and consumer sharing the cores)."""
    rates: dict[tuple[str, bool], float] = {}
    for mode, producing in (("bare", False), ("full", False), ("bare", True)):
        db = Deployment(args.broker, args.url, workdir, f"ceiling-{mode}")
        try:
            topic, total, t0 = bulk["topic"], bulk["total"], None
            if producing:
                topic, total = db.topic(OBSERVATIONS), len(bulk["observations"])
                t0 = time.monotonic()
                threading.Thread(
                    target=produce,
                    args=(args.broker, topic, bulk["observations"]),
                    daemon=True,
                    kwargs=dict(partitions=OBSERVATIONS.partitions),
                ).start()
            c = asyncio.run(
                run_ceiling(
                    mode,
                    args.broker,
                    topic,
                    db.url,
                    directory,
                    total,
                    t0=t0,
                    verdicts_topic=db.topic(OBSERVATIONS).replace("observations", "verdicts")
                    if mode == "full"
                    else None,
                )
            )
            rates[(mode, producing)] = c.rate
            label = f"{mode}, while producing" if producing else mode
            print(
                c.line()
                + ("  (while the producer writes, as the worker ran; CPU includes the producer)" if producing else "")
            )
            print(f"    worker ÷ ceiling ({label}): {bulk['rate']:.0f} ÷ {c.rate:.0f} = {bulk['rate'] / c.rate:.2f}")
        finally:
            db.close()
    return rates[("bare", False)]


def phase_drain(args, workdir, directory_records, observations, directory, ceiling_rate: float | None) -> None:
    """The worker on a topic written before it starts — the conditions of the ``bare`` ceiling (which
    reads a topic already written): rate from its first committed verdict to its last."""
    d = Deployment(args.broker, args.url, workdir, "drain")
    try:
        produce(args.broker, d.topic(ENTITIES), directory_records, partitions=ENTITIES.partitions, batched=False)
        produce(args.broker, d.topic(OBSERVATIONS), observations, partitions=OBSERVATIONS.partitions)
        from datetime import datetime

        from zhengai.rules.engine import evaluate_batch
        from zhengai.rules.loader import load_rulebook

        keys = {
            v.observation_key
            for v in evaluate_batch(load_rulebook(), observations, directory, datetime.now(UTC), replay=True).verdicts
        }
        watch = Watch(d.url)
        d.start_workers(args.workers)
        cpu0 = sum(cpu_seconds(w.pid) for w in d.workers)
        last = watch.until(keys, 120, d.workers)
        first = min(watch.verdict_seen[k] for k in keys)
        cpu = sum(cpu_seconds(w.pid) for w in d.workers) - cpu0
        rate = len(observations) / (last - first)
        print(
            f"\ndrain ({args.workers} worker{'s' if args.workers > 1 else ''}, the topic written before the worker "
            f"starts): {len(observations)} observations in {last - first:.2f} s (first → last verdict committed) "
            f"→ {rate:.0f} obs/s; worker CPU {cpu:.1f} s"
        )
        if ceiling_rate:
            print(f"    worker (drain) ÷ ceiling (bare): {rate:.0f} ÷ {ceiling_rate:.0f} = {rate / ceiling_rate:.2f}")
    finally:
        d.close()


def phase_replay(args, workdir, records) -> None:
    from zhengai.ingest.records import AttendanceEvent

    d = Deployment(args.broker, args.url, workdir, "replay")
    try:
        directory = [r for r in records if isinstance(r, (Entity, Person))]
        observations = [r for r in records if isinstance(r, Observation)]
        events = [r for r in records if hasattr(r, "occurred_at") and not isinstance(r, (Observation, Entity, Person))]
        attendance = sum(isinstance(e, AttendanceEvent) for e in events)
        d.start_workers(args.workers)
        print(f"  replay workers: pids {[w.pid for w in d.workers]}", flush=True)
        cpu0 = [cpu_seconds(w.pid) for w in d.workers]
        t0 = time.monotonic()
        produce(args.broker, d.topic(ENTITIES), directory, partitions=ENTITIES.partitions, batched=False)
        threading.Thread(
            target=produce,
            args=(args.broker, d.topic(EVENTS), events),
            kwargs=dict(partitions=EVENTS.partitions),
            daemon=True,
        ).start()
        threading.Thread(
            target=produce,
            args=(args.broker, d.topic(OBSERVATIONS), observations),
            kwargs=dict(partitions=OBSERVATIONS.partitions),
            daemon=True,
        ).start()
        tallies_done = None
        stable_since, last_count = None, -1
        while True:
            time.sleep(0.5)
            now = time.monotonic()
            tallies = d.scalar("SELECT count(*) FROM attendance_tallies")
            if tallies_done is None and tallies >= attendance:
                tallies_done = now
            verdicts = d.scalar("SELECT count(*) FROM verdicts")
            dirty = d.scalar("SELECT count(*) FROM stream_units WHERE dirty")
            if verdicts != last_count or dirty or tallies_done is None:
                stable_since, last_count = now, verdicts
            elif now - stable_since > 5:
                break
            if now - t0 > 600:
                raise SystemExit(f"replay unfinished after 600 s: {tallies}/{attendance} tallies, {dirty} dirty units")
        done = stable_since
        cpu = sum(cpu_seconds(w.pid) - c for w, c in zip(d.workers, cpu0, strict=True))
        units = d.scalar("SELECT count(*) FROM stream_units")
        print(
            f"\nreplay: {len(directory)} directory records, {len(events)} events ({attendance} attendance), "
            f"{len(observations)} connector observations → {last_count} verdicts, {units} units"
        )
        print(f"  attendance events into units: {attendance / (tallies_done - t0):.0f} events/s")
        print(f"  whole replay: {done - t0:.1f} s (produce → last verdict committed), worker CPU {cpu:.1f} s")
    finally:
        d.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["small", "default"], default="default")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--broker", default=os.environ.get("ZHENGAI_TEST_KAFKA", "127.0.0.1:19092"))
    ap.add_argument(
        "--url", default=os.environ.get("ZHENGAI_TEST_PG_URL", DEFAULT_PG), help="a role that may create databases"
    )
    ap.add_argument("--paced", type=int, nargs="*", default=[2000, 5000], help="paced rates (observations/s)")
    ap.add_argument("--paced-seconds", type=float, default=10.0)
    ap.add_argument("--skip", nargs="*", default=[], choices=["bulk", "ceiling", "drain", "replay"])
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="zhengai-bench-"))
    print(f"reading the {args.size} demo college through its connectors …", flush=True)
    records, observations, directory = college(args.size, workdir)
    directory_records = [r for r in records if isinstance(r, (Entity, Person))]
    print(
        f"{len(records)} source records ({len(directory_records)} directory), {len(observations)} observations in all"
    )

    if "bulk" not in args.skip:
        bulk = phase_bulk(args, workdir, directory_records, observations, directory)
        try:
            bulk["deployment"].stop_workers()  # the ceiling reads the bulk topic on a quiet machine
            if "ceiling" not in args.skip:
                bare = phase_ceiling(args, workdir, bulk, directory)
        finally:
            bulk["deployment"].close()
    if "drain" not in args.skip:
        phase_drain(args, workdir, directory_records, observations, directory, locals().get("bare"))
    if "replay" not in args.skip:
        phase_replay(args, workdir, records)


if __name__ == "__main__":
    main()
