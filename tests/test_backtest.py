"""Backtest with known answers, on PostgreSQL: a planted term of weekly attendance for six courses
under the shipped rulebook (学生到课率: target 98, standard 90, warning 95), and candidates that
move its thresholds. The answers are worked out by hand from the planted values.

    C001 98.5 every week (达成目标)      C002 80 (red under both)       C003 96 (达标)
    C004 93 (yellow: below the warning value 95, above the standard 90)  C005 96   C006 no data
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from zhengai.cli import main
from zhengai.ingest.records import Band, Level, Observation
from zhengai.rules.candidate import apply_changes, candidate_rulebook
from zhengai.rules.loader import RulebookError, load_rulebook
from zhengai.warnings.backtest import backtest
from zhengai.warnings.lifecycle import MarkFalsePositive
from zhengai.warnings.notify.testing import NotifyWorld

VALUES = {"C001": 98.5, "C002": 80.0, "C003": 96.0, "C004": 93.0, "C005": 96.0}
WEEKS = [f"2025-W{w}" for w in range(37, 45)]  # eight teaching weeks of 2025-2026-1
MONDAY_W37 = datetime(2025, 9, 8, 2, 0, tzinfo=UTC)


def _history() -> list[Observation]:
    out = []
    for i, week in enumerate(WEEKS):
        at = MONDAY_W37 + timedelta(weeks=i, days=6)
        for course, value in VALUES.items():
            out.append(
                Observation(
                    level=Level.course,
                    entity_id=course,
                    metric="course.attendance_rate",
                    value=value,
                    period=week,
                    observed_at=at,
                    source="jiaowu.attendance",
                )
            )
    return out


@pytest.fixture
def planted(pg_url):
    world = NotifyWorld(pg_url, courses=6)
    world.college = world.college.__class__(**{**world.college.__dict__, "rules": load_rulebook()})
    world.store.observations.add(_history())
    # The quality office closed C004's first warning as 误报 (its 实训周 counts differently).
    (opened,) = world.warn(
        "course.attendance_rate", "C004", Band.yellow, period="2025-W37", at=MONDAY_W37 + timedelta(days=6), value=93.0
    )
    world.service.act(
        opened.warning_id, MarkFalsePositive("P-QO", MONDAY_W37 + timedelta(days=8), "实训周考勤口径不同")
    )
    return world, opened.warning_id


def _run(pg_url, capsys, *args):
    code = main(["rules", "backtest", "--term", "2025-2026-1", "--store", pg_url, "--json", *args])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


def test_raising_the_standard_opens_exactly_two_more_warnings_in_named_courses(planted, pg_url, capsys):
    report = _run(pg_url, capsys, "--set", "course.attendance_rate.standard=97")
    assert list(report["rules"]) == ["course.attendance_rate"]  # only the changed rule is replayed
    opened_now, opened_then = report["rules"]["course.attendance_rate"]["opened"]
    assert (opened_now, opened_then) == (2, 4)  # C002, C004 → also C003, C005
    assert [(o["entity_id"], o["period"], o["band"]) for o in report["more"]] == [
        ("C003", "2025-W37", "yellow"),
        ("C005", "2025-W37", "yellow"),
    ]
    assert report["fewer"] == []
    # C004 at 93 now fails the outer line (95) too: opened red instead of yellow
    assert [(b["entity_id"], b["before"], b["after"]) for b in report["band_changes"]] == [
        ("C003", "normal", "yellow"),
        ("C004", "yellow", "red"),
        ("C005", "normal", "yellow"),
    ]
    assert report["groups"]["band"] == {"红色预警": [1, 2], "黄色预警": [1, 2]}
    assert report["groups"]["department"] == {"智能制造学院": [2, 4]}
    assert report["groups"]["level"] == {"课程": [2, 4]}
    assert report["false_positives_avoided"] == []
    assert report["observations"] == 40


def test_lowering_the_warning_value_avoids_the_recorded_false_positive(planted, pg_url, capsys):
    world, fp_id = planted
    report = _run(pg_url, capsys, "--set", "course.attendance_rate.warning=92")
    assert report["rules"]["course.attendance_rate"]["opened"] == [2, 1]  # only C002 still opens
    assert [(o["entity_id"], o["band"]) for o in report["fewer"]] == [("C004", "yellow")]
    (avoided,) = report["false_positives_avoided"]
    assert (avoided["warning_id"], avoided["entity_id"], avoided["opened_period"], avoided["candidate_band"]) == (
        fp_id,
        "C004",
        "2025-W37",
        "normal",
    )
    assert avoided["reason"] == "实训周考勤口径不同"


def test_unchanged_candidate_replays_nothing_and_the_text_report_is_chinese(planted, pg_url, capsys, tmp_path):
    code = main(
        ["rules", "backtest", "--term", "2025-2026-1", "--store", pg_url, "--set", "course.attendance_rate.standard=90"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "回测 0 条规则" in out and "没有差别" in out
    code = main(
        ["rules", "backtest", "--term", "2025-2026-1", "--store", pg_url, "--set", "course.attendance_rate.standard=99"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "course.attendance_rate「学生到课率」的 standard 不能设为 99" in err


def test_the_pure_backtest_without_candidate_describes_the_current_rulebook():
    from zhengai.warnings.notify.testing import sample_college

    college = sample_college(courses=6)
    current = load_rulebook()
    result = backtest(current, None, _history(), college.directory, MONDAY_W37 + timedelta(weeks=9))
    assert result.current.counts[("course.attendance_rate", "opened")] == 2
    # eight weeks of a red 80 with nobody acting: overdue after 7 days, then every 7 days
    assert result.current.counts[("course.attendance_rate", "escalated")] >= 1
    assert result.more == result.fewer == []


def test_candidate_from_a_file_replaces_its_namesake(tmp_path):
    from zhengai.rules.loader import default_rulebook_path

    text = (default_rulebook_path() / "course.yaml").read_text(encoding="utf-8")
    (tmp_path / "course.yaml").write_text(
        text.replace("    standard: 90\n    warning: 95\n", "    standard: 92\n    warning: 95\n", 1), encoding="utf-8"
    )
    cand = candidate_rulebook(None, tmp_path / "course.yaml")
    assert cand.rules["course.attendance_rate"].standard == 92
    assert len(cand.rules) == len(load_rulebook().rules)
    with pytest.raises(RulebookError) as exc:
        apply_changes(cand, ["course.attendance_rate.colour=1", "nope.rule.standard=1"])
    assert [e.message.split("（")[0] for e in exc.value.errors] == [
        "应写成 规则id.字段=值，字段为 target / standard / warning / enabled",
        "没有规则 'nope.rule'",
    ]
