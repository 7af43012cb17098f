"""教务 over a real SQLite database with the SOURCES.md schema."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from zhengai.connectors import JiaowuConnector, MemoryBookmarks, run_connector
from zhengai.connectors.testing import ListDelivery
from zhengai.ingest.records import (
    AttendanceEvent,
    DeadLetter,
    Entity,
    EntityKind,
    GradeEvent,
    Observation,
)

T0 = datetime.fromisoformat("2026-09-07T10:00:00+08:00")
ID_CARDS = ["110101200401011234", "32010220040202567X", "440103200403039876"]
MOBILES = ["13812345678", "13987654321", "15011112222"]
N_ATTENDANCE = 25

SCHEMA = """
CREATE TABLE departments (id TEXT PRIMARY KEY, name TEXT, dean_id TEXT, dean_name TEXT,
    updated_at TEXT);
CREATE TABLE majors (id TEXT PRIMARY KEY, name TEXT, department_id TEXT, leader_id TEXT,
    leader_name TEXT, updated_at TEXT);
CREATE TABLE classes (id TEXT PRIMARY KEY, name TEXT, major_id TEXT, counsellor_id TEXT,
    counsellor_name TEXT, cohort INTEGER, updated_at TEXT);
CREATE TABLE students (id TEXT PRIMARY KEY, name TEXT, class_id TEXT, id_card TEXT, mobile TEXT,
    status TEXT, updated_at TEXT);
CREATE TABLE courses (id TEXT PRIMARY KEY, name TEXT, major_id TEXT, teacher_id TEXT,
    teacher_name TEXT, weekly_hours REAL, credits REAL, updated_at TEXT);
CREATE TABLE enrollments (student_id TEXT, course_id TEXT, term TEXT);
CREATE TABLE attendance (id INTEGER PRIMARY KEY, student_id TEXT, course_id TEXT, week TEXT,
    scheduled INTEGER, attended INTEGER, excused INTEGER, updated_at TEXT);
CREATE TABLE grades (id INTEGER PRIMARY KEY, student_id TEXT, course_id TEXT, term TEXT,
    score REAL, credits REAL, updated_at TEXT);
CREATE TABLE teaching_plans (major_id TEXT, cohort INTEGER, total_hours REAL,
    practice_hours REAL, updated_at TEXT);
CREATE TABLE course_progress (id INTEGER PRIMARY KEY, course_id TEXT, term TEXT, week TEXT,
    sessions_per_week INTEGER, planned_sessions_cum INTEGER, taught_sessions_cum INTEGER,
    updated_at TEXT);
