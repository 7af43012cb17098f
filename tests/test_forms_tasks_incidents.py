"""任务能跟踪 and 质量事故 on real PostgreSQL: the task table and the incident register imported
from Excel (an office's own export with title, unit and signature lines, and a generated template),
bad rows located in Chinese, and the metrics they feed judged through the embedded pipeline."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from openpyxl import Workbook
from sqlalchemy import select
from streamkit import college

from zhengai.embedded import Pipeline
from zhengai.forms import Intake
from zhengai.forms.incidents import Incident, incident_values
from zhengai.forms.spec import FormsConfig, IncidentsSpec
from zhengai.forms.tasks import Task, overdue, task_values
from zhengai.forms.templates import TASK_COLUMNS, write_incidents
from zhengai.ingest.records import Entity, EntityKind, Person
from zhengai.rules.loader import load_rulebook
from zhengai.warnings.forms_schema import FormValueRow, IncidentRow, TaskRow
from zhengai.warnings.store import WarningStore

NOW = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # 2026-11-02 10:00 China time


def _observed(store, metric):
    with store.engine.connect() as c:
        from sqlalchemy import text

        return {
            (e, p): v
            for e, p, v in c.execute(
                text("SELECT entity_id, period, value FROM observations WHERE metric = :m"), {"m": metric}
            )
        }


@pytest.fixture
def intake(pg_url):
    store = WarningStore(pg_url)
    store.create_schema()
    pipeline = Pipeline(store, load_rulebook(), clock=lambda: NOW)
    teachers = [
        Entity(
            id=f"T{d}",
            kind=EntityKind.teacher,
            name=f"教师{d}",
            parent_id=f"D{d}",
            responsible={"teacher": Person(id=f"T{d}", name=f"教师{d}")},
        )
        for d in (1, 2)
    ]
    pipeline.deliver(college(students_per_class=1, classes=2) + teachers)
    config = FormsConfig(incidents=IncidentsSpec(count_stability=True))
    return Intake(store, pipeline, config, load_rulebook(), directory=lambda: pipeline.directory, clock=lambda: NOW)


def _task_export() -> bytes:
    """An office's own export: title and unit lines above the header, signatures under it."""
    wb = Workbook()
    ws = wb.active
    ws.append(["测试学院 2026 年部门工作任务完成情况一览表"])
    ws.append(["单位：%"])
    ws.append(list(TASK_COLUMNS))
    months = {m: None for m in (1, 2, 3, 4, 5, 6, 9, 10, 11, 12)}

    def row(n, unit, title, attr, kind, due, owner, done: dict):
        cells = [n, unit, title, attr, kind, due] + [done.get(m, months[m]) for m in months] + [owner, "某人"]
        ws.append(cells)

    row(1, "党政办", "年度工作要点", "重点", "部门", "2026-10-31", "OF01", {9: "60%", 10: "100%"})
    row(2, "教务处", "修订人才培养方案", "重点", "部门", "2026-10-15", "OF02", {9: 50, 10: 80})  # late
    row(3, "教务处", "期中教学检查", "常规", "部门", "2026年10月", "OF02", {10: "完成"})
    row(4, "二级学院1", "企业实践 1 个月", "常规", "个人", "2026-09-30", "T1", {9: 100})
    row(5, "二级学院1", "发表教研论文 1 篇", "常规", "个人", "2026-10-31", "T1", {10: 50})  # overdue
    row(6, "二级学院2", "考取高级技师证书", "重点", "紧急", "2026-10-31", "T2", {})  # bad 类型
    row(7, "二级学院2", "完成在线课程建设", "常规", "个人", "2026-13-01", "T2", {})  # bad date
    row(8, "二级学院2", "指导学生竞赛", "常规", "个人", "2026-10-31", "T2", {10: "150%"})  # bad completion
    ws.append([])
    ws.append(["注：完成情况为截至该月的累计完成百分比"])
    ws.append(["制表人：", "张三", None, "审核：", "李四", None, "负责人：", "王五"])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_task_table_import_feeds_ontime_and_plan_completion(intake):
    out = intake.submit(_task_export(), "部门任务一览表.xlsx", by="OF01", via="upload")
    assert out.status == "partial" and out.accepted == 5 and out.rejected == 3
    assert out.errors == [
        "工作表“Sheet”第 9 行 E 列（类型）：类型须为“部门”或“个人”，不是“紧急”",
        "工作表“Sheet”第 10 行 F 列（完成时限）：“2026-13-01”不是日期（如 2026-06-30）",
        "工作表“Sheet”第 11 行 N 列（10月）：完成情况“150%”无法识别：150 不在 0–100 之间",
    ]
    # 部门 tasks due in October: 2 of 3 reached 100 % by October
    assert _observed(intake.store, "school.task_ontime_completion") == {("SCH", "2026-10"): pytest.approx(66.6667)}
    # T1: September 1/1, October 1 of 2 (the paper is overdue)
    plan = _observed(intake.store, "teacher.plan_completion")
    assert plan == {("T1", "2026-09"): 100.0, ("T1", "2026-10"): 50.0, ("T1", "2026-11"): 50.0}
    assert any(
        w.rule_id == "teacher.plan_completion"
        and w.entity_id == "T1"
        and w.worst_band == "red"
        and w.responsible_person_id == "T1"
        for w in intake.store.read.warnings()
    )
    with intake.store.session() as s:
        assert s.scalar(select(TaskRow).where(TaskRow.title == "发表教研论文 1 篇")).updated_by == "OF01"
        audited = s.scalars(select(FormValueRow).where(FormValueRow.metric == "teacher.plan_completion")).all()
    assert {(a.period, a.value, a.entered_by, a.source_file) for a in audited} == {
        ("2026-09", 100.0, "OF01", "部门任务一览表.xlsx"),
        ("2026-10", 50.0, "OF01", "部门任务一览表.xlsx"),
        ("2026-11", 50.0, "OF01", "部门任务一览表.xlsx"),
    }

    # importing the same table again changes nothing: no new audit rows, no new observations
    again = intake.submit(_task_export(), "部门任务一览表.xlsx", by="OF01", via="upload")
    assert again.delivered == 0


