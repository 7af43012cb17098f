"""Escalation walks up the responsibility chain: the lifecycle fires at the due date and every
``escalate_every_days`` after (driven by a controlled clock); routing decides who receives each
level from the configured chain; the pipeline delivers it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from zhengai.ingest.records import Band
from zhengai.warnings.notify.config import EscalationPolicy, RoutePolicy
from zhengai.warnings.notify.console import MemorySink
from zhengai.warnings.notify.testing import NotifyWorld, sample_college
from zhengai.warnings.routing import EscalationChains, escalation_path, escalation_route

NOW = RoutePolicy(group_wait=timedelta(0))


@pytest.fixture
def world(tmp_path) -> NotifyWorld:
    return NotifyWorld(f"sqlite:///{tmp_path / 'w.sqlite'}", courses=3)


def test_escalation_fires_at_the_due_date_and_walks_up_the_chain(world):
    sink = MemorySink()
    pipeline = world.pipeline(sink, route=NOW)
    t0 = world.clock()
    (opened,) = world.warn("course.attendance_rate", "C001", Band.red)
    pipeline.run(t0)
    assert [m.recipient_id for m in sink.messages] == ["T001"]
    due = t0 + timedelta(days=7)  # red: 7 days to record an improvement (限期改进)
    with world.store.session() as s:
        from zhengai.warnings.schema import WarningRow

        assert s.get(WarningRow, opened.warning_id).due_date == due

    assert world.service.tick(due - timedelta(seconds=1)) == []
    assert pipeline.run(due - timedelta(seconds=1)).total.sent == 0

    expected = [
        ("P-CO", "课程负责人 孙课程"),
        ("P-ML", "专业带头人 钱专业"),
        ("P-DEAN", "二级学院院长 赵院长"),
        ("P-QO", "质量办 王质量"),
    ]
    for level, (person, who) in enumerate(expected, 1):
        at = due + timedelta(days=7 * (level - 1))
        applied = world.service.tick(at)  # (no new data comes in this test: the warning also goes stale)
        assert [a.transition.kind.value for a in applied if a.transition.kind.value != "stale"] == ["escalated"]
        assert world.service.tick(at) == []  # the same tick again changes nothing
        pipeline.run(at)
        message = next(m for m in reversed(sink.messages) if "逾期升级督办" in m.subject and "抄送" not in m.subject)
        assert message.recipient_id == person
        assert f"升级至第 {level} 级督办（{who}）" in message.body
        assert "负责人：任课教师 教师001" in message.body  # still the teacher's warning to improve
        assert "改进期限 2026-10-19 已过" in message.body
        assert message.subject.endswith("逾期升级督办")
    # past the top of the chain nothing more is sent
    assert world.service.tick(due + timedelta(days=60)) == []
    escalated = [m.recipient_id for m in sink.messages if "逾期升级督办" in m.subject and "抄送" not in m.subject]
    assert escalated == ["P-CO", "P-ML", "P-DEAN", "P-QO"]
    pipeline.run(due + timedelta(days=90))  # the owner's copies (grouped per their group interval)
    copies = [
        n for m in sink.messages if m.recipient_id == "T001" for n in m.notices if n.subject.startswith("【抄送】")
    ]
    assert len(copies) == 4 and all(n.kind == "escalated" for n in copies)  # the owner is copied on every level


def test_a_late_tick_notifies_every_skipped_level_once_in_order_and_copies_the_owner(world):
    sink = MemorySink()
    pipeline = world.pipeline(sink, route=RoutePolicy(group_wait=timedelta(0), max_items=1))
    t0 = world.clock()
    world.warn("course.attendance_rate", "C001", Band.red)
    pipeline.run(t0)
    due = t0 + timedelta(days=7)
    # the notifier was down for three weeks: due, +7 and +14 have all passed
    applied = [a for a in world.service.tick(due + timedelta(days=15)) if a.transition.kind.value == "escalated"]
    assert [a.transition.escalation_level for a in applied] == [1, 2, 3]
    pipeline.run(due + timedelta(days=15))
    escalations = [m for m in sink.messages if "逾期升级督办" in m.subject]
    main = [(m.recipient_id, m.body.split("升级至第 ")[1][:1]) for m in escalations if "抄送" not in m.subject]
    assert main == [("P-CO", "1"), ("P-ML", "2"), ("P-DEAN", "3")]  # every level once, in order
    copies = [m for m in escalations if m.subject.startswith("【抄送】")]
    assert [m.recipient_id for m in copies] == ["T001"] * 3


def test_no_escalation_for_a_warning_that_recovered_before_its_due_date(world):
    sink = MemorySink()
    pipeline = world.pipeline(sink, route=NOW)
    t0 = world.clock()
    world.warn("course.attendance_rate", "C001", Band.red)
    world.warn("course.attendance_rate", "C001", Band.excellent, period="2026-W42", at=t0 + timedelta(days=3))
    assert not [a for a in world.service.tick(t0 + timedelta(days=30)) if a.transition.kind.value == "escalated"]
    pipeline.run(t0 + timedelta(days=30))
    kinds = [n.kind for m in sink.messages for n in m.notices]
    assert kinds[:2] == ["opened", "recovered"] and "escalated" not in kinds
    assert {m.recipient_id for m in sink.messages} == {"T001"}


def test_configured_chain_skips_vacant_roles_and_offices_go_to_the_quality_office(tmp_path):
    chains = EscalationPolicy(chains=[["course_teacher", "class_teacher", "major_leader", "quality_office"]]).routing()
    world = NotifyWorld(f"sqlite:///{tmp_path / 'w.sqlite'}", courses=2, escalation=chains)
    sink = MemorySink()
    pipeline = world.pipeline(sink, route=RoutePolicy(group_wait=timedelta(0), max_items=1))  # one per notice
    t0 = world.clock()
    world.warn("course.attendance_rate", "C001", Band.red)  # a course has no class teacher
    world.warn("school.enrollment_plan_completion", "SCH", Band.yellow)  # 招生就业处's: yellow, 14 days
    world.service.tick(t0 + timedelta(days=7))
    world.service.tick(t0 + timedelta(days=14))
    pipeline.run(t0 + timedelta(days=14))
    escalations = [m for m in sink.messages if "逾期升级督办" in m.subject and "抄送" not in m.subject]
    assert sorted(m.recipient_id for m in escalations) == ["P-ML", "P-QO", "P-QO"]  # course L1, L2; school L1
    school = next(m for m in escalations if "招生计划完成率" in m.subject)
    assert school.recipient_id == "P-QO" and "负责人：招生就业处 吴招生" in school.body


@pytest.mark.parametrize(
    "rule_id, entity, level, person",
    [
        ("course.attendance_rate", "C001", 1, "P-CO"),
        ("course.attendance_rate", "C001", 4, "P-QO"),
        ("course.attendance_rate", "C001", 9, "P-QO"),  # past the top: the top
        ("student.attendance_rate", "2401000001", 1, "P-DEAN"),  # counsellor → (no class teacher) → dean
        ("major.enrollment_fill_rate", "M01", 1, "P-DEAN"),  # a major leader is in the teacher chain → dean
        ("school.enrollment_plan_completion", "SCH", 1, "P-QO"),  # an office → fallback
    ],
)
def test_escalation_route_table(rule_id, entity, level, person):
    college = sample_college(3)
    rule = college.rules.rules[rule_id]
    assert escalation_route(rule, entity, college.directory, level).person.id == person


def test_escalation_path_has_distinct_people_only():
    college = sample_college(3)
    rule = college.rules.rules["course.attendance_rate"]
    # the course owner and the major leader are the same person here: one step, not two
    same = EscalationChains(chains=(("course_teacher", "course_owner", "major_leader", "dean"),))
    from zhengai.ingest.records import Entity

    major = college.directory.get("M01")
    college.directory.add(
        Entity(**{**major.model_dump(), "responsible": {"major_leader": college.directory.person("P-CO")}})
    )
    assert [r.person.id for r in escalation_path(rule, "C001", college.directory, same)] == ["P-CO", "P-DEAN"]
