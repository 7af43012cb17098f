"""Unit tests of the report's pure parts: 字数 counting, period windows, length checks, the drafted
texts of one 诊断要素 row (fakes only: plain objects, no store)."""

from collections import Counter
from datetime import UTC, datetime

import pytest

from zhengai.ingest.plausibility import period_start
from zhengai.report.selfreport import (
    CAUSE_PROMPT,
    ElementRow,
    Indicator,
    LengthCheck,
    Problem,
    SelfReport,
    Unit,
    count_zi,
    period_window,
)
from zhengai.rules.diagnosis import load_catalog


def test_zi_are_counted_as_word_counts_them():
    assert count_zi("") == 0
    assert count_zi("生师比 20.95 偏高。") == 7  # 生 师 比, 20.95, 偏 高, 。
    assert count_zi("到课率 82.5%，低于标准值 90%") == 11  # 3 + 1 + 1 + 5 + 1
    assert count_zi("a b\nc") == 3


@pytest.mark.parametrize(
    ("period", "end"),
    [("2026", "2027"), ("2025-2026-1", "2025-2026-2"), ("2025-2026-2", "2026-2027-1"), ("2026-12", "2027-01"),
     ("2026-W52", "2026-W53"), ("2026-W53", "2027-W01"), ("2026-02-28", "2026-03-01")],
)  # fmt: skip
def test_period_windows_end_where_the_next_period_starts(period, end):
    assert period_window(period) == (period_start(period), period_start(end))


def test_bad_period_is_refused():
    with pytest.raises(ValueError):
        period_window("2026-13")


def test_length_checks_say_which_way_they_fail():
    assert LengthCheck("全文", 8001, None, 8000).text() == "全文：8001 字（要求 ≤ 8000 字）超出"
    assert LengthCheck("全文", 1500, 2000, 3000).text() == "全文：1500 字（要求 2000–3000 字）不足"
    assert LengthCheck("3.5 改进措施", 200, None, 200).ok


def _row() -> ElementRow:
    el = load_catalog().element("3.5")
    bands = Counter({"excellent": 1, "yellow": 1})
    ind = Indicator("major.dual_qualified_ratio", "双师型教师比例", "%", 2, bands, 66.07, "2026", 70.0, 50.0)
    prob = Problem(1, "数控技术", "双师型教师比例", "yellow", "57.14%", "2026", "open", True)
    return ElementRow(el, [ind], [prob])


def test_a_row_drafts_attainment_achievements_problems_and_asks_for_the_cause():
    row = _row()
    text = row.opinion_text
    assert "目标达成程度：1 项指标、2 个对象次，达成目标 1，达标及以上 1（50.0%）" in text
    assert "双师型教师比例：2 个对象，均值 66.07%（目标值 70%、标准值 50%），达成目标 1、达标 0、黄色预警 1" in text
    assert "存在问题：预警 1 条——数控技术 双师型教师比例 57.14%（2026，黄色预警，已逾期）" in text
    assert text.endswith(CAUSE_PROMPT)
    assert row.measures_text == "尚未登记改进措施。"
    row.measures.append("引进企业工程师两名")
    row.pending_effects = 1
    assert "尚未复评" in row.effects_text and "特此说明" in row.effects_text


def test_report_checks_the_unit_limit_and_each_items_200():
    row = _row()
    row.measures.append("措" * 201)
    report = SelfReport(Unit("major", "M0102", "数控技术"), "2026", datetime(2026, 11, 1, tzinfo=UTC), [row])
    failed = [c.what for c in report.failed_checks]
    assert failed == ["3.5 改进措施"]
    row.causes.append("因" * 3000)
    assert [c.what for c in report.failed_checks] == ["全文", "3.5 改进措施"]