def test_overdue_tasks_by_owner():
    tasks = [
        Task("a", 2026, "教务处", "x", "重点", "部门", date(2026, 10, 15), "OF02", {10: 80}),
        Task("b", 2026, "教务处", "y", "常规", "部门", date(2026, 10, 31), "OF02", {10: 100}),
        Task("c", 2026, "二级学院1", "z", "常规", "个人", date(2026, 12, 31), "T1", {}),
    ]
    assert {k: [t.id for t in v] for k, v in overdue(tasks, NOW).items()} == {"OF02": ["a"]}
    values = {(v.metric, v.entity_id, v.period): v.value for v in task_values(tasks, "SCH", NOW)}
    assert values == {("school.task_ontime_completion", "SCH", "2026-10"): 50.0}


def test_incident_register_feeds_the_counts(intake, tmp_path):
    rows = [
        ("JX-2026-01", "2026-09-21 08:10", "D1", "C1", "教学事故", "一般", "否", "迟到 20 分钟", "通报批评"),
        ("JX-2026-02", "2026-10-12", "D1", "C1", "教学事故", "一般", "否", "擅自调课", "扣发课时费"),
        ("ZL-2026-01", "2026-10-20", "D2", None, "质量事故", "较大", "是", "试卷丢失", "立案调查"),
        ("WD-2026-01", "2026-10-25", "SCH", None, "校园不稳定事件", "一般", "否", "聚集", "已处置"),
        ("JX-2026-03", "2026-10-26", "D2", None, "教学事故", "一般", "否", "缺课", ""),  # no course
        ("JX-2026-04", "昨天", "D2", "C2", "教学事故", "特大", "否", "", ""),  # bad time
    ]
    path = write_incidents(tmp_path / "r.xlsx", "2026-2027-1", "督导处", NOW, rows)
    out = intake.submit(path.read_bytes(), "质量事故登记表.xlsx", by="Q01", via="upload")
    assert out.status == "partial" and out.accepted == 4
    assert out.errors == [
        "工作表“事故登记”第 9 行 D 列（课程编号）：教学事故须填写课程编号",
        "工作表“事故登记”第 10 行 B 列（发生时间）：“昨天”不是时间（如 2026-10-12 14:30）",
    ]
    assert _observed(intake.store, "school.quality_incident_count") == {("SCH", "2026-2027-1"): 2.0}
    assert _observed(intake.store, "course.teaching_incidents") == {
        ("C1", "2026-2027-1"): 2.0,
        ("C2", "2026-2027-1"): 0.0,
    }
    assert _observed(intake.store, "school.campus_stability_events") == {("SCH", "2026"): 1.0}
    bands = {(w.rule_id, w.entity_id): w.worst_band for w in intake.store.read.warnings()}
    assert (
        bands[("course.teaching_incidents", "C1")] == "red"
        and bands[("school.quality_incident_count", "SCH")] == "yellow"
    )
    assert bands[("school.campus_stability_events", "SCH")] == "red"
    # the 较大 one with 一票否决 is announced at once: a zero-tolerance red warning
    assert _observed(intake.store, "school.serious_incident_count") == {("SCH", "2026-2027-1"): 1.0}
    assert bands[("school.serious_incident_count", "SCH")] == "red"
    with intake.store.session() as s:
        veto = s.get(IncidentRow, "ZL-2026-01")
    assert veto.veto and veto.grade == "较大" and veto.registered_by == "Q01"


def test_incident_counts_report_zero_for_covered_periods():
    incidents = [Incident("a", datetime(2026, 3, 1, tzinfo=UTC), "D1", "C1", "教学事故", "重大", True)]
    values = {
        (v.metric, v.entity_id, v.period): v.value
        for v in incident_values(incidents, "SCH", terms=["2026-2027-1"], courses=["C1"])
    }
    # a 重大 incident is not counted by the 一般-only rules but by the zero-tolerance one; the current term reports 0
    assert values == {
        ("school.serious_incident_count", "SCH", "2025-2026-2"): 1.0,
        ("school.serious_incident_count", "SCH", "2026-2027-1"): 0.0,
        ("school.quality_incident_count", "SCH", "2025-2026-2"): 0.0,
        ("course.teaching_incidents", "C1", "2025-2026-2"): 0.0,
        ("school.quality_incident_count", "SCH", "2026-2027-1"): 0.0,
        ("course.teaching_incidents", "C1", "2026-2027-1"): 0.0,
    }