"""
PROGRESS = [  # (id, course, week, per week, planned to date, taught to date, minutes)
    (1, "C0001", "2026-W37", 2, 2, 2, 0),  # on schedule
    (2, "C0002", "2026-W37", 3, 3, 4, 1),  # a session ahead: counts 0
    (3, "C0001", "2026-W38", 2, 4, 1, 2),  # 3 sessions behind at 2 a week: 1.5 weeks
    (4, "C0002", "2026-W38", 3, 6, 2, 3),  # 4 behind at 3 a week: 1.333… → 1.3
    (5, "C0003", "2026-W38", 0, 4, 4, 4),  # bad: no sessions a week
    (6, "C0003", "2026-W38", 2, 4, -1, 5),  # bad: negative count
    (7, "C0003", "第38周", 2, 4, 4, 6),  # bad: not an ISO week
    (8, "C0003", "2026-W38", 2, "四", 4, 7),  # bad: not a number
]


def ts(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def build_db(path: Path) -> str:
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    con.executemany(
        "INSERT INTO departments VALUES (?,?,?,?,?)",
        [
            ("D01", "信息工程学院", "T0001", "张院长", ts(0)),
            ("D02", "机电工程学院", None, None, ts(0)),  # vacant dean: no responsible person
        ],
    )
    con.executemany(
        "INSERT INTO majors VALUES (?,?,?,?,?,?)",
        [
            ("M0101", "软件技术", "D01", "T0002", "李带头人", ts(0)),
            ("M0102", "大数据技术", "D01", "T0003", "王带头人", ts(0)),
        ],
    )
    con.execute(
        "INSERT INTO classes VALUES (?,?,?,?,?,?,?)",
        ("K01012401", "软件2401", "M0101", "C0001", "赵辅导员", 2024, ts(0)),
    )
    con.executemany(
        "INSERT INTO students VALUES (?,?,?,?,?,?,?)",
        [
            ("2024010101", "陈一", "K01012401", ID_CARDS[0], MOBILES[0], "在读", ts(0)),
            ("2024010102", "林二", "K01012401", ID_CARDS[1], MOBILES[1], "休学", ts(0)),
            ("2024010103", "黄三", None, ID_CARDS[2], MOBILES[2], "在读", ts(0)),  # bad: no class
        ],
    )
    con.execute(
        "INSERT INTO courses VALUES (?,?,?,?,?,?,?,?)",
        ("C0001", "Python程序设计", "M0101", "T0004", "周老师", 4, 3.5, ts(0)),
    )
    con.executemany(
        "INSERT INTO attendance VALUES (?,?,?,?,?,?,?,?)",
        [
            (i, "2024010101", "C0001", "2026-W37", 4, 5 if i == 7 else 3, 0, ts(i - 1))
            for i in range(1, N_ATTENDANCE + 1)  # row 7 is bad: attended > scheduled
        ],
    )
    con.executemany(
        "INSERT INTO grades VALUES (?,?,?,?,?,?,?)",
        [
            (1, "2024010101", "C0001", "2025-2026-2", 86.5, 3.5, ts(1)),
            (2, "2024010102", "C0001", "2025-2026-2", 120, 3.5, ts(2)),  # bad: score > 100
            (3, "2024010102", "C0001", "2025-2026-2", "九十", 3.5, ts(3)),  # bad: not a number
        ],
    )
    con.executemany(
        "INSERT INTO teaching_plans VALUES (?,?,?,?,?)",
        [
            ("M0101", 2023, 2500, 1000, ts(0)),  # older cohort: ignored
            ("M0101", 2024, 2600, 1400, ts(0)),
            ("M0102", 2024, 0, 0, ts(0)),  # bad: no hours
        ],
    )
    con.executemany(
        "INSERT INTO course_progress VALUES (?,?,?,?,?,?,?,?)",
        [(i, cid, "2026-2027-1", week, n, planned, taught, ts(m)) for i, cid, week, n, planned, taught, m in PROGRESS],
    )
    con.commit()
    con.close()
    return f"sqlite:///{path}"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return build_db(tmp_path / "jiaowu.sqlite")


def only(connector: JiaowuConnector, *names: str) -> JiaowuConnector:
    connector.streams = tuple(s for s in connector.streams if s.name in names)
    return connector


def test_full_run_maps_every_table(url: str) -> None:
    delivery = ListDelivery()
    with JiaowuConnector(url, "SCH") as jw:
        report = run_connector(jw, delivery, MemoryBookmarks())
    assert report.ok, report.errors
    entities = {e.id: e for e in delivery.of(Entity)}
    assert entities["D01"].parent_id == "SCH" and entities["D01"].responsible["dean"].id == "T0001"
    assert entities["D02"].responsible == {}
    assert entities["M0101"].parent_id == "D01"
    assert entities["M0101"].responsible["major_leader"].name == "李带头人"
    assert entities["K01012401"].kind is EntityKind.class_
    assert entities["K01012401"].responsible["counsellor"].id == "C0001"
    assert entities["K01012401"].attributes["cohort"] == 2024
    assert entities["2024010102"].attributes == {"status": "休学"}
    assert entities["C0001"].responsible["course_teacher"].id == "T0004"
    assert entities["C0001"].attributes["weekly_hours"] == 4

    attendance = delivery.of(AttendanceEvent)
    assert len(attendance) == N_ATTENDANCE - 1
    assert attendance[0].key == "jiaowu:attendance:1"
    assert attendance[0].source == "jiaowu.attendance"
    assert [g.key for g in delivery.of(GradeEvent)] == ["jiaowu:grades:1"]

    [plan] = [o for o in delivery.of(Observation) if o.metric == "major.practice_hours_ratio"]
    assert (plan.entity_id, plan.period) == ("M0101", "2026")
    assert plan.metric == "major.practice_hours_ratio"
    assert plan.value == pytest.approx(100 * 1400 / 2600, abs=1e-3)
    assert plan.source == "jiaowu.teaching_plans" and plan.level.value == "major"

    reasons = {(d.source, d.reason) for d in delivery.dead_letters}
    assert ("jiaowu.students", "class_id: is missing") in reasons
    assert any(s == "jiaowu.attendance" and "attended + excused exceeds scheduled" in r for s, r in reasons)
    assert any(s == "jiaowu.grades" and "score" in r and "less than or equal to 100" in r for s, r in reasons)
    assert ("jiaowu.grades", "score: '九十' is not a number") in reasons
    assert any(s == "jiaowu.teaching_plans" and r.startswith("total_hours: must be positive") for s, r in reasons)
    assert report.streams["attendance"].rejected == 1
    assert report.streams["attendance"].sent == N_ATTENDANCE - 1
    assert report.streams["course_progress"].sent == 4
    assert report.streams["course_progress"].rejected == 4


def deviations(delivery: ListDelivery) -> dict[tuple[str, str], float]:
    return {
        (o.entity_id, o.period): o.value for o in delivery.of(Observation) if o.metric == "course.schedule_deviation"
    }


def test_course_progress_maps_weeks_behind_the_teaching_schedule(url: str) -> None:
    delivery = ListDelivery()
    with only(JiaowuConnector(url, "SCH"), "course_progress") as jw:
        report = run_connector(jw, delivery, MemoryBookmarks())
    assert not report.errors
    assert deviations(delivery) == {
        ("C0001", "2026-W37"): 0.0,
        ("C0002", "2026-W37"): 0.0,
        ("C0001", "2026-W38"): 1.5,
        ("C0002", "2026-W38"): 1.3,
    }
    obs = next(o for o in delivery.of(Observation) if (o.entity_id, o.period) == ("C0001", "2026-W38"))
    assert obs.level.value == "course" and obs.source == "jiaowu.course_progress"
    assert obs.observed_at == T0 + timedelta(minutes=2)
    assert obs.key == "jiaowu.course_progress|course.schedule_deviation|C0001|2026-W38"
    dead = {json.loads(d.raw)["id"]: d.reason for d in delivery.dead_letters}
    assert set(dead) == {5, 6, 7, 8}
    assert dead[5].startswith("sessions_per_week: must be positive")
    assert dead[6] == "taught_sessions_cum: must not be negative, got -1"
    assert dead[7].startswith("week: ")
    assert dead[8] == "planned_sessions_cum: '四' is not a number"
    assert all(d.source == "jiaowu.course_progress" for d in delivery.dead_letters)


def test_course_progress_is_incremental(url: str, tmp_path: Path) -> None:
    bookmarks = MemoryBookmarks()
    first = ListDelivery()
    with only(JiaowuConnector(url, "SCH", lookback=timedelta(0)), "course_progress") as jw:
        run_connector(jw, first, bookmarks)
    assert json.loads(bookmarks.get("jiaowu", "course_progress"))["id"] == len(PROGRESS)
    # The teacher catches up: a corrected W38 row for C0001 with a later timestamp.
    con = sqlite3.connect(tmp_path / "jiaowu.sqlite")
    con.execute("INSERT INTO course_progress VALUES (9, 'C0001', '2026-2027-1', '2026-W39', 2, 6, 5, ?)", (ts(60),))
    con.execute("UPDATE course_progress SET taught_sessions_cum = 4, updated_at = ? WHERE id = 3", (ts(61),))
    con.commit()
    con.close()
    second = ListDelivery()
    with only(JiaowuConnector(url, "SCH", lookback=timedelta(0)), "course_progress") as jw:
        report = run_connector(jw, second, bookmarks)
    assert report.streams["course_progress"].read == 2  # only what changed since the bookmark
    assert deviations(second) == {("C0001", "2026-W39"): 0.5, ("C0001", "2026-W38"): 0.0}
    assert second.dead_letters == []


def test_student_personal_data_never_leaves(url: str) -> None:
    delivery = ListDelivery()
    with JiaowuConnector(url, "SCH") as jw:
        run_connector(jw, delivery, MemoryBookmarks())
    assert delivery.dead_letters  # the bad student row is among them
    text = "\n".join(r.model_dump_json() for r in delivery.records)
    for secret in ID_CARDS + MOBILES:
        assert secret not in text
        assert json.dumps(secret)[1:-1] not in text


def test_bookmark_advances_only_after_delivery(url: str) -> None:
    bookmarks = MemoryBookmarks()
    failing = ListDelivery(fail=lambda call, _: call == 2)
    jw = only(JiaowuConnector(url, "SCH", lookback=timedelta(0)), "attendance")
    report = run_connector(jw, failing, bookmarks, batch_size=10)

    stats = report.streams["attendance"]
    assert stats.error is not None and stats.error.startswith("delivery failed")
    assert not report.ok
    # The first batch (rows 1..10) was acknowledged; the failed second batch moved nothing.
    first_end = json.loads(bookmarks.get("jiaowu", "attendance"))
    assert first_end == {"id": 10, "updated_at": ts(9)}
    assert stats.bookmark == bookmarks.get("jiaowu", "attendance")
    delivered_first = failing.keys() | {json.loads(d.raw)["id"] for d in failing.dead_letters}

    again = ListDelivery()
    report2 = run_connector(jw, again, bookmarks, batch_size=10)
    assert report2.ok
    assert json.loads(bookmarks.get("jiaowu", "attendance"))["id"] == N_ATTENDANCE
    # Resumed strictly after row 10: the rest, and nothing lost.
    assert min(int(k.rsplit(":", 1)[1]) for k in again.keys()) == 11
    every_row = {f"jiaowu:attendance:{i}" for i in range(1, N_ATTENDANCE + 1) if i != 7}
    assert failing.keys() | again.keys() == every_row
    assert 7 in delivered_first  # the bad row went to the dead letters with batch 1


def test_rerun_with_lookback_rereads_without_loss(url: str) -> None:
    bookmarks = MemoryBookmarks()
    jw = only(JiaowuConnector(url, "SCH"), "attendance")  # default lookback: 1 hour
    first = ListDelivery(fail=lambda call, _: call == 2)
    run_connector(jw, first, bookmarks, batch_size=10)
    second = ListDelivery()
    run_connector(jw, second, bookmarks, batch_size=10)
    # The lookback re-reads rows already delivered: duplicates by key, never a gap.
    assert first.keys() | second.keys() == {f"jiaowu:attendance:{i}" for i in range(1, N_ATTENDANCE + 1) if i != 7}


@pytest.mark.parametrize(("lookback", "seen"), [(timedelta(hours=1), True), (timedelta(0), False)])
def test_late_committed_row_inside_lookback(url: str, lookback: timedelta, seen: bool) -> None:
    bookmarks = MemoryBookmarks()
    jw = only(JiaowuConnector(url, "SCH", lookback=lookback), "attendance")
    run_connector(jw, ListDelivery(), bookmarks)
    before = bookmarks.get("jiaowu", "attendance")

    # A transaction that began earlier commits now: its updated_at is older than the bookmark.
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    con.execute("INSERT INTO attendance VALUES (100,'2024010102','C0001','2026-W37',4,2,1,?)", (ts(3),))
    con.commit()
    con.close()

    delivery = ListDelivery()
    run_connector(jw, delivery, bookmarks)
    assert ("jiaowu:attendance:100" in delivery.keys()) is seen
    # A re-read of older rows never moves the bookmark backwards.
    assert bookmarks.get("jiaowu", "attendance") == before


def test_batches_and_on_batch_callback(url: str) -> None:
    calls: list[tuple[str, int]] = []
    jw = only(JiaowuConnector(url, "SCH"), "attendance")
    delivery = ListDelivery()
    report = run_connector(
        jw, delivery, MemoryBookmarks(), batch_size=10, on_batch=lambda source, n: calls.append((source, n))
    )
    assert calls == [("jiaowu.attendance", 10), ("jiaowu.attendance", 10), ("jiaowu.attendance", 5)]
    assert report.streams["attendance"].batches == 3 and delivery.calls == 3


def test_small_pages_read_every_row(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from zhengai.connectors import jiaowu

    # Keyset pages smaller than the batch, and rows sharing one updated_at across a page edge.
    monkeypatch.setattr(jiaowu.Attendance, "page_size", 4)
    monkeypatch.setattr(jiaowu.Students, "page_size", 1)
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    con.execute("UPDATE attendance SET updated_at = ? WHERE id BETWEEN 3 AND 9", (ts(2),))
    con.commit()
    con.close()
    delivery = ListDelivery()
    with JiaowuConnector(url, "SCH", lookback=timedelta(0)) as jw:
        report = run_connector(only(jw, "attendance", "students"), delivery, MemoryBookmarks())
    assert report.streams["attendance"].read == N_ATTENDANCE
    assert report.streams["students"].read == 3


def test_missing_table_is_a_fatal_stream_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    sqlite3.connect(path).close()
    with JiaowuConnector(f"sqlite:///{path}", "SCH") as jw:
        report = run_connector(jw, ListDelivery(), MemoryBookmarks())
    assert set(report.errors) == {s.name for s in jw.streams}
    assert "source failed (fatal)" in report.errors["attendance"]
    assert "no such table" in report.errors["attendance"]


def test_corrupt_bookmark_is_reported(url: str) -> None:
    bookmarks = MemoryBookmarks({("jiaowu", "attendance"): "not json"})
    report = run_connector(only(JiaowuConnector(url, "SCH"), "attendance"), ListDelivery(), bookmarks)
    assert "stored bookmark is not an (updated_at, id) cursor" in report.errors["attendance"]


def test_dead_letter_shape(url: str) -> None:
    delivery = ListDelivery()
    run_connector(only(JiaowuConnector(url, "SCH"), "grades"), delivery, MemoryBookmarks())
    dead = [d for d in delivery.dead_letters if isinstance(d, DeadLetter)]
    assert {json.loads(d.raw)["id"] for d in dead} == {2, 3}
    assert all(d.source == "jiaowu.grades" and d.at.tzinfo is not None for d in dead)
