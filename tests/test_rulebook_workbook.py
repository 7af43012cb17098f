"""The 诊断要素一览表 round trip: export the rulebook to Excel with the 附件3 columns and a legend,
edit it with openpyxl as the quality office would (a changed value, a bad value, a deleted required
cell), and read it back: located Chinese errors for the bad cells, a correct diff for the good one,
nothing written until the errors are fixed; then --write edits the YAML line by line, comments kept."""

from __future__ import annotations

import shutil

from openpyxl import load_workbook
from test_backtest import planted  # noqa: F401 — the planted term (a fixture)

from zhengai.cli import main
from zhengai.rules.diagnosis import load_catalog
from zhengai.rules.loader import default_rulebook_path, load_rulebook
from zhengai.rules.workbook import COLUMNS, SHEET, read_workbook

ANNEX3 = [
    "诊断项目",
    "诊断要素",
    "诊断点/质控指标",
    "主要工作",
    "诊断标准",
    "测量数据内涵",
    "预警值",
    "测量结果",
    "表现形式",
]


def _rows(ws):
    header = [c.value for c in ws[1]]
    by_id = {ws.cell(r, header.index("规则编号") + 1).value: r for r in range(2, ws.max_row + 1)}
    return header, by_id


def test_export_edit_import_round_trip(tmp_path, capsys):
    shutil.copytree(default_rulebook_path(), tmp_path / "rb")
    book = tmp_path / "一览表.xlsx"
    assert main(["rules", "export", str(book), "--rulebook", str(tmp_path / "rb")]) == 0
    rules = load_rulebook(tmp_path / "rb")

    wb = load_workbook(book)
    ws = wb[SHEET]
    header, by_id = _rows(ws)
    assert header[:9] == ANNEX3 and header == [h for h, _ in COLUMNS]
    assert ws.max_row - 1 == len(rules.rules)
    assert "色带" in "".join(str(r[0].value) for r in wb["说明"].iter_rows())
    r = by_id["course.attendance_rate"]
    assert ws.cell(r, header.index("诊断点/质控指标") + 1).value == "学生到课率"
    assert ws.cell(r, header.index("诊断标准") + 1).value == "目标值 98%；标准值 90%；预警值 95%（越高越好）"
    assert ws.cell(r, header.index("出处") + 1).value.startswith("course.yaml:")
    element = load_catalog().element_of("course.attendance_rate")
    assert (ws.cell(r, 1).value, ws.cell(r, 2).value) == (element.project_label, element.label)
    assert all(ws.cell(i, 1).value and ws.cell(i, 2).value for i in range(2, ws.max_row + 1))  # every rule placed

    # nothing edited: no changes, no errors
    assert read_workbook(book, rules) == ([], [])

    col = {h: header.index(h) + 1 for h in header}
    ws.cell(by_id["course.attendance_rate"], col["标准值"]).value = 88  # a good change
    ws.cell(by_id["course.pass_rate"], col["预警值"]).value = "八十五"  # not a number
    ws.cell(by_id["student.gpa"], col["标准值"]).value = None  # a required cell deleted
    ws.cell(by_id["course.homework_completion_rate"], col["目标值"]).value = 10  # target below the standard
    wb.save(book)

    changes, errors = read_workbook(book, rules)
    assert [str(c) for c in changes] == ["course.attendance_rate「学生到课率」标准值：90 → 88"]
    located = {(e.row, e.column.split(" ")[0]): e.message for e in errors}
    n, g = col["标准值"], col["预警值"]
    letter = lambda i: chr(ord("A") + i - 1)  # noqa: E731
    assert set(located) == {
        (by_id["course.pass_rate"], letter(g)),
        (by_id["student.gpa"], letter(n)),
        (by_id["course.homework_completion_rate"], letter(n)),
    }, errors
    assert located[(by_id["course.pass_rate"], letter(g))].startswith(
        "规则 course.pass_rate「课程及格率」：预警值应为数字（区间型规则写 [下限, 上限]），现为 '八十五'"
    )
    assert located[(by_id["student.gpa"], letter(n))].startswith(
        "规则 student.gpa「学期平均学分绩点」：标准值为空，此项必填"
    )
    assert "目标值须不低于标准值和预警值" in located[(by_id["course.homework_completion_rate"], letter(n))]
    assert all(str(e).startswith(f"{SHEET}!第 ") for e in errors)

    # with errors nothing is written, even with --write
    before = (tmp_path / "rb" / "course.yaml").read_text(encoding="utf-8")
    assert main(["rules", "import", str(book), "--rulebook", str(tmp_path / "rb"), "--write"]) == 1
    err = capsys.readouterr().err
    assert (
        "一览表有 3 处错误，未写回" in err and f"{SHEET}!第 {by_id['student.gpa']} 行 {letter(n)} 列（标准值）" in err
    )
    assert (tmp_path / "rb" / "course.yaml").read_text(encoding="utf-8") == before

    # fix the bad cells; a change in a read-only column is not applied
    ws.cell(by_id["course.pass_rate"], col["预警值"]).value = rules.rules["course.pass_rate"].warning
    ws.cell(by_id["student.gpa"], col["标准值"]).value = rules.rules["student.gpa"].standard
    ws.cell(by_id["course.homework_completion_rate"], col["目标值"]).value = rules.rules[
        "course.homework_completion_rate"
    ].target
    ws.cell(by_id["course.attendance_rate"], col["测量数据内涵"]).value = "随便改改"
    ws.cell(by_id["course.pass_rate"], col["启用"]).value = "否"
    wb.save(book)
    assert main(["rules", "import", str(book), "--rulebook", str(tmp_path / "rb")]) == 0
    out = capsys.readouterr().out
    assert "改动 2 处" in out and "尚未写回" in out
    assert (tmp_path / "rb" / "course.yaml").read_text(encoding="utf-8") == before

    assert main(["rules", "import", str(book), "--rulebook", str(tmp_path / "rb"), "--write"]) == 0
    after = load_rulebook(tmp_path / "rb")
    assert after.rules["course.attendance_rate"].standard == 88
    assert after.rules["course.attendance_rate"].description == rules.rules["course.attendance_rate"].description
    assert [rid for rid in rules.rules if rules.rules[rid].enabled and not after.rules[rid].enabled] == [
        "course.pass_rate"
    ]
    text = (tmp_path / "rb" / "course.yaml").read_text(encoding="utf-8")
    assert text.count("\n") == before.count("\n") + 1  # `enabled: false` inserted under its id
    assert "    standard: 88\n" in text and "# 全部 proposed (待质量办校准)" in text  # comments kept


def test_export_fills_the_latest_measured_value_from_the_store(planted, pg_url, tmp_path):  # noqa: F811
    book = tmp_path / "一览表.xlsx"
    assert main(["rules", "export", str(book), "--store", pg_url]) == 0
    ws = load_workbook(book)[SHEET]
    header, by_id = _rows(ws)
    r = by_id["course.attendance_rate"]
    # the last planted week: C001 98.5, C002 80, C003 96, C004 93, C005 96 → median 96
    assert ws.cell(r, header.index("测量结果") + 1).value == "中位数 96%（2025-W44，5 个单位）"
    assert ws.cell(r, header.index("标准值") + 1).value == 90  # a number, not text
    assert (
        ws.cell(r, header.index("主要工作") + 1).value == load_rulebook().rules["course.attendance_rate"].responsible.zh
    )
