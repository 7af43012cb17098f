"""Source health as a warning: an overdue connector becomes one warning to 信息中心 and stands in for
the stale-data warnings of the indicators it feeds (runner → health observation → processor →
rule → warning; PostgreSQL store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from zhengai.connectors.base import Connector, MemoryBookmarks, Row, Stream
from zhengai.connectors.errors import FatalSourceError
from zhengai.connectors.health import ConnectorHealth
from zhengai.connectors.runner import ConnectorJob, Runner
from zhengai.connectors.schedule import Schedule
from zhengai.connectors.source_health import health_observation
from zhengai.connectors.testing import ListDelivery
from zhengai.embedded import Pipeline
from zhengai.ingest.records import Entity, EntityKind, Level, Observation, Person
from zhengai.ingest.source_health import SOURCE_INPUT
from zhengai.rules.loader import load_rulebook
from zhengai.warnings.schema import OutboxRow
from zhengai.warnings.store import WarningStore

T0 = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)
EARLY = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0) - timedelta(days=425)


class _Broken(Stream):
    connector = "renshi"
    name = "staff"
    primary_key = ("id",)

    def read(self, cursor):
        raise FatalSourceError("login refused: 401")

    def map(self, row: Row):
        return []


class _BrokenConnector(Connector):
    name = "renshi"

    def __init__(self) -> None:
        self.streams = (_Broken(),)


def test_the_runner_reports_health_after_each_run_and_when_a_connector_falls_overdue():
    now = [T0]
    health = ConnectorHealth("renshi", timedelta(hours=1), started=T0)
    job = ConnectorJob(_BrokenConnector(), Schedule(every=timedelta(minutes=15)), health)
    delivery = ListDelivery()
    runner = Runner([job], delivery, MemoryBookmarks(), clock=lambda: now[0], school_id="SCH")
    runner.run_once()
    first = [r for r in delivery.records if isinstance(r, Observation) and r.metric == SOURCE_INPUT]
    assert [(o.value, o.source, o.entity_id) for o in first] == [
        (0, "health.renshi", "SCH")
    ]  # failing, not yet overdue
    now[0] = T0 + timedelta(hours=2)
    assert runner.check_health(job, now[0]) is True
    sent = [r for r in delivery.records if isinstance(r, Observation) and r.metric == SOURCE_INPUT]
    assert sent[-1].value == 1 and sent[-1].key == "health|renshi|2026-10-12"
    assert runner.check_health(job, now[0]) is False  # once per episode


def _directory() -> list:
    head = Person(id="OF13", name="信息中心主任")
    return [
        Entity(
            id="SCH",
            kind=EntityKind.school,
            name="测试学院",
            responsible={
                "office:信息中心": head,
                "office:人事处": Person(id="OF03", name="人事处长"),
                "quality_office": Person(id="QA01", name="质量办"),
            },
        ),
        head,
        Entity(
            id="D1",
            kind=EntityKind.department,
            name="二级学院",
            parent_id="SCH",
            responsible={"dean": Person(id="DN1", name="院长")},
        ),
        Entity(
            id="T1",
            kind=EntityKind.teacher,
            name="教师",
            parent_id="D1",
            responsible={"teacher": Person(id="T1", name="教师")},
        ),
    ]


def test_an_overdue_source_is_one_warning_to_it_and_holds_back_the_stale_notices(pg_url):
    store = WarningStore(pg_url)
    store.create_schema()
    clock = [EARLY]
    pipeline = Pipeline(store, load_rulebook(), clock=lambda: clock[0])
    pipeline.deliver(_directory())
    # 人事 fed a teacher's training days, which were too low: a warning is open.
    pipeline.deliver(
        [
            Observation(
                level=Level.teacher,
                entity_id="T1",
                metric="teacher.training_days",
                value=2,
                period=str(EARLY.year),
                observed_at=EARLY,
                source="renshi.staff",
            )
        ]
    )
    pipeline.deliver(
        [health_observation("renshi", False, EARLY, "SCH"), health_observation("caiwu", False, EARLY, "SCH")]
    )
    pipeline.flush()
    # (the tiny directory also breaches some directory ratios: their source is the directory itself)
    rules = {w.rule_id for w in store.read.warnings()}
    assert "teacher.training_days" in rules and "school.source_health" not in rules
    # Much later 人事 stopped: the runner reports it overdue.
    clock[0] = EARLY + timedelta(days=420)
    pipeline.deliver([health_observation("renshi", True, clock[0], "SCH")])
    pipeline.flush()
    source = [w for w in store.read.warnings() if w.rule_id == "school.source_health"]
    assert len(source) == 1 and source[0].responsible_person_id == "OF13" and source[0].value == 1
    with store.session() as s:
        before = {r.id for r in s.query(OutboxRow)}
    ticked = pipeline.service.tick(clock[0])
    stale = {(a.transition.kind.value, a.state.rule_id) for a in ticked}
    assert ("stale", "teacher.training_days") in stale  # recorded on the warning …
    with store.session() as s:
        new = [
            (r.recipient_id, r.subject, r.body) for r in s.query(OutboxRow).order_by(OutboxRow.id) if r.id not in before
        ]
        outbox = [(r.recipient_id, r.subject, r.body) for r in s.query(OutboxRow).order_by(OutboxRow.id)]
    stale_notices = [o for o in new if "超过数据时限没有新数据" in o[2]]
    assert stale_notices  # the directory's own ratios (source: aggregate) still say so …
    assert not [
        o for o in stale_notices if "（T1）" in o[2]
    ]  # … 人事's indicator is not notified: the source explains it
    to_it = [o for o in outbox if o[0] == "OF13"]
    assert len(to_it) == len(pipeline.channels) and all("人事（renshi）" in body for _, _, body in to_it)
    # 人事 recovers: the source warning recovers with it.
    clock[0] += timedelta(days=1)
    pipeline.deliver([health_observation("renshi", False, clock[0], "SCH")])
    pipeline.flush()
    assert store.read.warnings(status="recovered")[0].rule_id == "school.source_health"
