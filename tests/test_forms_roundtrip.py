"""Template round trip on real PostgreSQL: a template generated from the rulebook, filled by the
test with openpyxl (good and bad rows, a title line, notes and signature lines under the table),
taken in → the bad rows located in Chinese (sheet, row, column, why), the good ones audited and
stored as observations through the embedded pipeline (the same path as every connector)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, text
from streamkit import college

from zhengai.embedded import Pipeline
from zhengai.forms import Intake, check_due
from zhengai.forms.drop import process_folder
from zhengai.forms.due import issue
from zhengai.forms.spec import FormsConfig, FormSpec, period_end
from zhengai.forms.templates import write_form
from zhengai.rules.loader import load_rulebook
from zhengai.warnings.forms_schema import FormSubmissionRow, FormValueRow
from zhengai.warnings.store import WarningStore

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
TERM = "2026-2027-1"
FORM = FormSpec(
    id="test.course",
    name="课程教学情况填报表",
    office="教务处",
    metrics=["course.lesson_plan_ontime", "course.teaching_incidents"],
    mode="per_row",
)


@pytest.fixture
def setup(pg_url):
    store = WarningStore(pg_url)
    store.create_schema()
    rules = load_rulebook()
    pipeline = Pipeline(store, rules, clock=lambda: NOW)
    pipeline.deliver(college(students_per_class=2, classes=2))
    config = FormsConfig(forms=[FORM, FORM.model_copy(update={"id": "test.whole", "mode": "whole"})])
    intake = Intake(store, pipeline, config, rules, directory=lambda: pipeline.directory, clock=lambda: NOW)
    return store, rules, pipeline, intake


def _template(tmp_path, rules, form=FORM):
    path = write_form(form, rules, TERM, [("C1", "课程1"), ("C2", "课程2")], period_end(TERM), tmp_path / "t.xlsx")
    wb = load_workbook(path)
    ws = wb["填报"]
    rows = {
        (ws.cell(r, 1).value, ws.cell(r, 3).value): r
        for r in range(5, ws.max_row + 1)
        if str(ws.cell(r, 1).value).startswith("course.")
    }
    return path, wb, ws, rows


def test_generated_template_describes_who_what_when(tmp_path, setup):
    _, rules, _, _ = setup
    _, _, ws, rows = _template(tmp_path, rules)
    assert ws["B2"].value == "教务处" and ws["D2"].value == "2027-02-01" and ws["E2"].value == "填报人工号"
    r = rows[("course.lesson_plan_ontime", "C1")]
    rule = rules.rules["course.lesson_plan_ontime"]
    assert [ws.cell(r, c).value for c in (2, 5, 6, 7)] == [rule.name, TERM, "%", "0–100 的数值"]
    assert ws.cell(rows[("course.teaching_incidents", "C2")], 7).value == "≥ 0 的整数"
    assert len(rows) == 4 and ws.data_validations.dataValidation, "one row per indicator × entity, validated"


def test_round_trip_locates_bad_rows_and_audits_good_ones(tmp_path, setup):
    store, rules, pipeline, intake = setup
    path, wb, ws, rows = _template(tmp_path, rules)
    ws["F2"] = "T1"  # the filler's staff id
    ws.cell(rows[("course.lesson_plan_ontime", "C1")], 8).value = 96.5
    ws.cell(rows[("course.lesson_plan_ontime", "C2")], 8).value = 120  # out of range
    ws.cell(rows[("course.teaching_incidents", "C1")], 8).value = 2
    ws.cell(rows[("course.teaching_incidents", "C2")], 8).value = 1.5  # not a whole number
    ws.append(["C9 课程", None, "C9", "不存在", TERM, "起/学期", None, 1])  # a row for an entity nobody has
    ws.cell(ws.max_row, 1).value = "course.teaching_incidents"
    ws.append(["注：本表由教务处汇总"])  # notes and signatures under the table are not data
    ws.append(["制表人：", "王五", "审核：", "李四"])
    wb.save(path)

    out = intake.submit(path.read_bytes(), "课程填报.xlsx", by=None, via="upload")
    assert out.status == "partial" and out.accepted == 2 and out.rejected == 3, out
    r1, r2, r9 = (rows[("course.lesson_plan_ontime", "C2")], rows[("course.teaching_incidents", "C2")], ws.max_row - 2)
    assert out.errors == [
        f"工作表“填报”第 {r1} 行 H 列（填报值）：120 超出允许范围（0–100 的数值）",
        f"工作表“填报”第 {r2} 行 H 列（填报值）：1.5 不是整数（教学事故（缺课、擅自调停课、迟到早退等）按起/学期计）",
        f"工作表“填报”第 {r9} 行 C 列（对象编号）：对象编号“C9”不在学校的单位目录中",
    ]
    with store.session() as s:
        audit = {(v.metric, v.entity_id): v for v in s.scalars(select(FormValueRow))}
        sub = s.scalars(select(FormSubmissionRow)).one()
    assert set(audit) == {("course.lesson_plan_ontime", "C1"), ("course.teaching_incidents", "C1")}
    a = audit[("course.teaching_incidents", "C1")]
    assert (a.value, a.previous, a.entered_by, a.source_file, a.sheet, a.row) == (
        2.0,
        None,
        "T1",
        "课程填报.xlsx",
        "填报",
        rows[("course.teaching_incidents", "C1")],
    )
    assert (sub.status, sub.submitted_by, sub.errors) == ("partial", "T1", out.errors)
    with store.engine.connect() as c:
        stored = {
            (m, e): (v, src)
            for m, e, v, src in c.execute(
                text("SELECT metric, entity_id, value, source FROM observations WHERE source LIKE :s"), {"s": "forms.%"}
            )
        }
    assert stored == {
        ("course.lesson_plan_ontime", "C1"): (96.5, "forms.test.course"),
        ("course.teaching_incidents", "C1"): (2.0, "forms.test.course"),
    }
    # judged like any observation: 2 incidents is red for the course teacher
    assert any(
        w.rule_id == "course.teaching_incidents" and w.entity_id == "C1" and w.worst_band == "red"
        for w in store.read.warnings()
    )

    # a correction: the changed value is audited with the value it replaced, by the person who changed it
    out2 = intake.enter("test.course", TERM, [("course.teaching_incidents", "C1", 1.0)], by="Q01")
    assert out2.status == "accepted" and out2.delivered == 1
    with store.session() as s:
        last = s.scalars(select(FormValueRow).order_by(FormValueRow.id.desc())).first()
    assert (last.value, last.previous, last.entered_by, last.source_file) == (1.0, 2.0, "Q01", None)


def test_whole_file_mode_refuses_everything_on_one_error(tmp_path, setup):
    store, rules, _, intake = setup
    path, wb, ws, rows = _template(tmp_path, rules, FORM.model_copy(update={"id": "test.whole", "mode": "whole"}))
    for (metric, _), r in rows.items():
        ws.cell(r, 8).value = 98 if metric == "course.lesson_plan_ontime" else 0
    ws.cell(rows[("course.teaching_incidents", "C2")], 8).value = "两起"
    wb.save(path)
    out = intake.submit(path.read_bytes(), "x.xlsx", by="T2", via="upload")
    assert out.status == "refused" and out.accepted == 0
    assert out.errors == [
        f"工作表“填报”第 {rows[('course.teaching_incidents', 'C2')]} 行 H 列（填报值）：“两起”不是数字"
    ]
    with store.session() as s:
        assert s.scalars(select(FormValueRow)).all() == []


def test_drop_folder_moves_files_and_reports_errors_and_due_dates_count(tmp_path, setup):
    store, rules, _, intake = setup
    drop = tmp_path / "drop"
    drop.mkdir()
    path, wb, ws, rows = _template(tmp_path, rules)
    for r in rows.values():
        ws.cell(r, 8).value = 0
    wb.save(drop / "教务处.xlsx")
    dropped = (NOW - timedelta(days=3)).timestamp()  # dropped three days ago: on time
    os.utime(drop / "教务处.xlsx", (dropped, dropped))
    (drop / "坏文件.xlsx").write_bytes(b"not a workbook")
    (drop / "~$教务处.xlsx").write_bytes(b"lock")  # Excel's lock file: left alone
    issue(store, "test.course", "教务处", TERM, NOW - timedelta(days=1), NOW - timedelta(days=30))
    issue(store, "test.whole", "教务处", TERM, NOW - timedelta(days=2), NOW - timedelta(days=30))
    done = dict(process_folder(drop, intake))
    assert done["教务处.xlsx"].status == "accepted" and done["坏文件.xlsx"].status == "refused"
    assert done["坏文件.xlsx"].errors == ["坏文件.xlsx：不是可读取的 Excel（.xlsx）文件"]
    assert [p.name.split("-", 1)[1] for p in (drop / "processed").iterdir()] == ["教务处.xlsx"]
    assert sorted(p.name.split("-", 1)[1] for p in (drop / "rejected").iterdir()) == [
        "坏文件.xlsx",
        "坏文件.xlsx.report.csv",
    ]
    assert (drop / "~$教务处.xlsx").exists()
    value, late = check_due(intake)
    assert value is not None and value.value == 50.0 and value.period == "2026-11-20"
    assert [o.form_id for o in late] == ["test.whole"] and "尚未提交" in late[0].text
    assert any(w.rule_id == "school.data_collection_quality" and w.worst_band == "red" for w in store.read.warnings())
