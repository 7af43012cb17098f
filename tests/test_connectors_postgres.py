"""教务 against a real PostgreSQL server: timestamptz cursors, keyset pages across equal
timestamps, a transaction that commits late with an older timestamp, soft deletes, and the
bookmark table ``connector_bookmarks`` in PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from zhengai.connectors import JiaowuConnector, SqlBookmarks, run_connector
from zhengai.connectors.testing import ListDelivery
from zhengai.ingest.records import AttendanceEvent, GradeEvent

SCHEMA = """
CREATE TABLE attendance (id bigint PRIMARY KEY, student_id text NOT NULL, course_id text NOT NULL,
    week text NOT NULL, scheduled int NOT NULL, attended int NOT NULL, excused int NOT NULL,
    updated_at timestamptz NOT NULL, is_deleted boolean NOT NULL DEFAULT false);
CREATE INDEX attendance_cursor ON attendance (updated_at, id);
CREATE TABLE grades (id bigint PRIMARY KEY, student_id text, course_id text, term text,
    score numeric(5,1), credits numeric(4,1), updated_at timestamptz);
"""
N = 60


def setup(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(sa.text(stmt))
        # Three rows per timestamp, so keyset pages split rows that share one.
        conn.execute(
            sa.text(
                "INSERT INTO attendance SELECT i, '2024010101', 'C0001', '2026-W37', 4, "
                "CASE WHEN i = 13 THEN 9 ELSE 3 END, 0, "
                "timestamptz '2026-09-11 18:00:00+08' + (i / 3) * interval '1 second', i = 20 "
                "FROM generate_series(1, :n) AS i"
            ),
            {"n": N},
        )
        conn.execute(
            sa.text(
                "INSERT INTO grades VALUES (1, '2024010101', 'C0001', '2025-2026-2', 86.5, 3.5, "
                "'2026-07-10 10:00:00+08'), (2, '2024010102', 'C0001', '2025-2026-2', NULL, 3.5, "
                "'2026-07-10 10:00:01+08')"
            )
        )
    return engine


def only(connector: JiaowuConnector, *names: str) -> JiaowuConnector:
    connector.streams = tuple(s for s in connector.streams if s.name in names)
    return connector


def test_incremental_on_postgres_with_bookmarks_in_postgres(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from zhengai.connectors import jiaowu

    engine = setup(pg_url)
    monkeypatch.setattr(jiaowu.Attendance, "page_size", 7)
    bookmarks = SqlBookmarks(pg_url)
    delivery = ListDelivery()
    with only(JiaowuConnector(pg_url, "SCH", lookback=timedelta(0)), "attendance", "grades") as jw:
        report = run_connector(jw, delivery, bookmarks, batch_size=10)
    assert report.ok, report.errors
    keys = [a.key for a in delivery.of(AttendanceEvent)]
    expected = [f"jiaowu:attendance:{i}" for i in range(1, N + 1) if i not in (13, 20)]
    assert keys == expected  # every row once, in cursor order; 13 is bad, 20 soft-deleted
    assert [d.reason for d in delivery.dead_letters] == [
        "AttendanceEvent invalid: (record): Value error, attended + excused exceeds scheduled sessions",
        "score: is missing",
    ]
    assert [g.score for g in delivery.of(GradeEvent)] == [86.5]  # numeric → float

    stored = json.loads(bookmarks.get("jiaowu", "attendance"))
    assert stored["id"] == N
    # timestamptz comes back in the session's zone; the instant is what counts
    assert datetime.fromisoformat(stored["updated_at"]) == datetime.fromisoformat("2026-09-11T18:00:20+08:00")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT connector, stream FROM connector_bookmarks ORDER BY stream")).all()
    assert rows == [("jiaowu", "attendance"), ("jiaowu", "grades")]

    # A restart reads nothing new; an update moves the row past the bookmark.
    again = ListDelivery()
    with only(JiaowuConnector(pg_url, "SCH", lookback=timedelta(0)), "attendance") as jw:
        run_connector(jw, again, SqlBookmarks(pg_url))
        assert again.records == []
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE attendance SET attended = 4, updated_at = timestamptz '2026-09-12 09:00+08' WHERE id = 5"
                )
            )
        run_connector(jw, again, SqlBookmarks(pg_url))
    assert [(a.key, a.attended) for a in again.of(AttendanceEvent)] == [("jiaowu:attendance:5", 4)]
    bookmarks.close()
    engine.dispose()


@pytest.mark.parametrize(("lookback", "picked_up"), [(timedelta(hours=1), True), (timedelta(0), False)])
def test_a_late_commit_with_an_older_timestamp(pg_url: str, lookback: timedelta, picked_up: bool) -> None:
    engine = setup(pg_url)
    late = engine.connect()
    tx = late.begin()  # a 教务 transaction that started earlier and commits late
    late.execute(
        sa.text(
            "INSERT INTO attendance VALUES (1000, '2024010102', 'C0001', "
            "'2026-W37', 4, 2, 1, timestamptz '2026-09-11 18:00:05+08', false)"
        )
    )
    bookmarks = SqlBookmarks(pg_url)
    with only(JiaowuConnector(pg_url, "SCH", lookback=lookback), "attendance") as jw:
        first = ListDelivery()
        run_connector(jw, first, bookmarks)
        assert "jiaowu:attendance:1000" not in first.keys()  # not yet visible
        before = bookmarks.get("jiaowu", "attendance")
        tx.commit()
        late.close()
        second = ListDelivery()
        run_connector(jw, second, bookmarks)
    assert ("jiaowu:attendance:1000" in second.keys()) is picked_up
    assert bookmarks.get("jiaowu", "attendance") == before  # never backwards
    bookmarks.close()
    engine.dispose()


def test_sql_bookmarks_on_postgres(pg_url: str) -> None:
    store = SqlBookmarks(pg_url)
    assert store.get("a", "b") is None
    store.put("a", "b", "1")
    store.put("a", "b", "2")
    store.put("a", "c", "3")
    assert SqlBookmarks(pg_url, create=False).items() == {("a", "b"): "2", ("a", "c"): "3"}
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        kind = conn.execute(
            sa.text(
                "SELECT data_type FROM information_schema.columns WHERE table_name = "
                "'connector_bookmarks' AND column_name = 'updated_at'"
            )
        ).scalar_one()
    assert kind == "timestamp with time zone"
    engine.dispose()
    store.close()
