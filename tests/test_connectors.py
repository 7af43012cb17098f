"""The connector framework through in-memory streams: batching, bookmarks, dead letters,
masking, retry. Real sources are in test_connectors_{jiaowu,caiwu,http}.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import ClassVar

import pytest
from pydantic import ValidationError

from zhengai.connectors import (
    CONNECTORS,
    Connector,
    MappingError,
    MemoryBookmarks,
    Reject,
    RetryableSourceError,
    RetryPolicy,
    Stream,
    connector_class,
    run_connector,
)
from zhengai.connectors.base import Row, validation_reason
from zhengai.connectors.errors import FatalSourceError
from zhengai.connectors.testing import ListDelivery
from zhengai.ingest.privacy import mask_row, mask_value
from zhengai.ingest.records import GradeEvent, Person

NOW = datetime(2026, 9, 7, 2, 0, tzinfo=UTC)


def grade_row(i: int, **kw: object) -> dict:
    row = {
        "id": i,
        "student_id": f"S{i:03d}",
        "score": 80,
        "id_card": "110101200401011234",
        "mobile": "13812345678",
        "updated_at": f"2026-09-07T10:{i:02d}:00+08:00",
    }
    row.update(kw)
    return row


class Grades(Stream):
    connector = "fake"
    name = "grades"
    primary_key = ("id",)
    cursor_field = "updated_at"

    def __init__(self, rows: list[dict], fail_after: int | None = None) -> None:
        self.rows, self.fail_after = rows, fail_after
        self.seen_cursor: str | None = None
        self.closed = False

    def read(self, cursor: str | None) -> Iterator[Row]:
        self.seen_cursor = cursor
        try:
            for n, row in enumerate(r for r in self.rows if cursor is None or r["updated_at"] > cursor):
                if self.fail_after is not None and n == self.fail_after:
                    raise RetryableSourceError("fake source: connection reset")
                yield row
        finally:
            self.closed = True

    def map(self, row: Row) -> list[GradeEvent | Reject]:
        if row.get("score") == "absent":
            raise MappingError("score: 'absent' is not a score")
        if row.get("partial"):
            return [Reject("note: unreadable, row kept")]
        if row.get("skip"):
            return []
        return [
            GradeEvent(
                occurred_at=row["updated_at"],
                source=self.source,
                key=f"fake:{row['id']}",
                student_id=row["student_id"],
                course_id="C1",
                term="2026-2027-1",
                score=row["score"],
                credits=2,
            )
        ]


class Fake(Connector):
    name: ClassVar[str] = "fake"

    def __init__(self, *streams: Stream) -> None:
        self.streams = streams


def test_batches_bookmark_after_each_delivery() -> None:
    rows = [grade_row(i) for i in range(1, 8)]
    bookmarks = MemoryBookmarks()
    seen: list[str | None] = []

    class Spy(ListDelivery):
        def deliver(self, records):  # type: ignore[no-untyped-def]
            seen.append(bookmarks.get("fake", "grades"))  # not yet advanced for this batch
            super().deliver(records)

    report = run_connector(Fake(Grades(rows)), Spy(), bookmarks, batch_size=3, now=lambda: NOW)
    assert seen == [None, rows[2]["updated_at"], rows[5]["updated_at"]]
    assert bookmarks.get("fake", "grades") == rows[6]["updated_at"]
    stats = report.streams["grades"]
    assert (stats.read, stats.sent, stats.rejected, stats.batches) == (7, 7, 0, 3)
    assert report.started == report.finished == NOW and report.ok


def test_source_failure_keeps_last_acknowledged_bookmark() -> None:
    rows = [grade_row(i) for i in range(1, 8)]
    stream = Grades(rows, fail_after=4)
    bookmarks = MemoryBookmarks()
    delivery = ListDelivery()
    report = run_connector(Fake(stream), delivery, bookmarks, batch_size=2)
    assert report.errors == {"grades": "source failed (retryable): fake source: connection reset"}
    assert bookmarks.get("fake", "grades") == rows[3]["updated_at"]
    assert len(delivery.records) == 4
    stream.fail_after = None
    run_connector(Fake(stream), delivery, bookmarks, batch_size=2)
    assert stream.seen_cursor == rows[3]["updated_at"]
    assert delivery.keys() == {f"fake:{i}" for i in range(1, 8)}


def test_delivery_failure_closes_the_reader_and_other_streams_still_run() -> None:
    class Other(Grades):
        name = "other"

    first, second = Grades([grade_row(i) for i in range(1, 6)]), Other([grade_row(9)])
    delivery = ListDelivery(fail=lambda call, _: call == 1)
    report = run_connector(Fake(first, second), delivery, MemoryBookmarks(), batch_size=2)
    assert report.errors["grades"] == ("delivery failed: DeliveryFailed: simulated delivery failure on call 1")
    assert first.closed
    assert report.streams["other"].sent == 1 and report.streams["grades"].sent == 0


def test_bad_rows_become_dead_letters_and_the_stream_goes_on() -> None:
    rows = [
        grade_row(1),
        grade_row(2, score="absent"),
        grade_row(3, score=130),
        grade_row(4, student_id=None),
        grade_row(5, partial=True),
        grade_row(6, skip=True),
        grade_row(7),
    ]
    del rows[3]["student_id"]
    delivery = ListDelivery()
    report = run_connector(Fake(Grades(rows)), delivery, MemoryBookmarks(), now=lambda: NOW)
    reasons = [d.reason for d in delivery.dead_letters]
    assert reasons == [
        "score: 'absent' is not a score",
        "GradeEvent invalid: score: Input should be less than or equal to 100",
        "row does not fit the mapping (KeyError 'student_id')",
        "note: unreadable, row kept",
    ]
    assert all(d.source == "fake.grades" and d.at == NOW for d in delivery.dead_letters)
    assert delivery.keys() == {"fake:1", "fake:7"}
    stats = report.streams["grades"]
    assert (stats.read, stats.sent, stats.rejected) == (7, 2, 4)
    assert stats.bookmark == rows[-1]["updated_at"]  # dead-lettered rows are past too


def test_dead_letters_mask_personal_data() -> None:
    delivery = ListDelivery()
    run_connector(Fake(Grades([grade_row(1, score="absent")])), delivery, MemoryBookmarks())
    [dead] = delivery.dead_letters
    raw = json.loads(dead.raw)
    assert raw["id_card"] == "110***********1234"
    assert raw["mobile"] == "138****5678"
    assert "13812345678" not in dead.model_dump_json()
    assert "110101200401011234" not in dead.model_dump_json()


def test_mask_row_nested_and_chinese_keys() -> None:
    row = {
        "身份证号": "44010320040303987X",
        "联系电话": "020-12345678",
        "手机号": 13987654321,
        "head": {"mobile": "13900000001", "name": "张三"},
        "list": [{"phone": "1234"}],
        "name": "李四",
        "mobile": None,
    }
    assert mask_row(row) == {
        "身份证号": "440***********987X",
        "联系电话": "020*****5678",
        "手机号": "139****4321",
        "head": {"mobile": "139****0001", "name": "张三"},
        "list": [{"phone": "****"}],
        "name": "李四",
        "mobile": None,
    }
    assert mask_value("13812345678") == "138****5678"


def test_validation_reason_names_fields_not_values() -> None:
    with pytest.raises(ValidationError) as err:
        Person(id="bad id!", name="", mobile="12345678901234567890")
    reason = validation_reason(err.value)
    assert reason.startswith("Person invalid: id: String should match pattern")
    assert "name: String should have at least 1 character" in reason
    assert "mobile: String should match pattern" in reason
    assert "12345678901234567890" not in reason and "bad id!" not in reason


def test_bookmark_never_moves_backwards() -> None:
    rows = [grade_row(5), grade_row(3)]  # a re-read older row arrives after a newer one
    bookmarks = MemoryBookmarks()
    run_connector(Fake(Grades(rows)), ListDelivery(), bookmarks)
    assert bookmarks.get("fake", "grades") == rows[0]["updated_at"]


def test_runner_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        run_connector(Fake(), ListDelivery(), MemoryBookmarks(), batch_size=0)

    class Stray(Grades):
        connector = "elsewhere"

    with pytest.raises(ValueError, match="belongs to 'elsewhere'"):
        run_connector(Fake(Stray([])), ListDelivery(), MemoryBookmarks())


def test_retry_policy_backoff() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=5, base_delay=1, factor=2, max_delay=5, jitter=0, sleep=sleeps.append)
    calls = iter(
        [
            RetryableSourceError("a"),
            RetryableSourceError("b", retry_after=60),
            RetryableSourceError("c"),
            RetryableSourceError("d"),
            "ok",
        ]
    )

    def flaky() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert policy.call(flaky, what="test") == "ok"
    assert sleeps == [1, 5, 4, 5]  # base·2^n capped at 5; the source's hint capped too


def test_retry_policy_does_not_retry_fatal() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(sleep=sleeps.append)

    def broken() -> None:
        raise FatalSourceError("gone")

    with pytest.raises(FatalSourceError):
        policy.call(broken, what="test")
    assert sleeps == []
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_registry() -> None:
    from zhengai.connectors.tables import SYSTEMS

    assert set(CONNECTORS) == {"jiaowu", "renshi", "pingjiao", "caiwu", *SYSTEMS}
    assert connector_class("caiwu").name == "caiwu"
    with pytest.raises(KeyError, match="known: caiwu, dudao, jiaowu, kecheng"):
        connector_class("dingtalk")


def test_json_file_bookmarks_survive_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from zhengai.connectors import JsonFileBookmarks

    path = tmp_path / "state" / "bookmarks.json"
    rows = [grade_row(i) for i in range(1, 4)]
    run_connector(Fake(Grades(rows)), ListDelivery(), JsonFileBookmarks(path))
    assert JsonFileBookmarks(path).get("fake", "grades") == rows[-1]["updated_at"]
    assert JsonFileBookmarks(path).get("fake", "other") is None
    assert [p.name for p in path.parent.iterdir()] == ["bookmarks.json"]  # no temp files left


def test_memory_bookmarks() -> None:
    store = MemoryBookmarks({("a", "s"): "1"})
    store.put("a", "t", "2")
    assert store.get("a", "s") == "1" and store.get("b", "s") is None
    assert store.items() == {("a", "s"): "1", ("a", "t"): "2"}
