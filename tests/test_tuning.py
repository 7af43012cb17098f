"""误报 feeding tuning, on PostgreSQL, over the planted term of ``test_backtest`` (C001 98.5,
C002 80, C003 96, C004 93 — closed once as 误报 —, C005 96; 学生到课率 target 98, standard 90,
warning 95)."""

from __future__ import annotations

import json

from test_backtest import planted  # noqa: F401 — the fixture

from zhengai.cli import main
from zhengai.rules.loader import load_rulebook


def test_false_positive_rate_per_rule_version_names_the_publication(planted, pg_url, capsys):  # noqa: F811
    assert main(["rules", "false-positives", "--store", pg_url, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    version = load_rulebook().rules["course.attendance_rate"].version
    assert (row["rule_id"], row["rule_version"], row["warnings"], row["false_positives"], row["rate"]) == (
        "course.attendance_rate",
        version,
        1,
        1,
        100.0,
    )
    assert row["reasons"] == ["实训周考勤口径不同"] and row["published_at"] is None
    assert main(["rules", "publish", "--author", "质量办", "--reason", "基线", "--store", pg_url]) == 0
    capsys.readouterr()
    assert main(["rules", "false-positives", "--store", pg_url]) == 0
    out = capsys.readouterr().out
    assert f"course.attendance_rate · {version} | 1 | 1 | 100.0% |" in out and "质量办" in out


def test_tuning_report_places_the_thresholds_in_the_distribution(planted, pg_url, capsys):  # noqa: F811
    assert (
        main(["rules", "tuning", "course.attendance_rate", "--term", "2025-2026-1", "--store", pg_url, "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert (report["entities"], report["values"], report["quantiles"]["p50"]) == (5, 40, 96.0)
    assert report["below"] == {"standard": 20.0, "warning": 40.0}  # C002 below 90; C002, C004 below 95
    # standard 88…92 (steps of 1): C002 red and C004 yellow open either way
    assert report["trials"]["standard"] == [[88.0, 2, 1], [89.0, 2, 1], [90.0, 2, 1], [91.0, 2, 1], [92.0, 2, 1]]
    # warning 94…96 (steps of 0.5): from 96.5 C003/C005 would open; at 93 or below C004 would not
    assert report["trials"]["warning"] == [[94.0, 2, 1], [94.5, 2, 1], [95.0, 2, 1], [95.5, 2, 1], [96.0, 2, 1]]
    assert report["false_positives"][0]["rate"] == 100.0
    assert main(["rules", "tuning", "course.attendance_rate", "--term", "2025-2026-1", "--store", pg_url]) == 0
    out = capsys.readouterr().out
    assert "标准值 90%：20.0% 的测量值未达到" in out and "95%：2（1）  ← 现行" in out
