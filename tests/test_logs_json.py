"""Logs people can search: the JSON log format (zhengai.ingest.logs) says which rule, connector or
warning a line concerns, and the personal-data masking applies to every field. The connector run
goes through the real framework with in-memory streams (as in test_connectors.py)."""

from __future__ import annotations

import io
import json
import logging
from typing import ClassVar

import pytest

from zhengai.connectors import Connector, MemoryBookmarks, RetryableSourceError, Stream, run_connector
from zhengai.connectors.testing import ListDelivery
from zhengai.ingest.logs import JsonFormatter, install_log_policy, log_context, log_format
from zhengai.ingest.records import GradeEvent


def test_json_lines_fields_and_masking():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("zhengai.test.json2")
    log.addHandler(handler)
    log.propagate = False
    try:
        install_log_policy(logger=log)  # the masking record factory
        log.warning("warning for phone 13812345678", extra={"rule": "course.attendance_rate", "warning": 17})
        with log_context(connector="jiaowu", stream="courses"):
            log.error("login of ID 110101200401011234 refused", extra={"event": "source_error"})
            try:
                raise ValueError("row 13812345678 is bad")
            except ValueError:
                log.exception("mapping failed")
        log.warning("outside any context")
    finally:
        log.removeHandler(handler)
    first, second, third, fourth = (json.loads(x) for x in stream.getvalue().splitlines())
    assert first["rule"] == "course.attendance_rate" and first["warning"] == 17 and first["level"] == "WARNING"
    assert first["logger"] == "zhengai.test.json2" and first["ts"].endswith("+00:00")
    assert "13812345678" not in first["message"] and first["message"].startswith("warning for phone 138")
    assert second["connector"] == "jiaowu" and second["stream"] == "courses" and second["event"] == "source_error"
    assert "110101200401011234" not in second["message"]
    assert third["connector"] == "jiaowu" and "ValueError" in third["exception"]
    assert "13812345678" not in third["exception"]
    assert "connector" not in fourth and "rule" not in fourth


def test_the_format_comes_from_the_option_or_the_environment(monkeypatch):
    monkeypatch.delenv("ZHENGAI_LOG_FORMAT", raising=False)
    assert log_format() == "text" and log_format("json") == "json"
    monkeypatch.setenv("ZHENGAI_LOG_FORMAT", "JSON")
    assert log_format() == "json" and log_format("text") == "text"
    with pytest.raises(ValueError, match="日志格式无效"):
        log_format("xml")
    with pytest.raises(ValueError, match="unknown log context"):
        with log_context(student="S1"):
            pass


class _Failing(Stream):
    connector = "fake"
    name = "grades"
    primary_key = ("id",)
    cursor_field = "updated_at"

    def read(self, cursor):
        raise RetryableSourceError("connection reset by 13812345678")
        yield  # pragma: no cover — a generator

    def map(self, row) -> list[GradeEvent]:  # pragma: no cover — nothing is read
        return []


class _Fake(Connector):
    name: ClassVar[str] = "fake"

    def __init__(self, *streams: Stream) -> None:
        self.streams = streams


def test_a_connector_run_logs_its_connector_and_stream():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("zhengai.connectors")
    old_level, old_propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        report = run_connector(_Fake(_Failing()), ListDelivery(), MemoryBookmarks())
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
        log.propagate = old_propagate
    assert not report.ok
    records = [json.loads(x) for x in stream.getvalue().splitlines()]
    stopped = [r for r in records if "stopped at bookmark" in r["message"]]
    assert stopped and stopped[0]["connector"] == "fake" and stopped[0]["stream"] == "grades"
    assert all("13812345678" not in json.dumps(r, ensure_ascii=False) for r in records)
    finished = [r for r in records if "finished" in r["message"]]
    assert finished and finished[0]["connector"] == "fake" and "stream" not in finished[0]
