"""DingTalk group robot, integration: the pipeline against a real HTTP server on loopback that
implements the robot contract (signature and timestamp, 20 messages a minute then errcode 130101
and a ten-minute throttle). Time is a fake clock shared by the pipeline and the server, so
minutes of traffic run in a second; the server counts by that clock."""

from __future__ import annotations

import logging
import re
from collections import Counter
from datetime import UTC, datetime, time, timedelta

import pytest
from pydantic import SecretStr

from zhengai.ingest.records import Band
from zhengai.warnings.notify.base import Message, Notice
from zhengai.warnings.notify.budget import BudgetPolicy
from zhengai.warnings.notify.config import DigestPolicy, LinkSettings, NotifyConfig, RoutePolicy
from zhengai.warnings.notify.dingtalk import DingTalkRobotSettings, DingTalkRobotSink
from zhengai.warnings.notify.testing import DingTalkRobotServer, NotifyWorld
from zhengai.warnings.notify_schema import AttemptRow

TOKEN, SECRET = "robot-token-7f3a", "SECa1b2c3d4e5f6"
NO_BUDGETS = NotifyConfig(budgets=BudgetPolicy(per_owner=None))  # budgets: tests/test_notify_budget.py


def world_for(tmp_path, **kw) -> NotifyWorld:
    return NotifyWorld(f"sqlite:///{tmp_path / 'w.sqlite'}", channels=("robot",), **kw)


def robot(server: DingTalkRobotServer, *, secret: str = SECRET, msgtype: str = "markdown") -> DingTalkRobotSink:
    settings = DingTalkRobotSettings(
        base_url=server.base_url, access_token=SecretStr(TOKEN), secret=SecretStr(secret), msgtype=msgtype
    )
    return DingTalkRobotSink(channel="robot", settings=settings)


def refs(server: DingTalkRobotServer) -> Counter:
    return Counter(int(w) for r in server.received for w in re.findall(r"预警编号：W(\d+)", r.text))


def drive(world: NotifyWorld, pipeline, *, every: timedelta, until: datetime, done=lambda: False) -> None:
    while world.clock() <= until:
        pipeline.run(world.clock())
        if done():
            return
        world.clock.advance(every)


def test_a_signed_markdown_message_with_a_mention_arrives(tmp_path):
    world = world_for(tmp_path)
    with DingTalkRobotServer(TOKEN, SECRET, clock=world.clock) as server:
        pipeline = world.pipeline(
            robot(server),
            route=RoutePolicy(group_wait=timedelta(0)),
            config=NotifyConfig(links=LinkSettings(base_url="https://zg.example.edu.cn")),
        )
        world.warn("course.attendance_rate", "C001", Band.red)
        assert pipeline.run(world.clock()).total.sent == 1
        (got,) = server.received
        assert server.answers == [(world.clock(), 0)]
        assert got.payload["msgtype"] == "markdown" and got.payload["at"]["atUserIds"] == ["dtt001"]
        assert got.title.startswith("【红色预警】课程「课程001」学生到课率")
        # a group robot: no personal action link, only 我的预警 (which asks for the reader's identity)
        assert "@dtt001" in got.text and "[在“我的预警”中处理](https://zg.example.edu.cn/my/warnings)" in got.text
        assert "/warnings/1/ack" not in got.text and "/warnings/1/improvement" not in got.text
        assert not re.search(r"1[3-9]\d{9}", got.text)  # mentioned by DingTalk id, never by mobile


def test_action_card_carries_only_the_my_warnings_button_in_a_group(tmp_path):
    world = world_for(tmp_path)
    with DingTalkRobotServer(TOKEN, SECRET, clock=world.clock) as server:
        pipeline = world.pipeline(
            robot(server, msgtype="actionCard"),
            route=RoutePolicy(group_wait=timedelta(0)),
            config=NotifyConfig(links=LinkSettings(base_url="https://zg.example.edu.cn")),
        )
        world.warn("course.attendance_rate", "C001", Band.red)
        pipeline.run(world.clock())
        card = server.received[0].payload["actionCard"]
        assert (card["singleTitle"], card["singleURL"]) == (
            "在“我的预警”中处理",
            "https://zg.example.edu.cn/my/warnings",
        )
        assert "btns" not in card and "处理：" not in card["text"] and "/warnings/1/" not in str(card)


@pytest.mark.parametrize("case", ["wrong secret", "clock two hours off"])
def test_a_rejected_signature_is_fatal_and_leaks_no_secret(tmp_path, caplog, case):
    world = world_for(tmp_path)
    server_clock = (lambda: world.clock() + timedelta(hours=2)) if case == "clock two hours off" else world.clock
    with DingTalkRobotServer(TOKEN, SECRET, clock=server_clock) as server:
        sink = robot(server, secret="SECwrong" if case == "wrong secret" else SECRET)
        pipeline = world.pipeline(sink, route=RoutePolicy(group_wait=timedelta(0)))
        world.warn("course.attendance_rate", "C001", Band.red)
        with caplog.at_level(logging.DEBUG):
            assert pipeline.run(world.clock()).total.failed == 1
        assert server.received == [] and [code for _, code in server.answers] == [310000]
        assert world.outbox_status() == {"failed": 1}
        with world.store.session() as s:
            from zhengai.warnings.schema import OutboxRow

            error = s.query(OutboxRow).one().last_error
        assert "310000" in error
        for secret in (TOKEN, SECRET, "SECwrong"):
            assert secret not in error and secret not in caplog.text and secret not in repr(sink.settings)


