"""The notification pipeline on PostgreSQL (the production store): an outage, the rate limit,
escalation and the persisted repeat interval in one run against the loopback DingTalk robot."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

from pydantic import SecretStr

from zhengai.ingest.records import Band
from zhengai.warnings.notify.config import NotifyConfig, ReminderPolicy, RoutePolicy
from zhengai.warnings.notify.dingtalk import DingTalkRobotSettings, DingTalkRobotSink
from zhengai.warnings.notify.testing import DingTalkRobotServer, NotifyWorld

TOKEN, SECRET = "pg-robot-token", "SECpg"


def test_outage_rate_limit_escalation_and_reminders_on_postgresql(pg_url):
    world = NotifyWorld(pg_url, courses=40, channels=("robot",))
    config = NotifyConfig(reminders=ReminderPolicy(repeat_interval=timedelta(days=3)))
    with DingTalkRobotServer(TOKEN, SECRET, clock=world.clock) as server:

        def pipeline():  # a fresh one each time: every pass starts from what the database remembers
            sink = DingTalkRobotSink(
                channel="robot",
                settings=DingTalkRobotSettings(
                    base_url=server.base_url, access_token=SecretStr(TOKEN), secret=SecretStr(SECRET)
                ),
            )
            return world.pipeline(sink, config=config, route=RoutePolicy(group_wait=timedelta(seconds=10)))

        t0 = world.clock()
        server.down = "503"
        world.warn("course.attendance_rate", world.college.courses, Band.red)
        while world.clock() < t0 + timedelta(minutes=10):
            pipeline().tick(world.clock())
            world.clock.advance(seconds=20)
        assert server.received == [] and world.outbox_status() == {"pending": 40}
        server.down = None
        while world.outbox_status() != {"sent": 40} and world.clock() < t0 + timedelta(hours=2):
            pipeline().tick(world.clock())
            world.clock.advance(seconds=20)
        ids = Counter(int(w) for r in server.received for w in re.findall(r"预警编号：W(\d+)", r.text))
        assert ids == Counter({w: 1 for w in range(1, 41)})
        assert server.rate_limited == 0 and server.max_in_any_window() <= 20

        # three quiet days after they went out: one reminder per warning, once, however often the
        # notifier restarts
        world.clock.set(t0 + timedelta(days=3, hours=1))
        before = len(server.received)
        reminded = 0
        for _ in range(12):
            reminded += pipeline().tick(world.clock()).reminders
            world.clock.advance(seconds=20)
        assert reminded == 40 and len(server.received) - before == 40
        assert all(r.title.startswith("【督办提醒") for r in server.received[before:])
        world.clock.set(t0 + timedelta(days=3, hours=5))
        assert pipeline().tick(world.clock()).reminders == 0

        # the due date (red: 7 days): escalated to the course owner, who gets the 40 grouped
        due = t0 + timedelta(days=7)
        world.clock.set(due)
        escalated = [a for a in world.service.tick(due) if a.transition.kind.value == "escalated"]
        assert len(escalated) == 40
        before = len(server.received)
        for _ in range(12):
            assert pipeline().tick(world.clock()).reminders == 0  # an escalation is news: no reminder on top
            world.clock.advance(seconds=20)
        sent = server.received[before:]
        to_owner = [r for r in sent if "@dtp-co" in r.text]
        assert len(to_owner) == 4  # 40 notices, 10 a message
        # and each of the 40 teachers is copied on their own course's escalation
        copies = [r for r in sent if "抄送" in r.text]
        assert len(copies) == 40 and len(copies) + len(to_owner) == len(sent)
        assert server.rate_limited == 0 and server.max_in_any_window() <= 20


def test_a_second_notifier_does_nothing_while_the_first_holds_the_lock(pg_url):
    from zhengai.warnings.notify.console import MemorySink

    world = NotifyWorld(pg_url, courses=2, channels=("memory",))
    world.warn("course.attendance_rate", "C001", Band.red)
    first, second = MemorySink(), MemorySink()
    a = world.pipeline(first, route=RoutePolicy(group_wait=timedelta(0)))
    b = world.pipeline(second, route=RoutePolicy(group_wait=timedelta(0)))
    with a._exclusive() as mine:
        assert mine
        assert b.run(world.clock()).admitted == 0 and b.tick(world.clock()).run.total.sent == 0
    assert b.run(world.clock()).total.sent == 1 and len(second.messages) == 1 and not first.messages
