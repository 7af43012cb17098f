"""Budgets and floods, integration: the pipeline against a real SMTP server (aiosmtpd) on loopback,
over SQLite and over PostgreSQL.

One rule floods (120 student warnings for one counsellor in a week that usually has none): the
quality office gets the flood notice first, the counsellor one summary, and the store keeps every
warning open. Without a flood, past the per-owner budget the rest is one summary; a later pass in
the same week counts what was already sent; a new week has a new budget.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from test_notify_email import Inbox, free_port, sink, smtp_server
from test_notify_email import cert as cert  # noqa: F401 — the fixture, used by name

from zhengai.ingest.records import Band
from zhengai.warnings.notify.budget import BudgetPolicy
from zhengai.warnings.notify.config import NotifyConfig, RoutePolicy
from zhengai.warnings.notify.testing import NotifyWorld
from zhengai.warnings.schema import WarningEventRow, WarningRow

pytestmark = pytest.mark.integration

ROUTE = RoutePolicy(group_wait=timedelta(0), max_items=1)  # one mail per notice: easy to count


class Mailbox(Inbox):
    def mails(self) -> list[tuple[str, str, str]]:
        """(recipient, subject, plain text) in arrival order."""
        return [
            (e.rcpt_tos[0], str(m["Subject"]), m.get_body(("plain",)).get_content())
            for e, m in zip(self.envelopes, self.messages(), strict=True)
        ]


@pytest.fixture
def smtp(cert):
    """A real SMTP server on loopback (STARTTLS + AUTH) and a sink for it."""
    inbox, port = Mailbox(), free_port()
    server = smtp_server(inbox, cert, port, implicit=False)
    server.start()
    yield inbox, sink(cert, port)
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path) -> NotifyWorld:
    url = f"sqlite:///{tmp_path / 'w.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    return NotifyWorld(url, courses=2, students=120, channels=("email",))


def _open_warnings(world: NotifyWorld, rule_id: str) -> int:
    with world.store.session() as s:
        return (
            s.scalar(
                select(func.count())
                .select_from(WarningRow)
                .where(WarningRow.rule_id == rule_id, WarningRow.status == "open")
            )
            or 0
        )


def test_a_flooding_rule_reaches_the_quality_office_first_and_its_owner_once(world, smtp):
    inbox, email_sink = smtp
    config = NotifyConfig(budgets=BudgetPolicy(per_owner=10, flood_min=50, flood_factor=5))
    pipeline = world.pipeline(email_sink, route=ROUTE, config=config)
    world.warn("course.attendance_rate", "C001", Band.red)  # another rule: unaffected
    world.warn("student.attendance_rate", world.college.students, Band.red)  # 120 at once: a flood
    pipeline.run(world.clock())

    mails = inbox.mails()
    to_qo = [m for m in mails if m[0] == "p-qo@example.edu.cn"]
    to_cs = [m for m in mails if m[0] == "p-cs@example.edu.cn"]
    assert len(to_qo) == 1 and len(to_cs) == 1, [(r, s) for r, s, _ in mails]
    assert mails.index(to_qo[0]) < mails.index(to_cs[0])  # the quality office is told first
    assert to_qo[0][1] == "【疑似规则或数据错误】「个人到课率」本周已产生 120 条预警（通常约 0 条）"
    assert "student.attendance_rate" in to_qo[0][2] and "智能制造学院" in to_qo[0][2]
    assert to_cs[0][1] == "【预警汇总】智能制造学院另有 120 条「个人到课率」预警"
    assert "已提请质量办核查" in to_cs[0][2] and "红色 120" in to_cs[0][2]
    assert any(r == "t001@example.edu.cn" for r, _, _ in mails)  # the other rule's notice went out as usual
    assert _open_warnings(world, "student.attendance_rate") == 120  # the store keeps every warning
    assert world.outbox_status() == {"sent": 1 + 1 + 1, "suppressed": 120}

    pipeline.run(world.clock() + timedelta(minutes=5))  # nothing is sent twice, no second flag
    assert len(inbox.envelopes) == len(mails)


def test_past_the_budget_the_rest_is_one_summary_per_pass_and_the_week_resets(world, smtp):
    inbox, email_sink = smtp
    config = NotifyConfig(budgets=BudgetPolicy(per_owner=10, flood_min=10_000))
    pipeline = world.pipeline(email_sink, route=ROUTE, config=config)
    students = world.college.students
    world.warn("student.attendance_rate", students[:40], Band.yellow)
    pipeline.run(world.clock())
    subjects = [s for r, s, _ in inbox.mails() if r == "p-cs@example.edu.cn"]
    assert len(subjects) == 11
    assert subjects.count("【预警汇总】智能制造学院另有 30 条「个人到课率」预警") == 1
    assert _open_warnings(world, "student.attendance_rate") == 40

    world.clock.advance(timedelta(days=1))  # same week: the 10 are used up
    world.warn("student.attendance_rate", students[40:45], Band.yellow, period="2026-W42")
    pipeline.run(world.clock())
    assert [s for r, s, _ in inbox.mails()[11:]] == ["【预警汇总】智能制造学院另有 5 条「个人到课率」预警"]

    world.clock.advance(timedelta(days=7))  # a new week, a new budget
    world.warn("student.attendance_rate", students[45:50], Band.yellow, period="2026-W43")
    pipeline.run(world.clock())
    assert len(inbox.mails()) == 12 + 5 and not any("汇总" in s for _, s, _ in inbox.mails()[12:])
    with world.store.session() as s:
        kinds = dict(s.execute(select(WarningEventRow.kind, func.count()).group_by(WarningEventRow.kind)).all())
    assert kinds["summarized"] == 2 and "flood_flagged" not in kinds
