"""The whole embedded loop on the small demo college: every planted anomaly produces its warning
with the right band, level, entity and responsible person; healthy references produce none;
re-running the same data opens nothing new; notifications are masked."""

import io
import json
import re

import pytest

from zhengai.demo.run import run_demo
from zhengai.ingest.records import Level
from zhengai.warnings.schema import WarningEventRow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = io.StringIO()
    run = run_demo(tmp_path_factory.mktemp("demo") / "out", "small", out=out, progress=False)
    run.console = out.getvalue()
    return run


def test_every_planted_anomaly_has_its_warning(demo):
    warnings = demo.store.read.warnings()
    assert len(demo.college.planted) >= 10
    assert {a.level for a in demo.college.planted} == set(Level), "anomalies on all five levels"
    for a in demo.college.planted:
        rows = [w for w in warnings if w.rule_id == a.rule_id and w.entity_id == a.entity_id]
        assert rows, f"no warning for planted {a}"
        w = rows[0]
        assert w.level == a.level.value
        assert w.worst_band == a.band.value, (a, w.worst_band)
        assert w.responsible_person_id == a.responsible_person_id, (a, w.responsible_person_id)
        if a.period is not None:  # the breach shows in that period: it lies inside the episode
            assert w.opened_period <= a.period <= w.last_period, (a, w.opened_period, w.last_period)


def test_healthy_references_have_no_warning(demo):
    assert len(demo.college.healthy) >= 4
    flagged = {w.entity_id for w in demo.store.read.warnings()}
    assert not flagged & set(demo.college.healthy)


def test_a_one_week_dip_opens_and_resolves(demo):
    dips = [a for a in demo.college.planted if a.rule_id == "course.attendance_rate"]
    assert dips
    closed = 0
    for a in dips:
        w = next(w for w in demo.store.read.warnings() if w.rule_id == a.rule_id and w.entity_id == a.entity_id)
        kinds = [e.kind for e in demo.store.read.events(w.id)]
        assert kinds[:2] == ["opened", "recovered"]
        if w.status == "closed":  # the demo closes one loop: ack, a measure, review by the level above
            assert kinds[2:] == ["acknowledged", "measure_added", "reviewed"] and w.resolution == "reviewed"
            closed += 1
        else:
            assert w.status == "recovered" and kinds == ["opened", "recovered"]
    assert closed <= 1


def test_rerunning_the_same_data_opens_nothing(demo):
    """Every stored observation judged again and every derived unit emitted again: a replay."""
    from sqlalchemy import select

    from zhengai.embedded import PipelineResult
    from zhengai.ingest.records import Observation
    from zhengai.warnings.schema import ObservationRow, VerdictRow

    store, pipeline = demo.store, demo.pipeline
    before = (
        len(store.read.warnings()),
        store.read.count(WarningEventRow),
        store.read.count(VerdictRow),
        store.read.count(ObservationRow),
    )
    with store.session() as s:
        stored = [
            Observation(
                level=r.level,
                entity_id=r.entity_id,
                metric=r.metric,
                value=bool(r.value) if r.is_bool else r.value,
                period=r.period,
                observed_at=r.observed_at,
                source=r.source,
                key=r.key,
            )
            for r in s.scalars(select(ObservationRow))
        ]
    pipeline.result = PipelineResult()
    pipeline.deliver(stored)
    pipeline.aggregator.directory_changed(demo.college.as_of)
    pipeline.flush()
    assert pipeline.result.verdicts > 0, "the replay was judged"
    assert pipeline.result.transitions == []
    assert (
        len(store.read.warnings()),
        store.read.count(WarningEventRow),
        store.read.count(VerdictRow),
        store.read.count(ObservationRow),
    ) == before


def test_notifications_are_sent_masked_and_reach_the_owner(demo):
    path = demo.report_path.parent / "notifications.jsonl"
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    # opened and recovered are notified; the demo's closed loop (ack, measure, review) is recorded only
    events = sum(1 for e in demo.store.read.events() if e.kind in ("opened", "recovered"))
    assert len(lines) == events  # one file notification per transition
    assert demo.result.dispatch["file"].sent == events and demo.result.dispatch["console"].sent == events
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", text), "a mobile number leaked"
    assert not re.search(r"(?<!\d)\d{10}(?!\d)", text), "a student ID leaked"
    assert not re.search(r"\d{17}[\dX]", text), "an ID-card number leaked"
    student = next(a for a in demo.college.planted if a.level is Level.student)
    masked = student.entity_id[:4] + "****" + student.entity_id[-2:]
    assert any(masked in n["body"] for n in lines)
    assert all(n["to"] for n in lines)


def test_summary_and_report_are_chinese(demo):
    assert (
        "预警汇总" in demo.console and f"{len(demo.college.planted)}/{len(demo.college.planted)} 已发现" in demo.console
    )
    report = demo.report_path.read_text(encoding="utf-8")
    assert report.startswith("# ") and "诊改监测预警报告" in report and "未关闭预警明细" in report


def test_bad_finance_row_is_a_dead_letter_and_the_rest_flows(demo):
    dead = [d for d in demo.result.dead_letters if d.source.startswith("caiwu")]
    assert len(dead) == 1 and "待核实" in dead[0].raw
    assert any(w.rule_id == "school.teaching_investment_ratio" for w in demo.store.read.warnings())


def test_the_offices_forms_are_all_taken_in_and_audited(demo):
    """填报: every workbook in the demo's drop folder was accepted whole and moved to processed/."""
    from sqlalchemy import select

    from zhengai.warnings.forms_schema import FormSubmissionRow, FormValueRow

    run = demo
    forms = run.college.out_dir / "forms"
    assert not list(forms.glob("*.xlsx")) and not (forms / "rejected").exists()
    assert len(list((forms / "processed").glob("*.xlsx"))) == 5
    with run.store.session() as s:
        subs = s.scalars(select(FormSubmissionRow).where(FormSubmissionRow.via == "drop")).all()
        audited = s.scalars(select(FormValueRow)).all()
    assert [(x.status, x.rejected) for x in subs] == [("accepted", 0)] * 5
    assert {a.metric for a in audited} == {
        "school.serious_incident_count",
        "school.task_ontime_completion",
        "teacher.plan_completion",
        "school.quality_incident_count",
        "course.teaching_incidents",
        "school.campus_stability_events",
        "school.data_collection_quality",
    }
