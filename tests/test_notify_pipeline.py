"""The notification pipeline's stages, end to end from verdicts through the warning service and
the outbox to an in-memory sink, on SQLite, with a controlled clock: grouping and digest, mute
windows and silences (delayed, never dropped), inhibition, route matching, retry with backoff,
the repeat interval persisted across restarts, and messages people can act on."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest

from zhengai.ingest.records import Band
from zhengai.warnings.notify import outbox
from zhengai.warnings.notify.calendar_windows import AcademicCalendar, MuteWindow
from zhengai.warnings.notify.config import (
    DigestPolicy,
    InhibitRule,
    LinkSettings,
    NotifyConfig,
    ReminderPolicy,
    RetryPolicy,
    RouteMatch,
    RoutePolicy,
)
from zhengai.warnings.notify.console import MemorySink
from zhengai.warnings.notify.pipeline import Channel
from zhengai.warnings.notify.silence import Silence, add_silence, expire_silence
from zhengai.warnings.notify.testing import NotifyWorld
from zhengai.warnings.notify_schema import DeliveryRow

ROUTE = RoutePolicy(group_wait=timedelta(seconds=30), group_interval=timedelta(minutes=5), max_items=10)
LINKS = LinkSettings(base_url="https://zg.example.edu.cn")


@pytest.fixture
def world(tmp_path) -> NotifyWorld:
    return NotifyWorld(f"sqlite:///{tmp_path / 'w.sqlite'}", courses=20, teachers=5)


def warning_refs(messages) -> list[int]:
    return [int(m) for msg in messages for m in re.findall(r"预警编号：W(\d+)", msg.body)]


# --- grouping and digest ---------------------------------------------------------------------------


def test_grouping_turns_a_burst_into_one_message_per_recipient(world):
    sink = MemorySink()
    pipeline = world.pipeline(sink, route=ROUTE)
    world.warn("course.attendance_rate", world.college.courses, Band.red)  # 20 warnings, 5 teachers
    t0 = world.clock()
    assert pipeline.run(t0).total.sent == 0  # the new groups wait group_wait for more
    assert pipeline.run(t0 + timedelta(seconds=29)).total.sent == 0
    report = pipeline.run(t0 + timedelta(seconds=30)).total
    assert (report.messages, report.sent) == (5, 20)
    assert sorted(m.recipient_id for m in sink.messages) == world.college.teachers
    assert all(m.kind == "group" and len(m.notices) == 4 for m in sink.messages)
    assert sorted(warning_refs(sink.messages)) == list(range(1, 21))  # each warning exactly once

    # later notices for the same people go out together, at most every group_interval
    world.warn(
        "course.attendance_rate",
        world.college.courses[:2],
        Band.yellow,
        period="2026-W42",
        at=t0 + timedelta(minutes=2),
    )
    assert pipeline.run(t0 + timedelta(minutes=2)).admitted == 2
    assert pipeline.run(t0 + timedelta(minutes=3)).total.sent == 0  # waited group_wait, but the interval runs
    report = pipeline.run(t0 + timedelta(minutes=5, seconds=30)).total
    assert (report.messages, report.sent) == (2, 2)
    assert world.outbox_status() == {"sent": 22}


def test_a_group_larger_than_max_items_is_split(tmp_path):
    sink = MemorySink()
    many = NotifyWorld(f"sqlite:///{tmp_path / 'one-teacher.sqlite'}", courses=8, teachers=1)
    pipeline = many.pipeline(sink, route=RoutePolicy(group_wait=timedelta(0), max_items=3))
    many.warn("course.attendance_rate", many.college.courses, Band.yellow)
    pipeline.run(many.clock())
    assert [len(m.notices) for m in sink.messages] == [3, 3, 2]
    assert sorted(warning_refs(sink.messages)) == list(range(1, 9))


def test_daily_digest_collects_yellow_and_lets_red_through(world):
    sink = MemorySink()
    route = RoutePolicy(group_wait=timedelta(seconds=30), digest=DigestPolicy(at=time(8, 0), bands=[Band.yellow]))
    pipeline = world.pipeline(sink, route=route)
    t0 = world.clock()  # 09:00 in Shanghai
    world.warn("course.attendance_rate", world.college.courses[:15], Band.yellow)
    world.warn("course.attendance_rate", world.college.courses[15:], Band.red)
    pipeline.run(t0)
    pipeline.run(t0 + timedelta(seconds=30))
    assert sorted(len(m.notices) for m in sink.messages) == [1] * 5  # the five red ones, one per teacher
    assert all(m.kind == "single" for m in sink.messages)
    for hours in (1, 6, 12, 22):
        assert pipeline.run(t0 + timedelta(hours=hours)).total.sent == 0
    digest_at = datetime(2026, 10, 13, 0, 0, tzinfo=UTC)  # 08:00 next day in Shanghai
    assert pipeline.run(digest_at - timedelta(seconds=1)).total.sent == 0
    report = pipeline.run(digest_at).total
    assert (report.messages, report.sent) == (5, 15)  # 15 yellow notices → one digest per teacher
    digests = sink.messages[5:]
    assert all(m.kind == "digest" and "日报" in m.subject and "2026-10-13" in m.subject for m in digests)
    assert sorted(warning_refs(digests)) == list(range(1, 16))


# --- mute windows and silences: delayed to the end, never dropped -------------------------------------------


def test_calendar_window_delays_to_its_end_and_narrows_by_band(world):
    sink = MemorySink()
    calendar = AcademicCalendar(
        windows=[
            MuteWindow(name="国庆节假期", start=date(2026, 10, 1), end=date(2026, 10, 14)),
            MuteWindow(
                name="期中考试周", kind="exam", start=date(2026, 10, 15), end=date(2026, 10, 16), bands=[Band.yellow]
            ),
        ]
    )
    pipeline = world.pipeline(sink, config=NotifyConfig(calendar=calendar), route=ROUTE)
    t0 = world.clock()
    world.warn("course.attendance_rate", world.college.courses[:3], Band.red)
    world.warn("course.attendance_rate", world.college.courses[3:6], Band.yellow)
    assert pipeline.run(t0).total.muted == 6
    assert pipeline.run(t0 + timedelta(days=1)).total.sent == 0  # not even looked at before the window ends
    holiday_end = datetime(2026, 10, 14, 16, 0, tzinfo=UTC)  # 2026-10-15 00:00 in Shanghai
    assert pipeline.run(holiday_end - timedelta(seconds=1)).total.sent == 0
    report = pipeline.run(holiday_end).total
    # the exam week follows the holiday at once and holds yellow only: the red ones go now; the
    # yellow ones were muted straight through to the end of the exam week
    assert (report.sent, report.muted) == (3, 0)
    exam_end = datetime(2026, 10, 16, 16, 0, tzinfo=UTC)
    with world.store.session() as s:
        assert {d.next_attempt_at for d in s.query(DeliveryRow) if d.state == "muted"} == {exam_end}
    assert pipeline.run(exam_end - timedelta(seconds=1)).total.sent == 0
    assert pipeline.run(exam_end).total.sent == 3
    assert sorted(warning_refs(sink.messages)) == [1, 2, 3, 4, 5, 6]
    with world.store.session() as s:
        assert {d.reason for d in s.query(DeliveryRow)} == {None}  # released and sent


def test_silence_delays_exactly_what_it_matches_and_can_be_ended_early(world):
    sink = MemorySink()
    pipeline = world.pipeline(sink, route=RoutePolicy(group_wait=timedelta(0)))
    t0 = world.clock()
    with pipeline.session() as s:
        sid = add_silence(
            s,
            Silence(
                starts_at=t0,
                ends_at=t0 + timedelta(days=3),
                created_by="P-QO",
                comment="C001 数据重导中",
                rule="course.*",
                entity_id="C001",
            ),
            t0,
        )
        s.commit()
    world.warn("course.attendance_rate", ["C001", "C002"], Band.red)
    report = pipeline.run(t0).total
    assert (report.sent, report.muted) == (1, 1)
    assert warning_refs(sink.messages) == [2]
    assert pipeline.run(t0 + timedelta(hours=1)).total.sent == 0
    with pipeline.session() as s:
        expire_silence(s, sid, t0 + timedelta(hours=2))
        s.commit()
    assert pipeline.run(t0 + timedelta(hours=2)).total.sent == 1
    assert warning_refs(sink.messages) == [2, 1]


# --- inhibition -----------------------------------------------------------------------------------------


INHIBIT = (InhibitRule(name="全校到课率红色", source="school.attendance_rate", same_metric=True),)


def test_a_school_red_mutes_the_derived_warnings_and_only_those(world):
    sink = MemorySink()
    pipeline = world.pipeline(sink, config=NotifyConfig(inhibit=INHIBIT), route=RoutePolicy(group_wait=timedelta(0)))
    t0 = world.clock()
    school = world.warn("school.attendance_rate", "SCH", Band.red)[0].warning_id
    courses = [a.warning_id for a in world.warn("course.attendance_rate", world.college.courses[:4], Band.red)]
    students = [a.warning_id for a in world.warn("student.attendance_rate", world.college.students[:2], Band.yellow)]
    major = world.warn("major.enrollment_fill_rate", "M01", Band.red)[0].warning_id
    report = pipeline.run(t0).total
    assert report.held == 6  # four course and two student attendance warnings: the same metric, lower down
    assert sorted(warning_refs(sink.messages)) == sorted([school, major])  # the school's own and an unrelated one

    # one course recovers while muted: neither its opening nor its recovery is ever sent
    t1 = t0 + timedelta(days=7)
    world.warn("course.attendance_rate", world.college.courses[0], Band.excellent, period="2026-W42", at=t1)
    report = pipeline.run(t1).total
    assert report.suppressed == 2 and report.held == 5 and report.sent == 0

    # the school recovers: what is still active goes out now (late, not lost)
    t2 = t0 + timedelta(days=8)
    world.warn("school.attendance_rate", "SCH", Band.excellent, period="2026-W42", at=t2)
    report = pipeline.run(t2).total
    assert report.held == 0
    assert sorted(warning_refs(sink.messages)) == sorted([school, major, school, *courses[1:], *students])
    assert world.outbox_status() == {"sent": 8, "suppressed": 2}


def test_a_recovery_is_sent_if_the_opening_was_sent_before_the_inhibition(world):
    sink = MemorySink()
    pipeline = world.pipeline(sink, config=NotifyConfig(inhibit=INHIBIT), route=RoutePolicy(group_wait=timedelta(0)))
    t0 = world.clock()
    course = world.warn("course.attendance_rate", "C001", Band.red)[0].warning_id
    pipeline.run(t0)
    world.warn("school.attendance_rate", "SCH", Band.red, at=t0 + timedelta(hours=1))
    world.warn("course.attendance_rate", "C001", Band.excellent, period="2026-W42", at=t0 + timedelta(days=7))
    pipeline.run(t0 + timedelta(days=7))
    assert warning_refs(sink.messages).count(course) == 2  # told it opened, so told it recovered
    assert "已恢复" in sink.messages[-1].body


# --- routes, retry ---------------------------------------------------------------------------------------


def test_route_match_keeps_a_channel_to_what_it_is_for(world):
    red_only, everything = MemorySink(channel="robot"), MemorySink(channel="memory")
    world.service.channels = ("robot", "memory")
    pipeline = world.pipeline(
        Channel(red_only, RoutePolicy(group_wait=timedelta(0), match=RouteMatch(bands=[Band.red]))),
        Channel(everything, RoutePolicy(group_wait=timedelta(0), max_items=50)),
    )
    world.warn("course.attendance_rate", world.college.courses[:3], Band.red)
    world.warn("course.attendance_rate", world.college.courses[3:5], Band.yellow)
    pipeline.run(world.clock())
    assert sorted(warning_refs(red_only.messages)) == [1, 2, 3]
    assert sorted(warning_refs(everything.messages)) == [1, 2, 3, 4, 5]
    assert world.outbox_status() == {"sent": 8, "suppressed": 2}


def test_retry_backs_off_through_the_outbox_and_delivers_once(world):
    sink = MemorySink()
    retry = RetryPolicy(initial=timedelta(seconds=30), max=timedelta(minutes=2))
    pipeline = world.pipeline(sink, route=RoutePolicy(group_wait=timedelta(0), retry=retry))
    world.warn("course.attendance_rate", ["C001", "C002"], Band.red)  # two teachers: two messages
    t = world.clock()
    sink.fail_next = 4
    report = pipeline.run(t).total
    # the first message fails; the second is not even tried (the channel just failed)
    assert (report.sent, report.retry_later) == (0, 2) and sink.fail_next == 3
    waits = []
    while sink.fail_next:
        with pipeline.session() as s:
            nxt = min(d.next_attempt_at for d in s.query(DeliveryRow))
        waits.append(nxt - t)
        assert pipeline.run(nxt - timedelta(seconds=1)).total.sent == 0
        t = nxt
        pipeline.run(t)
    assert waits == [timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=2)]  # capped at max
    pipeline.run(t + timedelta(minutes=2))
    assert sorted(warning_refs(sink.messages)) == [1, 2]
    assert world.outbox_status() == {"sent": 2}


def test_a_fatal_failure_is_parked_with_its_error_and_can_be_requeued(world):
    sink = MemorySink()
    pipeline = world.pipeline(sink, route=RoutePolicy(group_wait=timedelta(0)))
    world.warn("course.attendance_rate", "C001", Band.red)
    sink.fatal_next = 1
    assert pipeline.run(world.clock()).total.failed == 1
    assert world.outbox_status() == {"failed": 1}
    assert pipeline.run(world.clock() + timedelta(days=1)).total.sent == 0  # failed stays failed
    with pipeline.session() as s:
        assert "rejected (simulated)" in s.query(DeliveryRow).one().reason
        assert outbox.requeue_failed(s, world.clock()) == 1
        s.commit()
    assert pipeline.run(world.clock() + timedelta(days=1)).total.sent == 1


# --- repeat interval ------------------------------------------------------------------------------------


def test_repeat_interval_is_persisted_so_a_restart_does_not_renotify(world):
    config = NotifyConfig(reminders=ReminderPolicy(repeat_interval=timedelta(days=7)))
    route = RoutePolicy(group_wait=timedelta(0))
    t0 = world.clock()
    world.warn("course.attendance_rate", "C001", Band.red)
    first = MemorySink()
    assert world.pipeline(first, config=config, route=route).tick(t0).run.total.sent == 1
    # a restart: new pipeline, new sink, same database
    for days in (1, 3, 6):
        sink = MemorySink()
        report = world.pipeline(sink, config=config, route=route).tick(t0 + timedelta(days=days))
        assert report.reminders == 0 and not sink.messages
    sink = MemorySink()
    report = world.pipeline(sink, config=config, route=route).tick(t0 + timedelta(days=7))
    assert report.reminders == 1 and len(sink.messages) == 1
    assert sink.messages[0].subject.startswith("【督办提醒") and "2026-10-19" in sink.messages[0].subject
    again = MemorySink()
    for hours in (0, 1, 24):
        assert (
            world.pipeline(again, config=config, route=route).tick(t0 + timedelta(days=7, hours=hours)).reminders == 0
        )
    assert not again.messages
    # the next one a full interval after the reminder
    assert world.pipeline(again, config=config, route=route).tick(t0 + timedelta(days=14)).reminders == 1
    # a recovered warning is not reminded
    world.warn("course.attendance_rate", "C001", Band.excellent, period="2026-W43", at=t0 + timedelta(days=15))
    assert world.pipeline(again, config=config, route=route).tick(t0 + timedelta(days=30)).reminders == 0


# --- messages people act on -------------------------------------------------------------------------------


def test_messages_carry_what_who_when_trend_and_links_and_are_masked(world):
    sink = MemorySink()
    pipeline = world.pipeline(sink, config=NotifyConfig(links=LINKS), route=RoutePolicy(group_wait=timedelta(0)))
    student = world.college.students[0]
    t0 = world.clock()
    for week, value in ((39, 97.0), (40, 94.0)):
        world.warn(
            "student.attendance_rate",
            student,
            Band.normal,
            period=f"2026-W{week}",
            value=value,
            at=t0 - timedelta(weeks=41 - week),
        )
    world.warn("student.attendance_rate", student, Band.red, period="2026-W41", value=80.0)
    pipeline.run(t0)
    (message,) = sink.messages
    body = message.body
    assert "个人到课率 = 80%" in body and "目标值 98%" in body and "标准值 85%" in body and "预警值 90%" in body
    assert "近期走势：97% → 94% → 80%（连续 2 期下降）" in body
    assert "辅导员 李辅导" in body and "请于 2026-10-19 前" in body and "限期改进" in body
    assert f"{LINKS.base_url}/warnings/1/ack" in body and f"{LINKS.base_url}/warnings/1/improvement" in body
    assert student not in body and student not in message.subject and "2401****01" in body
    assert not re.search(r"1[3-9]\d{9}", body)
    assert message.recipient.person_id == "P-CS" and message.recipient.email == "p-cs@example.edu.cn"


def test_a_button_sink_gets_the_links_as_buttons_not_twice(world):
    sink = MemorySink()
    sink.renders_links = True
    pipeline = world.pipeline(sink, config=NotifyConfig(links=LINKS), route=RoutePolicy(group_wait=timedelta(0)))
    world.warn("course.attendance_rate", "C001", Band.red)
    pipeline.run(world.clock())
    (message,) = sink.messages
    assert [link.title for link in message.links] == ["确认预警", "登记改进措施"]
    assert "处理：" not in message.body and "预警编号：W1" in message.body


def test_serve_runs_the_service_tick_and_the_pipeline_until_stopped(world):
    import threading

    sink = MemorySink()
    pipeline = world.pipeline(sink, route=RoutePolicy(group_wait=timedelta(0)))
    world.warn("course.attendance_rate", "C001", Band.red)
    stop, seen = threading.Event(), []

    def before(now):
        seen.append(now)
        if len(seen) == 2:
            stop.set()

    pipeline.serve(world.clock, stop, every=timedelta(0), before=before)
    assert len(seen) == 2 and warning_refs(sink.messages) == [1]
