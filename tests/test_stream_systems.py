"""New routes through the streaming runtime: configured 一卡通 and 学工 tables on PostgreSQL →
connector → Kafka → ``python -m zhengai worker`` → the PostgreSQL store, where the processors of
``zhengai.ingest.systems`` compute card inactivity and class dropout rates (the same code the
embedded demo runs)."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from streamkit import college, produce, students, wait_until

from zhengai.connectors.base import MemoryBookmarks, run_connector
from zhengai.connectors.kafka import KafkaDelivery
from zhengai.connectors.tables import SYSTEMS
from zhengai.ingest.systems import percentiles
from zhengai.ingest.topics import ENTITIES


def test_percentiles_rank_from_the_bottom_and_share_ties():
    assert percentiles({"a": 70, "b": 80, "c": 80, "d": 95}) == {"a": 0.0, "b": 50.0, "c": 50.0, "d": 100.0}
    assert percentiles({"a": 88}) == {}


def test_card_and_dropout_routes_reach_the_store_through_kafka_and_the_worker(env, pg_url):
    records = college(students_per_class=10, classes=4)
    ids = students(records)
    today = date.today()
    source = sa.create_engine(pg_url)  # the campus systems' tables live beside the store here
    with source.begin() as c:
        c.execute(sa.text("CREATE TABLE card_daily (xh text, rq text, cs int, PRIMARY KEY (xh, rq))"))
        rows = []
        for i, sid in enumerate(ids):
            quiet = 5 if i == 0 else 0  # the first student: no card record for 5 days
            rows += [
                dict(xh=sid, rq=(today - timedelta(days=b)).isoformat(), cs=0 if b < quiet else 3) for b in range(7)
            ]
        c.execute(sa.text("INSERT INTO card_daily VALUES (:xh, :rq, :cs)"), rows)
        c.execute(sa.text("CREATE TABLE xueji_yidong (xh text, xq text, ls int, gxsj text, PRIMARY KEY (xh, xq))"))
        c.execute(
            sa.text("INSERT INTO xueji_yidong VALUES (:xh, '2026-2027-1', 1, '2026-10-20T10:00:00+08:00')"),
            [dict(xh="S1001"), dict(xh="S1002")],
        )  # two of class K1's ten students left
    produce(env.bootstrap, env.topic(ENTITIES), records)
    worker = env.worker().start()
    tables = [
        dict(
            name="last_active",
            query="SELECT xh, MAX(rq) AS rq, 1 AS cs FROM card_daily WHERE cs > 0 GROUP BY xh",
            level="student",
            entity="xh",
            period="rq",
            metrics={"student.card_swipes": "cs"},
        ),
    ]
    status = [
        dict(
            name="status_changes",
            table="xueji_yidong",
            level="student",
            entity="xh",
            period="xq",
            observed_at="gxsj",
            metrics={"student.dropped_out": "ls"},
        )
    ]
    with KafkaDelivery(env.bootstrap, topic_prefix=env.prefix) as delivery:
        for cls, mapping in ((SYSTEMS["yikatong"], tables), (SYSTEMS["xuegong"], status)):
            with cls(pg_url, mapping) as conn:
                assert run_connector(conn, delivery, MemoryBookmarks()).ok

    def derived():
        return {
            (r[0], r[1]): r[2]
            for r in env.rows(
                "SELECT metric, entity_id, value FROM observations WHERE metric IN "
                "('student.card_inactivity_days', 'student.dropout_rate')"
            )
        }

    wait_until(lambda: len(derived()) >= len(ids) + 4, 90, "card and dropout metrics in the store", worker)
    got = derived()
    assert got[("student.card_inactivity_days", ids[0])] == 5
    assert all(got[("student.card_inactivity_days", s)] == 0 for s in ids[1:])
    assert got[("student.dropout_rate", "K1")] == 20.0
    assert all(got[("student.dropout_rate", k)] == 0.0 for k in ("K2", "K3", "K4"))
    # The inputs are facts, not judged: no verdict and no dead letter for them.
    assert (
        env.scalar("SELECT count(*) FROM verdicts WHERE metric IN ('student.card_swipes', 'student.dropped_out')") == 0
    )
    assert env.scalar("SELECT count(*) FROM dead_letters") == 0
    wait_until(
        lambda: env.rows(
            "SELECT entity_id, worst_band FROM warnings WHERE rule_id IN "
            "('student.card_inactivity_days', 'student.dropout_rate')"
        ),
        60,
        "the warnings",
        worker,
    )
    warned = {
        tuple(r)
        for r in env.rows(
            "SELECT rule_id, entity_id, worst_band FROM warnings WHERE rule_id IN "
            "('student.card_inactivity_days', 'student.dropout_rate')"
        )
    }
    assert warned == {("student.card_inactivity_days", ids[0], "red"), ("student.dropout_rate", "K1", "red")}
