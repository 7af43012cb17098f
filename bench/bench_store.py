"""Sustained verdict-write throughput of the warning store on PostgreSQL or TimescaleDB, against a plain COPY.

    python bench/bench_store.py [--verdicts 60000] [--batch 1000] [--url postgresql+psycopg2://...]

Both figures come from the same run on the same server: the store path (idempotent insert of the
verdicts, advisory locks, lifecycle, events and outbox rows, one transaction per batch) and, as the
baseline, ``COPY`` of exactly the same verdict rows into a table of the same shape with the same
indexes (on TimescaleDB a hypertable partitioned like ``verdicts``). The ratio says what
idempotency, concurrency safety and the lifecycle cost. Prints which backend it ran on. Uses a
fresh database that it drops afterwards. No assertions: it prints figures.

What moved the ratio from 0.13 to 0.4–0.64 on a shared two-core machine (issue 11; profiled with
py-spy; the write path is ``zhengai.warnings.batch``):
- a flush per new warning (to learn its id) was the largest single cost: new warnings now go in one
  INSERT … RETURNING, and the changed warnings, events and outbox rows in one statement;
- the verdicts are COPYed straight into their table instead of COPY into a temporary table plus
  INSERT … SELECT … ON CONFLICT (optimistic; a redelivered batch is recognised and looked up);
- their CSV is rendered once per rule, threshold set and instant, streamed to the server as it is
  read, and each verdict goes through the lifecycle as its line is rendered;
- the lifecycle skips verdicts that cannot open a warning and keeps each warning's state for the
  whole batch, writing its row once (changed fields only), read and written with Core, not the ORM;
- a batch costs four round trips: locks with the warnings' state, the COPY, one statement for
  warnings, events and outbox rows, and the commit.
What is left is mostly Python per verdict (its key, CSV line and lifecycle step, ~6 µs), so the
figure moves with the machine's load.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from zhengai.ingest.records import Direction, Level, Thresholds, Verdict, period_start
from zhengai.rules.evaluator import classify
from zhengai.warnings.migrate import storage
from zhengai.warnings.schema import OutboxRow, WarningEventRow, WarningRow
from zhengai.warnings.store import OutboxItem, WarningStore

T0 = datetime(2026, 9, 7, tzinfo=UTC)
TH = Thresholds(direction=Direction.higher_is_better, target=98, standard=90, warning=95)


def make_verdicts(n: int, seed: int = 7) -> list[Verdict]:
    """Weekly attendance verdicts for n/16 students over 16 weeks; about 4 % breach."""
    rng = random.Random(seed)
    students = max(1, n // 16)
    out = []
    for s in range(students):
        base = rng.choice([99.0] * 20 + [94.0, 88.0])
        for w in range(16):
            value = round(min(100.0, max(0.0, base + rng.gauss(0, 1.5))), 2)
            band, reason = classify(value, TH, "%")
            at = T0 + timedelta(weeks=w)
            out.append(
                Verdict(
                    rule_id="student.attendance_rate",
                    rule_version="bench",
                    level=Level.student,
                    entity_id=f"S{s:07d}",
                    metric="student.attendance_rate",
                    period=f"2026-W{37 + w:02d}",
                    value=value,
                    thresholds=TH,
                    band=band,
                    reason=f"个人到课率为{reason}",
                    observed_at=at,
                    evaluated_at=at,
                    observation_key=f"bench|S{s:07d}|{w}",
                )
            )
    out.sort(key=lambda v: (v.entity_id, v.period))
    return out[:n]


def copy_rows(verdicts: list[Verdict]) -> io.StringIO:
    buf = io.StringIO()
    w = csv.writer(buf)
    for v in verdicts:
        w.writerow(
            [
                v.key,
                v.rule_id,
                v.rule_version,
                v.level.value,
                v.entity_id,
                v.metric,
                v.period,
                v.value,
                v.band.value,
                v.reason,
                json.dumps(v.thresholds.model_dump(mode="json"), ensure_ascii=False),
                v.observed_at.isoformat(),
                v.evaluated_at.isoformat(),
                period_start(v.period).isoformat(),
            ]
        )
    buf.seek(0)
    return buf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verdicts", type=int, default=60000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument(
        "--url",
        default=os.environ.get("ZHENGAI_TEST_PG_URL", "postgresql+psycopg2://zhengai:zhengai@127.0.0.1:15432/zhengai"),
    )
    args = ap.parse_args()

    admin = create_engine(args.url, isolation_level="AUTOCOMMIT")
    name = f"zhengai_bench_{os.getpid()}"
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(args.url).set(database=name)
    store = WarningStore(url.render_as_string(hide_password=False))
    try:
        store.create_schema()
        verdicts = make_verdicts(args.verdicts)
        breaches = sum(v.band.is_breach for v in verdicts)

        # baseline: COPY the same rows into a table of the same shape and indexes
        with store.engine.begin() as c:
            c.execute(text("CREATE TABLE verdicts_copy (LIKE verdicts INCLUDING ALL)"))
            if c.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")).scalar():
                c.execute(
                    text(
                        "SELECT create_hypertable('verdicts_copy', 'period_start', "
                        "chunk_time_interval => INTERVAL '90 days')"
                    )
                )
        raw = store.engine.raw_connection()
        try:
            buf = copy_rows(verdicts)
            t = time.perf_counter()
            with raw.cursor() as cur:
                cur.copy_expert(
                    "COPY verdicts_copy (key, rule_id, rule_version, level, entity_id, metric, period, value, band, "
                    "reason, thresholds, observed_at, evaluated_at, period_start) FROM STDIN WITH (FORMAT csv)",
                    buf,
                )
            raw.commit()
            copy_s = time.perf_counter() - t
        finally:
            raw.close()

        # the store path: idempotent verdicts + lifecycle + events + outbox, one transaction per batch
        notify = lambda row, tr: [OutboxItem("console", row.responsible_person_id, tr.kind.value, tr.reason)]  # noqa: E731
        t = time.perf_counter()
        for i in range(0, len(verdicts), args.batch):
            store.apply_verdicts(
                verdicts[i : i + args.batch],
                rule_names={"student.attendance_rate": "个人到课率"},
                responsible=lambda v: ("counsellor", "P0001"),
                on_transition=notify,
            )
        store_s = time.perf_counter() - t

        # replay of everything: the idempotency check path
        t = time.perf_counter()
        for i in range(0, len(verdicts), args.batch):
            store.apply_verdicts(verdicts[i : i + args.batch], rule_names={}, responsible=lambda v: (None, None))
        replay_s = time.perf_counter() - t

        n = len(verdicts)
        print(f"backend: {storage(store.engine)}")
        print(
            f"verdicts: {n} ({breaches} breaching), batch {args.batch},"
            f" PostgreSQL {store.engine.dialect.server_version_info}"
        )
        print(
            f"warnings {store.read.count(WarningRow)}, events {store.read.count(WarningEventRow)},"
            f" outbox {store.read.count(OutboxRow)}"
        )
        print(f"COPY baseline          : {n / copy_s:10.0f} rows/s  ({copy_s:.2f} s)")
        print(f"store apply_verdicts   : {n / store_s:10.0f} rows/s  ({store_s:.2f} s)")
        print(f"store replay (no-op)   : {n / replay_s:10.0f} rows/s  ({replay_s:.2f} s)")
        print(f"ratio store / COPY     : {copy_s / store_s:10.3f}")
    finally:
        store.engine.dispose()
        for attempt in range(5):  # an autovacuum worker in it may take a moment to leave (FORCE needs superuser for it)
            try:
                with admin.connect() as c:
                    c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                break
            except DBAPIError:
                if attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))
        admin.dispose()


if __name__ == "__main__":
    main()
