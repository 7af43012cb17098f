"""Submitted values reach PostgreSQL through Kafka and the worker — the same path as every
connector: the upload is taken in with a ``KafkaDelivery``; the worker (``python -m zhengai
worker``, a subprocess) stores and judges the observations; the audit names who entered them."""

from __future__ import annotations

from datetime import UTC, datetime

from openpyxl import load_workbook
from sqlalchemy import select
from streamkit import college, produce, wait_until

from zhengai.connectors.kafka import KafkaDelivery
from zhengai.forms import Intake
from zhengai.forms.spec import FormsConfig, FormSpec, period_end
from zhengai.forms.templates import write_form
from zhengai.ingest.directory import Directory
from zhengai.ingest.topics import ENTITIES
from zhengai.rules.loader import load_rulebook
from zhengai.warnings.forms_schema import FormValueRow
from zhengai.warnings.store import WarningStore

TERM = "2026-2027-1"
FORM = FormSpec(id="test.course", name="课程填报", office="教务处", metrics=["course.lesson_plan_ontime"])


def test_submitted_values_reach_the_store_through_kafka_and_the_worker(env, tmp_path):
    records = college(students_per_class=1, classes=2)
    produce(env.bootstrap, env.topic(ENTITIES), records)
    w = env.worker().start()

    rules = load_rulebook()
    path = write_form(FORM, rules, TERM, [("C1", "课程1"), ("C2", "课程2")], period_end(TERM), tmp_path / "t.xlsx")
    wb = load_workbook(path)
    ws = wb["填报"]
    ws["F2"] = "T1"
    ws["H5"], ws["H6"] = 99, 70  # C2: 70 % of lesson plans on time is red
    wb.save(path)

    store = WarningStore(env.store_url)
    directory = Directory(records)
    with KafkaDelivery(env.bootstrap, topic_prefix=env.prefix) as delivery:
        intake = Intake(
            store,
            delivery,
            FormsConfig(forms=[FORM]),
            rules,
            directory=lambda: directory,
            clock=lambda: datetime.now(UTC),
        )
        out = intake.submit(path.read_bytes(), "课程填报.xlsx", by=None, via="upload")
    assert out.status == "accepted" and out.delivered == 2

    def stored():
        return {
            (e, v) for e, v in env.rows("SELECT entity_id, value FROM observations WHERE source = 'forms.test.course'")
        }

    wait_until(lambda: stored() == {("C1", 99.0), ("C2", 70.0)}, 90, "the submitted values in PostgreSQL", w)
    wait_until(
        lambda: (
            env.rows("SELECT band FROM warnings WHERE rule_id = 'course.lesson_plan_ontime' AND entity_id = 'C2'")
            == [("red",)]
        ),
        30,
        "the red warning for C2",
        w,
    )
    with store.session() as s:
        audit = {(a.entity_id, a.value, a.entered_by, a.source_file, a.row) for a in s.scalars(select(FormValueRow))}
    assert audit == {("C1", 99.0, "T1", "课程填报.xlsx", 5), ("C2", 70.0, "T1", "课程填报.xlsx", 6)}
