"""Silences people manage (issue 12 item 6), on PostgreSQL: preview before saving, create with
author, reason and expiry, list, expire early (held notices go out), and a notice to the author
when one ends; the CLI over the same store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from zhengai.ingest.records import Band
from zhengai.warnings.notify.config import RoutePolicy
from zhengai.warnings.notify.console import MemorySink
from zhengai.warnings.notify.silence import Silence
from zhengai.warnings.notify.silences import create, expire, list_silences, preview
from zhengai.warnings.notify.testing import NotifyWorld

NOW = RoutePolicy(group_wait=timedelta(0), max_items=1)


@pytest.fixture
def world(pg_url) -> NotifyWorld:
    return NotifyWorld(pg_url, courses=4)


def _silence(world, **kw) -> Silence:
    t = world.clock()
    return Silence(
        starts_at=t,
        ends_at=kw.pop("ends", t + timedelta(days=3)),
        created_by=kw.pop("by", "P-QO"),
        comment=kw.pop("comment", "考勤机更换，数据待核"),
        **kw,
    )


def test_preview_create_list_expire_and_the_expiry_notice(world):
    sink = MemorySink()
    pipeline = world.pipeline(sink, route=NOW)
    world.warn("course.attendance_rate", ["C001", "C002"], Band.red)
    world.warn("student.attendance_rate", world.college.students[0], Band.red)
    silence = _silence(world, rule="course.*", entity_id="C001")
    seen = preview(world.store, silence, world.clock())
    assert [w.entity_id for w in seen.warnings] == ["C001"] and "1 条未关闭预警" in seen.zh
    assert list_silences(world.store, world.clock()) == []  # a preview saves nothing
    sid = create(world.store, silence, world.clock())
    (row,) = list_silences(world.store, world.clock())
    assert (row.id, row.created_by, row.comment, row.rule, row.entity_id) == (
        sid,
        "P-QO",
        "考勤机更换，数据待核",
        "course.*",
        "C001",
    )
    pipeline.tick(world.clock())
    assert sorted(n.warning_id for m in sink.messages for n in m.notices) == [2, 3]  # C001's is held
    # expire early: what it held goes out in the next pass; its author is told it ended
    world.clock.advance(hours=1)
    expire(world.store, sid, by="P-QO", now=world.clock())
    assert list_silences(world.store, world.clock()) == []
    report = pipeline.tick(world.clock())
    assert 1 in [n.warning_id for m in sink.messages for n in m.notices]
    assert report.silences_ended == 1
    (ended,) = [m for m in sink.messages if m.subject.startswith("【静默已结束】")]
    assert ended.recipient_id == "P-QO" and "考勤机更换" in ended.body
    assert pipeline.tick(world.clock()).silences_ended == 0  # told once
    (row,) = list_silences(world.store, world.clock(), include_ended=True)
    assert "提前结束" in row.comment


def test_a_silence_that_runs_out_tells_its_author(world):
    sink = MemorySink()
    pipeline = world.pipeline(sink, route=NOW)
    create(
        world.store, _silence(world, level="student", ends=world.clock() + timedelta(days=1), by="P-CS"), world.clock()
    )
    assert pipeline.tick(world.clock()).silences_ended == 0
    world.clock.advance(days=1)
    assert pipeline.tick(world.clock()).silences_ended == 1
    assert [m.recipient_id for m in sink.messages] == ["P-CS"]


@pytest.mark.parametrize(
    "kw, error",
    [
        (dict(comment="  "), "原因"),
        (dict(by=""), "设置人"),
        (dict(), "至少限定一项"),  # a silence of everything
        (dict(rule="course.*", ends_days=200), "最长"),
    ],
)
def test_a_silence_needs_a_reason_an_author_a_scope_and_a_bounded_end(world, kw, error):
    ends_days = kw.pop("ends_days", 3)
    with pytest.raises(ValueError) as exc:
        s = _silence(world, ends=world.clock() + timedelta(days=ends_days), **kw)
        create(world.store, s, world.clock())
    assert error in str(exc.value)


def test_cli_silence_add_preview_list_expire(world, pg_url, capsys):
    from zhengai.cli import main

    world.warn("course.attendance_rate", ["C001", "C002"], Band.red)
    base = ["warnings", "--store", pg_url, "silence"]
    now = ["--now", "2026-10-12T10:00+08:00"]
    assert (
        main(
            base
            + [
                "add",
                "--by",
                "P-QO",
                "--reason",
                "实训周，到课统计口径不同",
                "--until",
                "2026-10-20",
                "--rule",
                "course.attendance_rate",
                "--preview",
            ]
            + now
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "将暂缓 2 条未关闭预警的通知" in out and "#1 学生到课率" in out
    assert main(base + ["list"] + now) == 0 and "共 0 条静默" in capsys.readouterr().out
    assert (
        main(
            base
            + [
                "add",
                "--by",
                "P-QO",
                "--reason",
                "实训周，到课统计口径不同",
                "--until",
                "2026-10-20",
                "--rule",
                "course.attendance_rate",
            ]
            + now
        )
        == 0
    )
    assert "已设置 #1 号静默" in capsys.readouterr().out
    assert main(base + ["list"] + now) == 0
    listed = capsys.readouterr().out
    assert "生效中" in listed and "规则=course.attendance_rate" in listed and "P-QO：实训周" in listed
    assert main(base + ["expire", "1", "--by", "P-QO"] + now) == 0
    assert main(base + ["expire", "1", "--by", "P-QO"] + now) == 1  # already ended
