"""The streams added to the four systems: 教务 soft deletes and enrollments, 评教 supervisor
ratings and teacher names, 财务 category tables, 人事 enterprise practice."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from zhengai.connectors import (
    CaiwuConnector,
    JiaowuConnector,
    MemoryBookmarks,
    PingjiaoConnector,
    RenshiConnector,
    run_connector,
)
from zhengai.connectors.http import ApiClient
from zhengai.connectors.testing import ListDelivery
from zhengai.ingest.records import AttendanceEvent, Entity, Observation, Person

TERM = "2026-2027-1"


def soft_delete_db(path: Path) -> str:
    con = sqlite3.connect(path)
    con.executescript("""
    CREATE TABLE departments (id TEXT PRIMARY KEY, name TEXT, dean_id TEXT, dean_name TEXT,
        updated_at TEXT, deleted INTEGER DEFAULT 0);
    CREATE TABLE students (id TEXT PRIMARY KEY, name TEXT, class_id TEXT, id_card TEXT,
        mobile TEXT, status TEXT, updated_at TEXT, is_deleted TEXT);
    CREATE TABLE attendance (id INTEGER PRIMARY KEY, student_id TEXT, course_id TEXT, week TEXT,
        scheduled INTEGER, attended INTEGER, excused INTEGER, updated_at TEXT, deleted_at TEXT);
    CREATE TABLE enrollments (student_id TEXT, course_id TEXT, term TEXT);
    """)
    con.executemany(
        "INSERT INTO departments VALUES (?,?,?,?,?,?)",
        [
            ("D01", "信息工程学院", "T1", "张院长", "2026-09-01T08:00:00+08:00", 0),
            ("D09", "已撤销学院", None, None, "2026-09-02T08:00:00+08:00", 1),
        ],
    )
    con.executemany(
        "INSERT INTO students VALUES (?,?,?,?,?,?,?,?)",
        [
            (
                "2024010101",
                "陈一",
                "K1",
                "110101200401011234",
                "13812345678",
                "在读",
                "2026-09-01T08:00:00+08:00",
                "否",
            ),
            (
                "2024010102",
                "林二",
                "K1",
                "32010220040202567X",
                "13987654321",
                "在读",
                "2026-09-01T08:00:00+08:00",
                "是",
            ),
        ],
    )
    con.executemany(
        "INSERT INTO attendance VALUES (?,?,?,?,?,?,?,?,?)",
        [
            (1, "2024010101", "C1", "2026-W37", 4, 4, 0, "2026-09-11T18:00:00+08:00", None),
            (2, "2024010101", "C1", "2026-W38", 4, 3, 0, "2026-09-18T18:00:00+08:00", "2026-09-19T09:00:00+08:00"),
        ],
    )
    con.executemany(
        "INSERT INTO enrollments VALUES (?,?,?)",
        [
            ("2024010101", "C1", TERM),
            ("2024010102", "C1", TERM),
            ("2024010101", "C2", TERM),
            ("2024010101", "C1", "2025-2026-2"),
        ],
    )
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def test_jiaowu_soft_deletes_and_enrollments(tmp_path: Path) -> None:
    url = soft_delete_db(tmp_path / "jw.sqlite")
    jw = JiaowuConnector(url, "SCH")
    jw.streams = tuple(s for s in jw.streams if s.name in ("departments", "students", "attendance", "enrollments"))
    delivery = ListDelivery()
    with jw:
        report = run_connector(jw, delivery, MemoryBookmarks())
    assert report.ok, report.errors
    entities = {e.id: e for e in delivery.of(Entity)}
    assert entities["D09"].attributes == {"status": "deleted"}  # the directory learns it is gone
    assert entities["D01"].attributes == {}
    assert entities["2024010102"].attributes == {"status": "deleted"}
    assert entities["2024010101"].attributes == {"status": "在读"}
    # the soft-delete column was selected although Students lists its columns; personal ones not
    text = "\n".join(r.model_dump_json() for r in delivery.records)
    assert "13812345678" not in text and "110101200401011234" not in text
    assert [a.key for a in delivery.of(AttendanceEvent)] == ["jiaowu:attendance:1"]
    assert report.streams["attendance"].read == 2 and report.streams["attendance"].sent == 1
    counts = {(o.entity_id, o.period): o.value for o in delivery.of(Observation)}
    assert counts == {("C1", TERM): 2.0, ("C2", TERM): 1.0, ("C1", "2025-2026-2"): 1.0}
    assert {o.metric for o in delivery.of(Observation)} == {"course.enrolled_students"}


SECTIONS = [
    {
        "course_id": "C0001",
        "teacher_id": "T0001",
        "teacher_name": "周老师",
        "term": TERM,
        "score_avg": 91.5,
        "respondents": 38,
        "enrolled": 40,
        "updated_at": "2026-12-20T09:00:00+08:00",
    },
]
RATINGS = [
    {
        "id": 1,
        "course_id": "C0001",
        "teacher_id": "T0001",
        "term": TERM,
        "score": 88,
        "observer_type": "督导",
        "observed_at": "2026-10-09T10:00:00+08:00",
    },
    {
        "id": 2,
        "course_id": "C0001",
        "teacher_id": "T0001",
        "term": TERM,
        "score": "92.0",
        "observer_type": "同行",
        "observed_at": "2026-11-02T10:00:00+08:00",
    },
    {
        "id": 3,
        "course_id": "C0001",
        "teacher_id": "T0001",
        "term": TERM,
        "score": 130,
        "observer_type": "督导",
        "observed_at": "2026-11-20T10:00:00+08:00",
    },
    {
        "id": 4,
        "course_id": "C0002",
        "teacher_id": "T0002",
        "term": TERM,
        "score": 76,
        "observer_type": "督导",
        "observed_at": "2026-10-15T10:00:00+08:00",
    },
    {
        "id": 5,
        "course_id": "C0003",
        "teacher_id": "T0003",
        "term": TERM,
        "score": "缺",
        "observer_type": "督导",
        "observed_at": "2026-10-15T10:00:00+08:00",
    },
]


def eval_api(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/api/login":
        return httpx.Response(200, json={"token": "t"})
    q = request.url.params
    if request.url.path == "/api/eval/sections":
        return httpx.Response(200, json={"items": SECTIONS, "next_cursor": None})
    if request.url.path == "/api/eval/supervisor":
        start, limit = int(q["offset"]), int(q["limit"])
        return httpx.Response(200, json={"items": RATINGS[start : start + limit], "total": len(RATINGS)})
    return httpx.Response(404)


def test_pingjiao_supervisor_ratings_and_teacher_names() -> None:
    from zhengai.connectors.http import OffsetPagination

    client = httpx.Client(transport=httpx.MockTransport(eval_api))
    api = ApiClient("http://pj.invalid", "u", "p", client=client, name="pingjiao")
    pj = PingjiaoConnector(
        None,
        api=api,
        term=TERM,
        supervisor_path="/api/eval/supervisor",
        supervisor_pagination=OffsetPagination(limit=2),
    )
    delivery = ListDelivery()
    report = run_connector(pj, delivery, MemoryBookmarks())
    assert report.ok, report.errors
    rating = {o.entity_id: o for o in delivery.of(Observation) if o.metric == "course.supervisor_rating"}
    assert rating["C0001"].value == 90.0  # (88 + 92) / 2; the 130 is dead-lettered on its own
    assert rating["C0001"].key == f"pingjiao.supervisor|course.supervisor_rating|C0001|T0001|{TERM}"
    assert rating["C0001"].observed_at.isoformat() == "2026-11-02T02:00:00+00:00"
    assert rating["C0002"].value == 76.0 and "C0003" not in rating
    reasons = sorted(d.reason for d in delivery.dead_letters)
    assert reasons == ["rating 3: score: 130 is outside 0..100", "ratings: none of 1 is usable"]
    assert delivery.of(Person) == [Person(id="T0001", name="周老师")]
    assert json.loads(delivery.dead_letters[0].raw)["course_id"] in ("C0001", "C0003")


def test_caiwu_category_table_from_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "年度,科目代码,科目名称,预算数(元),执行数(元)\n"
        '2026,50201,师资培训费,"100,000","90,000"\n'
        "2026,5002,教师培训经费,1,1\n",
        encoding="gbk",
    )
    delivery = ListDelivery()
    run_connector(CaiwuConnector(path, "SCH", categories={"50201": "teacher_training"}), delivery, MemoryBookmarks())
    assert [(e.key, e.category, e.actual) for e in delivery.records] == [
        ("caiwu:SCH:2026:50201", "teacher_training", 90_000.0)
    ]


def test_renshi_bad_hire_year_rejects_the_observation_not_the_teacher() -> None:
    staff = [
        {
            "id": "T1",
            "name": "新教师",
            "type": "teacher",
            "department_id": "D01",
            "enterprise_practice_days": 10,
            "hire_year": 2030,
            "updated_at": "2026-09-01T08:00:00+08:00",
        }
    ]

    def hr(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/login":
            return httpx.Response(200, json={"token": "t"})
        if request.url.path == "/api/school":
            return httpx.Response(200, json={"id": "SCH", "name": "学院"})
        return httpx.Response(200, json={"items": staff, "total": 1})

    rs = RenshiConnector("http://hr.invalid", "u", "p", client=httpx.Client(transport=httpx.MockTransport(hr)))
    delivery = ListDelivery()
    run_connector(rs, delivery, MemoryBookmarks())
    assert [d.reason for d in delivery.dead_letters] == ["hire_year: 2030 is after the year 2026"]
    assert [e.id for e in delivery.of(Entity) if e.kind.value == "teacher"] == ["T1"]


@pytest.mark.parametrize("name", ["jiaowu", "renshi", "pingjiao", "caiwu"])
def test_every_system_declares_what_configuration_needs(name: str) -> None:
    from zhengai.connectors import connector_class

    cls = connector_class(name)
    assert cls.source_kind in ("sql", "http", "files")  # type: ignore[attr-defined]
    assert cls.stream_names and callable(cls.from_config)  # type: ignore[attr-defined]
    assert cls.options_model.model_config.get("extra") == "forbid"  # type: ignore[attr-defined]
