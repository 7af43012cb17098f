"""Quiet, resumable operations: connectors wait out a broker outage within their run, a long
lookback re-send stores its position, keyset pages seek by row value, the one retry primitive
caps the store's backoff, and the warnings CLI takes ``--store`` after the subcommand and refuses
over-long input with a Chinese error (on the real PostgreSQL server)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar

import pytest

from zhengai.cli import main
from zhengai.connectors.base import MemoryBookmarks, run_connector
from zhengai.connectors.errors import RetryableDeliveryError
from zhengai.connectors.sql import IncrementalSqlStream, SqlSource
from zhengai.ingest.records import AttendanceEvent
from zhengai.ingest.retrying import Backoff, delay
from zhengai.ingest.stream import _STORE_BACKOFF, STORE_MAX_BACKOFF

T0 = datetime(2026, 10, 5, 8, 0, tzinfo=timezone(timedelta(hours=8)))


def _db(path: Path, n: int, start: int = 1, minutes: int = 0) -> str:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE IF NOT EXISTS attendance (id INTEGER PRIMARY KEY, student_id TEXT, updated_at TEXT)")
    con.execute("CREATE INDEX IF NOT EXISTS attendance_updated ON attendance (updated_at, id)")
    # many rows share a timestamp, as a bulk import writes them: the id breaks the ties
    con.executemany(
        "INSERT INTO attendance VALUES (?, ?, ?)",
        [(i, f"S{i:04d}", (T0 + timedelta(minutes=minutes + i // 7)).isoformat()) for i in range(start, start + n)],
    )
    con.commit()
    con.close()
    return f"sqlite:///{path}"


class Rows(IncrementalSqlStream):
    connector: ClassVar[str] = "t"
    name = table = "attendance"
    primary_key: ClassVar[tuple[str, ...]] = ("id",)
    page_size: ClassVar[int] = 8

    def map(self, row):
        return [
            AttendanceEvent(
                occurred_at=row["updated_at"],
                source=self.source,
                key=f"t:{row['id']}",
                student_id=row["student_id"],
                course_id="C1",
                week="2026-W41",
                scheduled=2,
                attended=2,
                excused=0,
            )
        ]


class Conn:
    name = "t"

    def __init__(self, stream):
        self.streams = (stream,)

    def close(self):
        pass


class Collect:
    def __init__(self, fail_first: int = 0):
        self.keys: list[str] = []
        self.calls = 0
        self.fail_first = fail_first

    def deliver(self, records):
        self.calls += 1
        if self.calls <= self.fail_first:
            raise RetryableDeliveryError("broker down: NoBrokersAvailable")
        self.keys += [r.key for r in records]


def test_keyset_pages_use_row_values_and_read_every_row_once(tmp_path: Path) -> None:
    db = SqlSource(_db(tmp_path / "s.sqlite", 100))
    stream = Rows(db)
    statements = []
    fetch = db.fetch
    db.fetch = lambda stmt, what: statements.append(str(stmt.compile(db.engine))) or fetch(stmt, what=what)
    ids = [r["id"] for r in stream.read(None)]
    assert ids == list(range(1, 101))
    assert all("(attendance.updated_at, attendance.id) > (?, ?)" in s for s in statements[1:]), statements[1]


def test_a_broker_outage_within_the_run_is_waited_out() -> None:
    rows = Collect(fail_first=2)
    report = run_connector(Conn(_MemStream()), rows, MemoryBookmarks(), batch_size=5, delivery_patience=30.0)
    assert report.ok, report.errors
    assert rows.calls == 2 + 2 and len(rows.keys) == 10
    failing = Collect(fail_first=10**6)
    report = run_connector(Conn(_MemStream()), failing, MemoryBookmarks(), batch_size=5, delivery_patience=0.0)
    assert not report.ok and report.retryable and failing.calls == 1


class _MemStream(Rows):
    """Ten rows from memory, incremental like the SQL stream (no database needed)."""

    def __init__(self):
        pass

    @property
    def db(self):  # cursor_time/_shift need a tz
        from zhengai.connectors.values import CHINA_TZ

        class _D:
            tz = CHINA_TZ

        return _D()

    def read(self, cursor):
        return [
            {"id": i, "student_id": f"S{i}", "updated_at": (T0 + timedelta(minutes=i)).isoformat()}
            for i in range(1, 11)
        ]


def test_a_stopped_lookback_resend_resumes_where_it_stopped(tmp_path: Path) -> None:
    url = _db(tmp_path / "s.sqlite", 60)
    bookmarks = MemoryBookmarks()
    first = Collect()
    run_connector(Conn(Rows(SqlSource(url), lookback=timedelta(days=1))), first, bookmarks, batch_size=10)
    assert len(first.keys) == 60
    end = bookmarks.get("t", "attendance")
    assert json.loads(end) == {"id": 60, "updated_at": (T0 + timedelta(minutes=60 // 7)).isoformat()}

    # The next run re-sends the whole lookback window (60 rows); it is stopped after two batches.
    stopped = Collect()
    report = run_connector(
        Conn(Rows(SqlSource(url), lookback=timedelta(days=1))),
        stopped,
        bookmarks,
        batch_size=10,
        should_stop=lambda: stopped.calls >= 2,
    )
    assert report.streams["attendance"].stopped and len(stopped.keys) == 20
    marked = json.loads(bookmarks.get("t", "attendance"))
    assert marked["id"] == 60 and marked["resend_after"][1] == 20, marked  # the bookmark moved on

    # New rows arrive; the next run resumes the re-send after row 20, then reads the new rows.
    _db(tmp_path / "s.sqlite", 5, start=61, minutes=60)
    resumed = Collect()
    run_connector(Conn(Rows(SqlSource(url), lookback=timedelta(days=1))), resumed, bookmarks, batch_size=10)
    assert resumed.keys == [f"t:{i}" for i in range(21, 66)]
    assert json.loads(bookmarks.get("t", "attendance"))["id"] == 65
    assert "resend_after" not in json.loads(bookmarks.get("t", "attendance")), "a finished read clears the marker"

    # And the run after that does the whole lookback window again (late commits are still found).
    again = Collect()
    run_connector(Conn(Rows(SqlSource(url), lookback=timedelta(days=1))), again, bookmarks, batch_size=10)
    assert len(again.keys) == 65


def test_one_backoff_curve_capped_for_the_store() -> None:
    assert [delay(n, 0.5, 30.0) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert STORE_MAX_BACKOFF <= 5.0
    assert max(_STORE_BACKOFF.seconds(n) for n in range(1, 40)) <= STORE_MAX_BACKOFF * 1.1
    hinted = Backoff(1.0, 10.0, jitter=0, hint=lambda exc: 3.0)
    assert hinted.seconds(5, RuntimeError()) == 3.0 and hinted.seconds(5) == 10.0


def test_warnings_cli_store_after_the_subcommand_and_bounded_input(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["warnings", "migrate", "--store", pg_url]) == 0
    assert main(["warnings", "--store", pg_url, "migrate"]) == 0
    out, _ = capsys.readouterr()
    assert out.count("store schema at revision") == 2 and "(postgresql)" in out
    from zhengai.warnings.schema import WarningRow
    from zhengai.warnings.store import WarningStore

    store = WarningStore(pg_url)
    now = datetime.now(UTC)
    with store.session() as s, s.begin():
        s.add(
            WarningRow(
                rule_id="student.gpa",
                rule_name="学生平均学分绩点",
                entity_id="S1",
                episode=1,
                level="student",
                metric="student.gpa",
                status="open",
                band="red",
                worst_band="red",
                opened_period="2026-2027-1",
                last_period="2026-2027-1",
                value=1.0,
                reason="低于标准值",
                opened_at=now,
                updated_at=now,
            )
        )
    wid = store.read.warnings()[0].id
    code = main(["warnings", "--store", pg_url, "ack", str(wid), "--by", "T" * 100])
    out, err = capsys.readouterr()
    assert code == 1 and "操作人编号过长：100 个字符，最多 64 个" in err and "Traceback" not in err + out
    code = main(["warnings", "ack", str(wid), "--by", "T0001", "--store", pg_url, "--note", "长" * 5000])
    out, err = capsys.readouterr()
    assert code == 1 and "备注过长" in err
    assert store.read.warnings()[0].status == "open", "nothing was written"
