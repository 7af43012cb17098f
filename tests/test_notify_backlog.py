"""The notifier's outbox-age gauge (zhengai_notify_outbox_due_age_seconds) on PostgreSQL: it grows
while a channel is down, and drops to 0 once everything went out."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import REGISTRY
from pydantic import SecretStr

from zhengai.ingest.records import Band
from zhengai.warnings.notify.backlog import due_ages, update_gauge
from zhengai.warnings.notify.config import NotifyConfig, RoutePolicy
from zhengai.warnings.notify.dingtalk import DingTalkRobotSettings, DingTalkRobotSink
from zhengai.warnings.notify.testing import DingTalkRobotServer, NotifyWorld

TOKEN, SECRET = "backlog-token", "SECbacklog"


def _gauge(channel: str) -> float | None:
    return REGISTRY.get_sample_value("zhengai_notify_outbox_due_age_seconds", {"channel": channel})


def test_the_outbox_age_grows_during_an_outage_and_clears_after_it(pg_url):
    world = NotifyWorld(pg_url, courses=3, channels=("robot",))
    with DingTalkRobotServer(TOKEN, SECRET, clock=world.clock) as server:

        def pipeline():
            sink = DingTalkRobotSink(
                channel="robot",
                settings=DingTalkRobotSettings(
                    base_url=server.base_url, access_token=SecretStr(TOKEN), secret=SecretStr(SECRET)
                ),
            )
            return world.pipeline(sink, config=NotifyConfig(), route=RoutePolicy(group_wait=timedelta(seconds=10)))

        assert due_ages(world.store.session, world.clock()) == {}
        t0 = world.clock()
        server.down = "503"
        world.warn("course.attendance_rate", world.college.courses, Band.red)
        while world.clock() < t0 + timedelta(minutes=30):
            pipeline().tick(world.clock())
            world.clock.advance(seconds=60)
        ages = update_gauge(world.store.session, world.clock(), ("robot", "email"))
        assert world.outbox_status() == {"pending": 3}
        assert set(ages) == {"robot"} and 29 * 60 <= ages["robot"] <= 31 * 60
        assert _gauge("robot") == ages["robot"] and _gauge("email") == 0.0

        server.down = None
        while world.outbox_status() != {"sent": 3} and world.clock() < t0 + timedelta(hours=2):
            pipeline().tick(world.clock())
            world.clock.advance(seconds=20)
        assert world.outbox_status() == {"sent": 3}
        assert update_gauge(world.store.session, world.clock(), ("robot",)) == {} and _gauge("robot") == 0.0
