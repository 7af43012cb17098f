"""The improve half of the loop on PostgreSQL (issue 12): who may act and review, no close without
acknowledgement + 改进措施 (or a waiver), measures as new rows on recovered warnings, evidence,
measured 改进效果 against comparable courses, 我的预警, and the CLI over the same store."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
import yaml

from zhengai.ingest.records import Band, Level, Observation
from zhengai.warnings.effects import measure
from zhengai.warnings.improvements import EvidenceError, add_evidence, effects_of, evidence_of
from zhengai.warnings.lifecycle import Acknowledge, LifecycleError, Review, StartImprovement, Waive
from zhengai.warnings.mine import my_warnings
from zhengai.warnings.notify.testing import _RULES, NotifyWorld
from zhengai.warnings.service import NotAllowed

RULE = "course.attendance_rate"


@pytest.fixture
def world(pg_url) -> NotifyWorld:
    return NotifyWorld(pg_url, courses=6)


def _observe(world, course: str, values: list[float], first_week: int = 39) -> None:
    t0 = world.clock()
    world.store.observations.add(
        [
            Observation(
                level=Level.course,
                entity_id=course,
                metric=RULE,
                value=v,
                period=f"2026-W{first_week + i:02d}",
                observed_at=t0 - timedelta(weeks=len(values) - i),
                source="test",
                key=f"o|{course}|{first_week + i}",
            )
            for i, v in enumerate(values)
        ]
    )


def _recovered(world, course="C001", opened="2026-W41", good="2026-W42"):
    (opened_t,) = world.warn(RULE, course, Band.red, period=opened)
    world.warn(RULE, course, Band.excellent, period=good, at=world.clock() + timedelta(days=7))
    assert world.store.read.warning(opened_t.warning_id).status == "recovered"
    return opened_t.warning_id


def test_no_close_without_ack_and_a_measure_and_only_by_the_assessing_body(world):
    wid = _recovered(world)
    t = world.clock() + timedelta(days=8)
    with pytest.raises(NotAllowed):
        world.service.act(wid, Review("T001", t))  # the owner cannot review their own warning
    with pytest.raises(NotAllowed):
        world.service.act(wid, Review("T002", t))  # nor an unrelated teacher
    with pytest.raises(LifecycleError) as exc:
        world.service.act(wid, Review("P-QO", t))  # the quality office, but nothing was done
    assert "确认预警" in str(exc.value) and "登记改进措施" in str(exc.value)
    with pytest.raises(NotAllowed):
        world.service.act(wid, Acknowledge("T002", t))  # not the holder
    world.service.act(wid, Acknowledge("T001", t))
    with pytest.raises(LifecycleError):
        world.service.act(wid, Review("P-CO", t))  # the level above (课程负责人), still no measure
    due = t + timedelta(days=20)
    world.service.act(
        wid, StartImprovement("T001", t, due, "课前点名，与辅导员联动"), evidence=["https://pan.example.edu.cn/a"]
    )
    world.service.act(wid, StartImprovement("T001", t + timedelta(hours=1), due, "第二项：调整上课时段"))
    assert [i.text for i in world.store.read.improvements(wid)] == [
        "课前点名，与辅导员联动",
        "第二项：调整上课时段",
    ]  # new rows
    assert world.store.read.warning(wid).status == "recovered"
    world.service.act(wid, Review("P-CO", t + timedelta(days=1), "复评通过"))
    final = world.store.read.warning(wid)
    assert (final.status, final.resolution) == ("closed", "reviewed")
    kinds = [e.kind for e in world.store.read.events(wid)]
    assert kinds == ["opened", "recovered", "acknowledged", "measure_added", "measure_added", "reviewed"]


def test_a_waiver_by_the_quality_office_with_a_reason_lets_review_close(world):
    wid = _recovered(world)
    t = world.clock() + timedelta(days=8)
    with pytest.raises(NotAllowed):
        world.service.act(wid, Waive("P-CO", t, "不是教学问题"))  # only 质量办 waives
    world.service.act(wid, Waive("P-QO", t, "考勤机故障导致，不属教学问题"))
    world.service.act(wid, Review("P-QO", t + timedelta(hours=1)))
    assert world.store.read.warning(wid).status == "closed"
    (waived,) = [e for e in world.store.read.events(wid) if e.kind == "waived"]
    assert waived.actor == "P-QO" and waived.reason == "考勤机故障导致，不属教学问题"


def test_due_date_is_bounded_and_evidence_is_http_only(world):
    (opened,) = world.warn(RULE, "C001", Band.red)
    t = world.clock()
    from datetime import datetime

    with pytest.raises(LifecycleError) as exc:
        world.service.act(opened.warning_id, StartImprovement("T001", t, datetime(9999, 12, 31, tzinfo=UTC), "措施"))
    assert "最长限期" in str(exc.value)
    with pytest.raises(LifecycleError):
        world.service.act(
            opened.warning_id,
            StartImprovement("T001", t, t + timedelta(days=10), "措施"),
            evidence=["javascript:alert(1)"],
        )
    assert world.store.read.improvements(opened.warning_id) == []
    world.service.act(opened.warning_id, StartImprovement("T001", t, t + timedelta(days=10), "措施"))
    with pytest.raises(EvidenceError):
        add_evidence(world.store, opened.warning_id, ["data:text/html,<script>"], by="T001", at=t)
    add_evidence(
        world.store, opened.warning_id, ["https://pan.example.edu.cn/sign-in.xlsx"], by="T001", at=t, note="签到表"
    )
    assert [(e.url, e.note) for e in evidence_of(world.store, opened.warning_id)] == [
        ("https://pan.example.edu.cn/sign-in.xlsx", "签到表")
    ]


def test_measured_effect_against_comparable_courses_is_stored_with_the_review(world):
    # C001 breached at W41 (80) and recovered to 97 after its measure; the other courses of the
    # same department had no measure and moved from 93 to 94 over the same weeks
    _observe(world, "C001", [92.0, 90.0, 80.0, 88.0, 97.0])
    for c in ("C002", "C003", "C004"):
        _observe(world, c, [93.0, 93.0, 93.0, 93.5, 94.0])
    wid = _recovered(world, opened="2026-W41", good="2026-W43")
    assert measure(world.service, wid) is None  # no measure yet: nothing to measure
    t = world.clock() + timedelta(days=8)
    world.service.act(wid, Acknowledge("T001", t))
    world.service.act(wid, StartImprovement("T001", t, t + timedelta(days=20), "课前点名"))
    effect = measure(world.service, wid)
    assert effect.series == [
        ("2026-W39", 92.0),
        ("2026-W40", 90.0),
        ("2026-W41", 80.0),
        ("2026-W42", 88.0),
        ("2026-W43", 97.0),
    ]
    assert (effect.baseline_period, effect.baseline, effect.latest) == ("2026-W41", 80.0, 97.0)
    assert effect.change == pytest.approx(17.0)
    assert effect.gap_standard == (pytest.approx(-10.0), pytest.approx(7.0))  # standard 90
    assert effect.gap_target == (pytest.approx(-18.0), pytest.approx(-1.0))  # target 98
    assert effect.peers == 3 and effect.peer_change == pytest.approx(1.0)
    world.service.act(wid, Review("P-QO", t + timedelta(days=1)))
    (row,) = effects_of(world.store, wid)  # measured and stored with the review
    assert effect_row_ok(row) and row.measured_at == t + timedelta(days=1)
    assert "由 80%（2026-W41，预警时）变为 97%" in row.summary and "3 个对象同期平均变化 +1%" in row.summary
    assert "好于同类 16%" in row.summary
    (imp,) = world.store.read.improvements(wid)
    assert imp.effect == row.summary and imp.value_after == 97.0


def effect_row_ok(row) -> bool:
    return row.detail["peers"] == 3 and row.detail["series"][0] == ["2026-W39", 92.0] and row.reviewed_by == "P-QO"


def test_my_warnings_lists_owned_escalated_and_to_review_with_actions(world):
    (a,) = world.warn(RULE, "C001", Band.red)
    (b,) = world.warn(RULE, "C002", Band.red)  # T002's
    rec = _recovered(world, course="C003")  # T003's, recovered: waits for review
    mine = {m.warning.id: m for m in my_warnings(world.service, "T001")}
    assert list(mine) == [a.warning_id]
    assert mine[a.warning_id].actions == ["ack", "improvement", "evidence"] and "负责人" in mine[a.warning_id].role
    # escalation moves it: the course owner now holds it too, and the actions say so
    world.service.tick(world.clock() + timedelta(days=7))
    owner = {m.warning.id: m for m in my_warnings(world.service, "P-CO")}
    assert {a.warning_id, b.warning_id} <= set(owner) and "第 1 级督办" in owner[a.warning_id].role
    assert owner[rec].actions == ["review"]  # the level above reviews the recovered one
    world.service.act(
        a.warning_id,
        StartImprovement("T001", world.clock(), world.clock() + timedelta(days=20), "补课"),
        evidence=["https://pan.example.edu.cn/x"],
    )
    (item,) = [m for m in my_warnings(world.service, "T001") if m.warning.id == a.warning_id]
    assert [i.text for i in item.measures] == ["补课"] and [e.url for e in item.evidence] == [
        "https://pan.example.edu.cn/x"
    ]
    assert item.due is not None


def test_cli_list_owner_show_and_the_whole_loop(world, pg_url, tmp_path, capsys):
    from zhengai.cli import main

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "test.yaml").write_text(yaml.safe_dump({"rules": _RULES}, allow_unicode=True), encoding="utf-8")
    wid = _recovered(world)
    base = ["warnings", "--store", pg_url, "--rulebook", str(rules)]
    assert main(base + ["list", "--owner", "T001"]) == 0
    out = capsys.readouterr().out
    assert f"#{wid}" in out and "已恢复待复评" in out and "确认预警、登记改进措施、补充支撑材料" in out
    assert main(base + ["review", str(wid), "--by", "P-QO"]) == 1
    assert "复评未通过" in capsys.readouterr().err
    assert main(base + ["ack", str(wid), "--by", "T001"]) == 0
    assert (
        main(
            base
            + [
                "improve",
                str(wid),
                "--by",
                "T001",
                "--due",
                "2026-11-20",
                "--text",
                "课前点名",
                "--now",
                "2026-10-20T09:00+08:00",
                "--evidence",
                "https://pan.example.edu.cn/a",
            ]
        )
        == 0
    )
    assert (
        main(base + ["evidence", str(wid), "--by", "T001", "--url", "https://pan.example.edu.cn/b", "--note", "签到表"])
        == 0
    )
    assert main(base + ["evidence", str(wid), "--by", "T002", "--url", "https://pan.example.edu.cn/c"]) == 1
    assert main(base + ["review", str(wid), "--by", "P-QO", "--note", "复评通过"]) == 0
    capsys.readouterr()
    assert main(base + ["show", str(wid)]) == 0
    shown = capsys.readouterr().out
    assert (
        "支撑材料（T001" in shown
        and "https://pan.example.edu.cn/a" in shown
        and "https://pan.example.edu.cn/b  签到表" in shown
    )
    assert "改进措施 #" in shown and "已关闭" in shown
