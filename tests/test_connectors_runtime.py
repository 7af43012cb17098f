"""The run-time framework: schedules, health and the overdue warning, the run loop with backoff
by error type, stop requests, after-delivery hooks, and the SQL bookmark store on SQLite."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from prometheus_client import REGISTRY

from zhengai.connectors import (
    Connector,
    ConnectorHealth,
    ConnectorJob,
    FatalSourceError,
    MemoryBookmarks,
    RetryableSourceError,
    Runner,
    Schedule,
    SqlBookmarks,
    Stream,
    run_connector,
)
from zhengai.connectors.base import Row
from zhengai.connectors.errors import FatalDeliveryError, RetryableDeliveryError
from zhengai.connectors.schedule import format_duration
from zhengai.connectors.testing import ListDelivery
from zhengai.connectors.values import CHINA_TZ
from zhengai.ingest.records import GradeEvent

T0 = datetime(2026, 9, 7, 2, 0, tzinfo=UTC)


def grade(i: int) -> dict:
    return {"id": i, "updated_at": f"2026-09-07T10:{i:02d}:00+08:00"}


class Grades(Stream):
    connector = "fake"
    name = "grades"
    primary_key = ("id",)
    cursor_field = "updated_at"

    def __init__(self, rows: list[dict], error: Exception | None = None) -> None:
        self.rows, self.error = rows, error
        self.delivered: list[list[int]] = []

    def read(self, cursor: str | None) -> Iterator[Row]:
        if self.error is not None:
            raise self.error
        yield from (r for r in self.rows if cursor is None or r["updated_at"] > cursor)

    def map(self, row: Row) -> list[GradeEvent]:
        return [
            GradeEvent(
                occurred_at=row["updated_at"],
                source=self.source,
                key=f"fake:{row['id']}",
                student_id="S1",
                course_id="C1",
                term="2026-2027-1",
                score=80,
                credits=2,
            )
        ]

    def cursor_time(self, cursor: str) -> datetime:
        return datetime.fromisoformat(cursor)

    def after_delivery(self, delivered) -> None:  # type: ignore[no-untyped-def]
        self.delivered.append([row["id"] for row, _ in delivered])


class Fake(Connector):
    name: ClassVar[str] = "fake"

    def __init__(self, *streams: Stream) -> None:
        self.streams = streams


def metric(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


# --- schedules ---------------------------------------------------------------------------------


def test_interval_schedule() -> None:
    s = Schedule(every=timedelta(minutes=15))
    assert s.next_after(T0) == T0 + timedelta(minutes=15)
    assert s.period(T0) == timedelta(minutes=15)
    assert str(s) == "every 15m"


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # 02:00 Beijing time is 18:00 UTC the day before, whatever the host's zone.
        ("0 2 * * *", T0, datetime(2026, 9, 7, 18, 0, tzinfo=UTC)),
        ("*/15 * * * *", T0 + timedelta(minutes=1), T0 + timedelta(minutes=15)),
        (
            "0 8 * * 1-5",
            datetime(2026, 9, 11, 1, 0, tzinfo=UTC),  # Friday 09:00 CST
            datetime(2026, 9, 14, 0, 0, tzinfo=UTC),
        ),  # → Monday 08:00 CST
    ],
)
def test_cron_schedule_in_beijing_time(expr: str, after: datetime, expected: datetime) -> None:
    assert Schedule(cron=expr, tz=CHINA_TZ).next_after(after) == expected


def test_schedule_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Schedule()
    with pytest.raises(ValueError, match="exactly one"):
        Schedule(every=timedelta(minutes=1), cron="* * * * *")
    with pytest.raises(ValueError, match="not a valid cron"):
        Schedule(cron="every day")
    with pytest.raises(ValueError, match="positive"):
        Schedule(every=timedelta(0))
    assert Schedule(cron="0 2 * * *").period(T0) == timedelta(days=1)
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(timedelta(seconds=0.5)) == "0.5s"


# --- health ------------------------------------------------------------------------------------


def test_overdue_warning_once_per_episode_and_recovery(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="zhengai.connectors.health")
    connector = Fake(Grades([grade(1)]))
    health = ConnectorHealth("fake_health", timedelta(hours=1), started=T0)
    assert not health.check(T0 + timedelta(minutes=59))
    warned_before = metric("zhengai_connector_overdue_warnings_total", connector="fake_health") or 0
    assert health.check(T0 + timedelta(minutes=61))
    assert not health.check(T0 + timedelta(minutes=90))  # one warning per episode
    assert metric("zhengai_connector_overdue", connector="fake_health") == 1
    assert metric("zhengai_connector_overdue_warnings_total", connector="fake_health") == warned_before + 1
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage().startswith("event=connector_overdue connector=fake_health ")
    assert "expected_within_s=3600" in warning.getMessage() and "last_success=never" in warning.getMessage()
    assert warning.event == "connector_overdue"  # type: ignore[attr-defined]

    report = run_connector(connector, ListDelivery(), MemoryBookmarks(), now=lambda: T0)
    now = T0 + timedelta(hours=2)
    health.record(report, connector, now)
    assert not health.overdue and health.last_success == now
    assert metric("zhengai_connector_overdue", connector="fake_health") == 0
    assert "event=connector_recovered" in caplog.text
    # lag: the newest delivered row is 10:01 CST = 02:01 UTC, two hours before
    assert health.lag["grades"] == timedelta(hours=1, minutes=59)
    assert metric("zhengai_connector_lag_seconds", connector="fake_health", stream="grades") == 7140
    assert health.summary()["sent"] == 1


def test_failed_runs_count_and_do_not_reset_the_window() -> None:
    connector = Fake(Grades([], error=FatalSourceError("table gone")))
    health = ConnectorHealth("fake_fail", timedelta(minutes=30), started=T0)
    report = run_connector(connector, ListDelivery(), MemoryBookmarks())
    health.record(report, connector, T0 + timedelta(minutes=10))
    health.record(report, connector, T0 + timedelta(minutes=20))
    assert health.consecutive_failures == 2
    assert health.last_error == "grades: source failed (fatal): table gone"
    assert health.check(T0 + timedelta(minutes=31))


# --- the runner ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind", "retry_soon"),
    [
        (RetryableSourceError("connection reset"), "retryable", True),
        (FatalSourceError("no such table"), "fatal", False),
    ],
)
def test_backoff_by_error_type(error: Exception, kind: str, retry_soon: bool) -> None:
    connector = Fake(Grades([], error=error))
    job = ConnectorJob(
        connector, Schedule(every=timedelta(hours=1)), ConnectorHealth("fake", timedelta(hours=3), started=T0)
    )
    report = job.run(ListDelivery(), MemoryBookmarks(), lambda: T0)
    assert report.streams["grades"].error_kind == kind
    assert report.retryable is retry_soon
    nxt = job.plan_next(report, T0)
    if retry_soon:  # 30 s ± 10 % after the first failure, well before the next tick
        assert T0 + timedelta(seconds=26) <= nxt <= T0 + timedelta(seconds=34)
    else:  # retrying a fatal error soon cannot help: wait for the schedule
        assert nxt == T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (RetryableDeliveryError("broker down"), "retryable"),
        (FatalDeliveryError("message too large"), "fatal"),
        (ConnectionError("reset"), "retryable"),  # an untyped delivery failure is assumed transient
    ],
)
def test_delivery_error_kinds(exc: Exception, kind: str) -> None:
    class Failing(ListDelivery):
        def deliver(self, records):  # type: ignore[no-untyped-def]
            raise exc

    report = run_connector(Fake(Grades([grade(1)])), Failing(), MemoryBookmarks())
    assert report.streams["grades"].error_kind == kind
    assert report.streams["grades"].error.startswith("delivery failed: ")


def test_after_delivery_sees_each_acknowledged_batch_only() -> None:
    stream = Grades([grade(i) for i in range(1, 6)])
    run_connector(Fake(stream), ListDelivery(fail=lambda n, _: n == 2), MemoryBookmarks(), batch_size=2)
    assert stream.delivered == [[1, 2]]  # the failed batch never reached the hook


def test_stop_request_ends_a_run_between_batches() -> None:
    stream = Grades([grade(i) for i in range(1, 8)])
    bookmarks = MemoryBookmarks()
    delivery = ListDelivery()
    report = run_connector(Fake(stream), delivery, bookmarks, batch_size=3, should_stop=lambda: delivery.calls >= 1)
    stats = report.streams["grades"]
    assert stats.stopped and report.ok and stats.read == 3
    assert bookmarks.get("fake", "grades") == grade(3)["updated_at"]
    report = run_connector(Fake(stream), delivery, bookmarks, batch_size=3)
    assert delivery.keys() == {f"fake:{i}" for i in range(1, 8)}


def test_run_once_and_the_loop() -> None:
    stream = Grades([grade(1), grade(2)])
    bookmarks = MemoryBookmarks()
    job = ConnectorJob(
        Fake(stream),
        Schedule(every=timedelta(seconds=0.05)),
        ConnectorHealth("fake_loop", timedelta(hours=1), started=datetime.now(UTC)),
    )
    delivery = ListDelivery()
    runner = Runner([job], delivery, bookmarks, health_tick=timedelta(seconds=0.02))
    reports = runner.run_once()
    assert reports["fake"].ok and len(delivery.records) == 2

    stream.rows.append(grade(3))
    stop = threading.Event()
    thread = threading.Thread(target=runner.run_forever, args=(stop,))
    thread.start()
    time.sleep(0.4)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert delivery.keys() == {"fake:1", "fake:2", "fake:3"}
    assert len(delivery.records) == 3  # later runs found nothing new
    assert job.health.last_success is not None and not job.health.overdue


def test_runner_survives_a_broken_bookmark_store() -> None:
    class Broken(MemoryBookmarks):
        def get(self, connector: str, stream: str) -> str | None:
            raise OSError("disk gone")

    job = ConnectorJob(
        Fake(Grades([grade(1)])),
        Schedule(every=timedelta(minutes=5)),
        ConnectorHealth("fake_broken", timedelta(hours=1), started=T0),
    )
    report = job.run(ListDelivery(), Broken(), lambda: T0)
    assert not report.ok and report.retryable
    assert job.health.consecutive_failures == 1
    with pytest.raises(ValueError, match="listed twice"):
        Runner([job, job], ListDelivery(), MemoryBookmarks())


# --- SQL bookmarks -----------------------------------------------------------------------------


def test_sql_bookmarks_on_sqlite_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    store = SqlBookmarks(url)
    rows = [grade(i) for i in range(1, 4)]
    run_connector(Fake(Grades(rows)), ListDelivery(), store, batch_size=1)
    store.close()
    again = SqlBookmarks(url)  # the table exists: created only if missing
    assert again.get("fake", "grades") == rows[-1]["updated_at"]
    assert again.get("fake", "other") is None
    again.put("fake", "grades", "x")
    assert again.items() == {("fake", "grades"): "x"}
    again.close()
    con = sqlite3.connect(tmp_path / "state.sqlite")
    cols = [r[1] for r in con.execute("PRAGMA table_info(connector_bookmarks)")]
    assert cols == ["connector", "stream", "value", "updated_at"]
    assert con.execute("SELECT count(*) FROM connector_bookmarks").fetchone() == (1,)
    con.close()
    assert "state.sqlite" in repr(again)


def test_sql_bookmarks_keep_an_existing_table(tmp_path: Path) -> None:
    path = tmp_path / "owned.sqlite"
    con = sqlite3.connect(path)  # the store's migration made it, with an extra column
    con.execute(
        "CREATE TABLE connector_bookmarks (connector TEXT, stream TEXT, value TEXT, "
        "updated_at TIMESTAMP, note TEXT DEFAULT 'migrated', "
        "PRIMARY KEY (connector, stream))"
    )
    con.commit()
    con.close()
    store = SqlBookmarks(f"sqlite:///{path}")
    store.put("a", "b", "1")
    store.put("a", "b", "2")
    assert store.get("a", "b") == "2"
    con = sqlite3.connect(path)
    assert con.execute("SELECT value, note FROM connector_bookmarks").fetchall() == [("2", "migrated")]
    con.close()
    store.close()