def test_outage_then_back_every_notification_arrives_exactly_once(tmp_path):
    world = world_for(tmp_path, courses=30)
    with DingTalkRobotServer(TOKEN, SECRET, clock=world.clock) as server:
        pipeline = world.pipeline(robot(server), route=RoutePolicy(group_wait=timedelta(seconds=10)))
        t0 = world.clock()
        server.down = "503"
        world.warn("course.attendance_rate", world.college.courses[:20], Band.red)
        drive(world, pipeline, every=timedelta(seconds=15), until=t0 + timedelta(minutes=20))
        server.down = "reset"  # connections dropped without an answer
        world.warn("course.attendance_rate", world.college.courses[20:], Band.yellow)  # more arrive meanwhile
        drive(world, pipeline, every=timedelta(seconds=15), until=t0 + timedelta(minutes=40))
        assert server.received == [] and server.refused_while_down > 0
        assert world.outbox_status() == {"pending": 30}  # delayed, nothing dropped
        server.down = None
        drive(
            world,
            pipeline,
            every=timedelta(seconds=15),
            until=t0 + timedelta(hours=3),
            done=lambda: world.outbox_status() == {"sent": 30},
        )
        assert world.outbox_status() == {"sent": 30}
        assert refs(server) == Counter({w: 1 for w in range(1, 31)})  # every one, exactly once
        assert server.rate_limited == 0 and server.max_in_any_window() <= 20
        # one probe per backoff while down, not a storm: the backoff caps at 30 minutes
        assert server.refused_while_down < 20


def test_a_burst_of_200_never_exceeds_the_rate_limit_and_nothing_is_lost(tmp_path):
    world = world_for(tmp_path, courses=200)  # 200 teachers: 200 messages, no grouping to help
    with DingTalkRobotServer(TOKEN, SECRET, clock=world.clock) as server:
        # the rate limiter alone: no budgets (200 openings of one rule at once would be a flood)
        pipeline = world.pipeline(robot(server), route=RoutePolicy(group_wait=timedelta(0)), config=NO_BUDGETS)
        t0 = world.clock()
        world.warn("course.attendance_rate", world.college.courses, Band.red)
        drive(
            world,
            pipeline,
            every=timedelta(seconds=5),
            until=t0 + timedelta(hours=1),
            done=lambda: len(server.received) == 200,
        )
        assert world.outbox_status() == {"sent": 200}
        assert refs(server) == Counter({w: 1 for w in range(1, 201)})
        assert server.rate_limited == 0  # the server never had to say "too fast"
        assert server.max_in_any_window() == 20  # at the limit, never past it (the server's own counts)
        assert max(server.per_minute().values()) <= 20
        finished = max(r.at for r in server.received)
        assert timedelta(minutes=9) <= finished - t0 <= timedelta(minutes=10, seconds=30)  # 200 / 20 a minute
        with world.store.session() as s:
            assert s.query(AttemptRow).count() == 200


def test_grouping_and_digest_reduce_the_burst(tmp_path):
    world = world_for(tmp_path, courses=200, teachers=10)
    with DingTalkRobotServer(TOKEN, SECRET, clock=world.clock) as server:
        route = RoutePolicy(
            group_wait=timedelta(seconds=30), max_items=10, digest=DigestPolicy(at=time(8, 0), bands=[Band.yellow])
        )
        pipeline = world.pipeline(robot(server), route=route, config=NO_BUDGETS)  # grouping alone, as above
        t0 = world.clock()
        world.warn("course.attendance_rate", world.college.courses[:100], Band.red)
        world.warn("course.attendance_rate", world.college.courses[100:], Band.yellow)
        drive(world, pipeline, every=timedelta(seconds=10), until=t0 + timedelta(minutes=5))
        # 100 red for 10 teachers, 10 per message: 10 messages instead of 100
        assert len(server.received) == 10 and Counter(refs(server).values()) == Counter({1: 100})
        next_morning = datetime(2026, 10, 13, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
        world.clock.set(next_morning - timedelta(minutes=1))
        drive(world, pipeline, every=timedelta(seconds=10), until=next_morning + timedelta(minutes=5))
        # 100 yellow in the daily digest: one per teacher (10 notices each)
        digests = server.received[10:]
        assert len(digests) == 10 and all("日报" in r.title for r in digests)
        assert refs(server) == Counter({w: 1 for w in range(1, 201)})
        assert server.rate_limited == 0 and world.outbox_status() == {"sent": 200}


def test_a_robot_throttled_by_someone_else_waits_out_the_ten_minutes(tmp_path):
    world = world_for(tmp_path, courses=3)
    with DingTalkRobotServer(TOKEN, SECRET, clock=world.clock) as server:
        sink = robot(server)
        other = robot(server)  # another system posting to the same robot, outside our limiter
        for i in range(20):
            other.send(
                Message(f"其他系统消息 {i}", "内容", None, (Notice(-1, None, "x", "red", "s", "m"),), world.clock())
            )
        pipeline = world.pipeline(sink, route=RoutePolicy(group_wait=timedelta(0)))
        t0 = world.clock()
        world.warn("course.attendance_rate", world.college.courses, Band.red)
        drive(
            world,
            pipeline,
            every=timedelta(seconds=15),
            until=t0 + timedelta(minutes=30),
            done=lambda: world.outbox_status() == {"sent": 3},
        )
        assert world.outbox_status() == {"sent": 3}
        assert server.rate_limited == 1  # told once, then it waited the throttle out
        ours = server.received[20:]
        assert len(ours) == 3 and min(r.at for r in ours) >= t0 + timedelta(minutes=10)
        assert refs(server) == Counter({1: 1, 2: 1, 3: 1})
