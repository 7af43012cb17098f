"""The streaming worker's parts without a broker: validation and reason codes, the attendance
windows (on SQLite), the roll-up formula, the rulebook watcher, store retries, and the
evaluation agent driven through Faust's ``agent.test_context()``."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import exc as sa_exc

from zhengai.ingest import metrics
from zhengai.ingest.aggregate import (
    ROLLUP_METRICS,
    attendance_metrics,
    attendance_rollups,
    directory_metrics,
    finance_metrics,
    grade_metrics,
    teacher_evaluation_metrics,
)
from zhengai.ingest.aggregator import Aggregator
from zhengai.ingest.directory import Directory
from zhengai.ingest.processors import Timing
from zhengai.ingest.records import (
    AttendanceEvent,
    DeadLetter,
    Entity,
    EntityKind,
    FinanceEvent,
    GradeEvent,
    Level,
    Observation,
    Person,
)
from zhengai.ingest.serde import MAX_BYTES, encode
from zhengai.ingest.stream import Rejected, raw_text, store_batch, validate
from zhengai.ingest.units import term_of, term_of_week, week_end
from zhengai.rules.engine import evaluate_batch
from zhengai.rules.loader import default_rulebook_path, load_rulebook
from zhengai.rules.reload import RulebookWatcher

T = datetime(2026, 10, 9, 10, tzinfo=UTC)
WEEK = "2026-W40"  # Mon 2026-09-28 … Sun 2026-10-04, China time
REC = datetime(2026, 10, 5, 8, tzinfo=UTC)  # when late tallies are recorded: the week is over


def directory_records() -> list[Entity | Person]:
    return [
        Entity(id="SCH", kind=EntityKind.school, name="学校"),
        Entity(id="D1", kind=EntityKind.department, name="学院", parent_id="SCH"),
        Entity(id="M1", kind=EntityKind.major, name="专业", parent_id="D1"),
        Entity(id="K1", kind=EntityKind.class_, name="一班", parent_id="M1"),
        Entity(id="K2", kind=EntityKind.class_, name="二班", parent_id="M1"),
        Entity(id="C1", kind=EntityKind.course, name="课程", parent_id="M1"),
        Entity(id="S1", kind=EntityKind.student, name="甲", parent_id="K1"),
        Entity(id="S2", kind=EntityKind.student, name="乙", parent_id="K1"),
        Entity(id="S3", kind=EntityKind.student, name="丙", parent_id="K2"),
    ]


def att(student, scheduled, attended, excused=0, *, week=WEEK, course="C1", at=T, n=0):
    return AttendanceEvent(
        student_id=student,
        course_id=course,
        week=week,
        scheduled=scheduled,
        attended=attended,
        excused=excused,
        occurred_at=at,
        source="t",
        key=f"a|{student}|{course}|{week}|{n}",
    )


def values(observations):
    return {(o.metric, o.entity_id, o.period): o.value for o in observations}


# --- validation: every serde refusal has a reason code -------------------------------------------

GOOD = encode(
    Observation(
        level=Level.student,
        entity_id="S1",
        metric="student.gpa",
        value=2.0,
        period="2026-2027-1",
        observed_at=T,
        source="t",
    )
)


def _with(data_update=None, **envelope):
    e = json.loads(GOOD)
    e.update(envelope)
    e["data"].update(data_update or {})
    return json.dumps(e).encode()


@pytest.mark.parametrize(
    "raw, code",
    [
        (None, "tombstone"),
        (b"x" * (MAX_BYTES + 1), "too_large"),
        (b"\xff\xfe", "not_utf8"),
        (b'{"type": ', "bad_json"),
        (GOOD.replace(b'"value":2.0', b'"value":NaN'), "non_finite"),
        (GOOD.replace(b'"value":2.0', b'"value":1e999'), "non_finite"),
        (b"[1, 2]", "not_envelope"),
        (_with(type="gossip"), "unknown_type"),
        (_with(v=7), "unsupported_version"),
        (_with({"value": "high"}), "invalid_record"),
        (_with({"period": "last week"}), "invalid_record"),
        (encode(Entity(id="SCH", kind=EntityKind.school, name="学校")), "wrong_topic"),
    ],
)
def test_every_refusal_is_a_dead_letter_with_a_known_reason_code(raw, code):
    out = validate(raw, (Observation,), "kafka:zg.observations/1/42", T)
    assert isinstance(out, Rejected)
    assert out.code == code and code in metrics.DEAD_LETTER_REASONS
    assert out.letter.source == "kafka:zg.observations/1/42" and out.letter.reason


def test_a_good_record_passes():
    assert isinstance(validate(GOOD, (Observation,), "s", T), Observation)


def test_raw_bytes_are_kept_as_text_or_bounded_base64(monkeypatch):
    assert raw_text("汉字".encode()) == "汉字"
    blob = bytes(range(256)) * 400  # 100 kB, not UTF-8
    text = raw_text(blob)  # by default: text with replacement characters, masked by DeadLetter
    assert not text.startswith("base64:") and len(text) <= 48 * 1024
    monkeypatch.setenv("ZHENGAI_DEAD_LETTER_RAW", "1")  # original bytes only where configured
    text = raw_text(blob)
    assert text.startswith("base64:") and "truncated" in text and len(text) < 70_000
    # a huge UTF-8 text is cut by the DeadLetter record itself, and says so
    d = DeadLetter(source="s", reason="r", raw=raw_text(b"y" * 1_000_000), at=T)
    assert len(d.raw) < 70_000 and "truncated" in d.raw


def test_metric_labels_are_a_fixed_set():
    with pytest.raises(ValueError):
        metrics.count_dead_letter("value 93 is too low for S1")


# --- the evaluation loop names why an observation was refused -------------------------------------


def test_engine_dead_letters_carry_reason_codes():
    d = Directory(directory_records())
    obs = [
        Observation(
            level=Level.student,
            entity_id="S1",
            metric="student.gpa",
            value=1.0,
            period="2026-2027-1",
            observed_at=T,
            source="t",
        ),
        Observation(
            level=Level.student,
            entity_id="S1",
            metric="student.unknown",
            value=1.0,
            period="2026-2027-1",
            observed_at=T,
            source="t",
        ),
        Observation(
            level=Level.student,
            entity_id="NOBODY",
            metric="student.gpa",
            value=1.0,
            period="2026-2027-1",
            observed_at=T,
            source="t",
        ),
        Observation(
            level=Level.student,
            entity_id="S1",
            metric="student.gpa",
            value=True,
            period="2026-2027-1",
            observed_at=T,
            source="t",
        ),
    ]
    r = evaluate_batch(load_rulebook(), obs, d, T)
    assert len(r.verdicts) == 1
    assert [code for _, code in r.rejected] == ["unknown_metric", "unknown_entity", "evaluation_error"]
    assert [o for o, _ in r.rejected] == obs[1:] and len(r.dead_letters) == 3


# --- roll-ups and the calendar --------------------------------------------------------------------


def test_rollups_weigh_by_sessions_and_follow_the_directory():
    d = Directory(directory_records())
    events = [att("S1", 10, 10), att("S2", 10, 5), att("S3", 4, 2), att("GHOST", 10, 0)]
    v = values(attendance_rollups(events, d))
    assert v == {
        ("student.class_attendance_rate", "K1", WEEK): 75.0,
        ("student.class_attendance_rate", "K2", WEEK): 50.0,
        ("student.major_attendance_rate", "M1", WEEK): round(100 * 17 / 24, 4),  # not the mean of 75 and 50
        ("student.department_attendance_rate", "D1", WEEK): round(100 * 17 / 24, 4),
    }


@pytest.mark.parametrize(
    "week, term",
    [
        ("2026-W37", "2026-2027-1"),
        ("2027-W02", "2026-2027-1"),
        ("2027-W10", "2026-2027-2"),
        ("2027-W27", "2026-2027-2"),
        ("2027-W33", "2027-2028-1"),
    ],
)
def test_term_of_a_teaching_week(week, term):
    assert term_of_week(week) == term


def test_a_week_ends_on_monday_midnight_china_time():
    assert week_end(WEEK) == datetime(2026, 10, 5, 0, 0, tzinfo=timezone(timedelta(hours=8)))


# --- the stream processors and their units, on SQLite ---------------------------------------------


@pytest.fixture
def agg(tmp_path):
    a = Aggregator(
        f"sqlite:///{tmp_path}/w.sqlite",
        timing=Timing(grace=timedelta(0), settle=timedelta(0), directory_settle=timedelta(0)),
    )
    a.create_schema()
    return a


def _claim(a, now, **kw):
    return a.claim(now, **kw)


def test_units_emit_closed_weeks_with_the_aggregate_formulas(tmp_path):
    a = Aggregator(f"sqlite:///{tmp_path}/g.sqlite", timing=Timing(grace=timedelta(hours=6), settle=timedelta(0)))
    a.create_schema()
    d = Directory(directory_records())
    events = [att("S1", 10, 9, 1), att("S2", 10, 6), att("S3", 4, 4)]
    after_week = week_end(WEEK) + timedelta(hours=1)
    assert (
        a.record(events, week_end(WEEK) - timedelta(hours=2)) == 1 + 3 + 1
    )  # the course; 3 students; the week's roll-up

    assert _claim(a, week_end(WEEK) - timedelta(minutes=1)) == []  # the week is not over
    assert _claim(a, after_week) == []  # nor is its grace period
    refs = _claim(a, after_week + timedelta(hours=6))
    assert len(refs) == 5
    assert _claim(a, after_week + timedelta(hours=6)) == []  # leased: nobody else emits them meanwhile
    got = values(a.emit(refs, d))
    want = values(attendance_metrics(events, term_of_week(WEEK)) + attendance_rollups(events, d))
    assert got == want
    a.release(refs, after_week)
    assert a.pending() == 0


def test_a_course_claimed_with_some_of_its_students_keeps_the_whole_course_rate(agg):
    """Issue 9: the student pass also yields the course's rate from the claimed students only; it
    must never overwrite the course pass's value."""
    d = Directory(directory_records())
    events = [att("S1", 10, 10), att("S2", 10, 2), att("S3", 10, 10)]
    agg.record(events, REC)
    now = week_end(WEEK) + timedelta(days=1)
    refs = _claim(agg, now, limit=2)  # the course and the roll-up; then the students one by one
    got = values(agg.emit(refs, d))
    assert got[("course.attendance_rate", "C1", WEEK)] == pytest.approx(100.0 * 22 / 30, abs=1e-4)
    agg.release(refs, now)
    for _ in range(3):
        refs = _claim(agg, now, limit=1)
        assert ("course.attendance_rate", "C1", WEEK) not in values(agg.emit(refs, d))
        agg.release(refs, now)


def test_a_late_or_racing_event_re_emits_and_an_older_one_changes_nothing(agg):
    d = Directory(directory_records())
    now = week_end(WEEK) + timedelta(days=1)
    agg.record([att("S1", 10, 5)], REC)
    refs = _claim(agg, now)
    agg.record([att("S1", 10, 8, at=T + timedelta(hours=1))], REC)  # arrives while the units are out
    agg.release(refs, now)
    assert agg.pending() == 3, "emitted with the old tally: dirty again"
    refs = _claim(agg, now)
    assert values(agg.emit(refs, d))[("student.attendance_rate", "S1", WEEK)] == 80.0
    agg.release(refs, now)
    agg.record([att("S1", 10, 1, at=T - timedelta(hours=1))], REC)  # an older tally for the same key
    refs = _claim(agg, now)
    assert values(agg.emit(refs, d))[("student.attendance_rate", "S1", WEEK)] == 80.0


def test_a_unit_waits_until_no_event_touched_it_for_the_settle_time(tmp_path):
    a = Aggregator(f"sqlite:///{tmp_path}/s.sqlite", timing=Timing(grace=timedelta(0), settle=timedelta(seconds=2)))
    a.create_schema()
    now = week_end(WEEK) + timedelta(days=1)
    a.record([att("S1", 10, 5)], now)
    assert _claim(a, now) == []
    assert len(_claim(a, now + timedelta(seconds=3))) == 3


def test_an_expired_lease_is_claimed_again(agg):
    now = week_end(WEEK) + timedelta(days=1)
    agg.record([att("S3", 4, 1)], REC)
    first = _claim(agg, now, lease=timedelta(seconds=10))
    assert first and _claim(agg, now + timedelta(seconds=5)) == []
    assert _claim(agg, now + timedelta(seconds=11)) == first  # the first claimer died


def test_rollups_wait_for_the_directory_and_converge_when_it_arrives(agg):
    """Facts before their directory entries: the roll-ups of students the directory cannot place
    are empty at first, and the same as with the directory first once it arrives."""
    events = [att("S1", 10, 9, 1), att("S2", 10, 6), att("S3", 4, 4)]
    now = week_end(WEEK) + timedelta(days=1)
    agg.record(events, REC)
    refs = _claim(agg, now)
    early = values(agg.emit(refs, Directory()))
    agg.release(refs, now)
    assert not {m for m, _, _ in early} & set(ROLLUP_METRICS.values())
    d = Directory(directory_records())
    assert agg.directory_changed(now) >= 1
    refs = _claim(agg, now)
    late = values(agg.emit(refs, d))
    assert {k: v for k, v in late.items() if k[0] in ROLLUP_METRICS.values()} == values(attendance_rollups(events, d))
    assert ("major.enrolled_students", "M1", "2026") in late, "the directory's own metrics follow its change too"


def test_grades_finance_scores_and_the_directory_emit_the_aggregate_formulas(agg):
    d = Directory(
        directory_records()
        + [
            Entity(
                id="T1",
                kind=EntityKind.teacher,
                name="教师",
                parent_id="D1",
                attributes={"fulltime": True, "major_id": "M1"},
            ),
        ]
    )
    d.add(
        Entity(
            id="C1",
            kind=EntityKind.course,
            name="课程",
            parent_id="M1",
            responsible={"course_teacher": Person(id="T1", name="教师")},
        )
    )
    term = "2026-2027-1"
    grades = [
        GradeEvent(
            student_id=s, course_id="C1", term=term, score=sc, credits=2.0, occurred_at=T, source="t", key=f"g|{s}"
        )
        for s, sc in (("S1", 95.0), ("S2", 55.0), ("S3", 72.0))
    ]
    corrected = GradeEvent(
        student_id="S2",
        course_id="C1",
        term=term,
        score=61.0,
        credits=2.0,
        occurred_at=T + timedelta(hours=1),
        source="t",
        key="g|S2|fix",
    )
    finance = [
        FinanceEvent(
            school_id="SCH",
            year="2026",
            category=c,
            item=c,
            budget=100.0,
            actual=a,
            occurred_at=T,
            source="t",
            key=f"f|{c}",
        )
        for c, a in (("tuition", 3000.0), ("appropriation", 9000.0), ("teaching", 1800.0))
    ]
    score = Observation(
        level=Level.course,
        entity_id="C1",
        metric="course.student_evaluation_score",
        value=91.5,
        period=term,
        observed_at=T,
        source="pingjiao",
    )
    now = T + timedelta(hours=2)
    agg.record(grades + [corrected] + finance + [score], now)
    agg.directory_changed(now)
    refs = _claim(agg, now)
    got = values(agg.emit(refs, d, as_of=now))
    want = values(
        grade_metrics(grades + [corrected])
        + finance_metrics(finance, d)
        + teacher_evaluation_metrics([score], d)
        + directory_metrics(d, year="2026", term=term_of(now), as_of=now)
    )
    assert got == want
    assert got[("course.pass_rate", "C1", term)] == 100.0, "the corrected grade counts"
    assert got[("teacher.student_evaluation_score", "T1", term)] == 91.5


def test_rulebook_watcher_swaps_good_changes_and_refuses_broken_ones(tmp_path, caplog):
    folder = tmp_path / "rb"
    shutil.copytree(default_rulebook_path(), folder)
    w = RulebookWatcher(folder)
    first = w.rules
    assert w.check() is None
    path = folder / "course.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("    warning: 95\n", "    warning: 93\n", 1), encoding="utf-8")
    assert w.check() is True and w.rules is not first and w.rules.version != first.version
    second = w.rules
    refused = metrics.RULEBOOK_RELOADS.labels(result="refused")._value.get()
    errors = metrics.RULEBOOK_ERRORS._value.get()
    (folder / "zz.yaml").write_text("rules:\n  - id: course.broken\n    nmae: x\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="zhengai.rules.reload"):
        assert w.check() is False
    assert w.rules is second, "the running rules stay"
    assert metrics.RULEBOOK_RELOADS.labels(result="refused")._value.get() == refused + 1
    assert metrics.RULEBOOK_ERRORS._value.get() > errors
    assert any("zz.yaml:3" in r.getMessage() for r in caplog.records)
    assert w.check() is None, "the same broken files are reported once"
    (folder / "zz.yaml").unlink()
    assert w.check() is None, "back to the running rulebook: nothing to swap"
    assert w.rules is second


# --- store retries ------------------------------------------------------------------------------------


def test_an_outage_is_waited_out_and_a_refused_record_is_isolated(monkeypatch):
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    written, calls = [], {"n": 0}

    def write(items):
        calls["n"] += 1
        if calls["n"] <= 3:
            raise sa_exc.OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))
        if "bad" in items:
            raise ValueError("value too long")
        written.extend(items)

    refused = asyncio.run(store_batch(write, ["a", "b", "bad", "c", "d"], "test"))
    assert [r for r, _ in refused] == ["bad"] and isinstance(refused[0][1], ValueError)
    assert written == ["a", "b", "c", "d"], "order kept"


_real_sleep = asyncio.sleep


async def _no_sleep(_delay, *args):
    await _real_sleep(0)


# --- an agent through Faust's test context -------------------------------------------------------


def test_judge_agent_stores_verdicts_in_one_hop_and_publishes_side_outputs(monkeypatch, tmp_path):
    from zhengai.ingest import app as app_module
    from zhengai.ingest.agents import replica
    from zhengai.warnings import agents
    from zhengai.warnings.judge import Judge
    from zhengai.warnings.service import WarningService
    from zhengai.warnings.store import WarningStore

    records = directory_records()
    replica.use(records)
    store = WarningStore(f"sqlite:///{tmp_path / 'w.db'}")
    store.create_schema()
    rules = load_rulebook(default_rulebook_path())
    service = WarningService(store, lambda: rules, lambda: replica.directory, channels=("console",))
    aggregator = Aggregator(store.engine)
    aggregator.create_schema()
    monkeypatch.setattr(agents, "judge", lambda: Judge(service, aggregator, lambda: rules, lambda: replica.directory))
    sent: dict[str, list] = {"verdicts": [], "warnings": [], "dlq": []}

    class Capture:
        def __init__(self, name):
            self.name = name

        async def send(self, *, key, value, force, partition=None):
            sent[self.name].append(value)
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    monkeypatch.setattr(agents, "verdicts_topic", Capture("verdicts"))
    monkeypatch.setattr(agents, "transitions_topic", Capture("warnings"))
    monkeypatch.setattr(agents, "dlq_topic", Capture("dlq"))
    good = Observation(
        level=Level.student,
        entity_id="S1",
        metric="student.gpa",
        value=1.0,
        period="2026-2027-1",
        observed_at=datetime.now(UTC),
        source="t",
    )

    async def run():
        async with agents.judge_observations.test_context() as agent:
            await agent.put(encode(good))
            await agent.put(b"{oops")
            for _ in range(100):
                if sent["verdicts"] and sent["dlq"]:
                    break
                await asyncio.sleep(0.05)

    assert app_module.get_app().conf.store.scheme == "memory"  # no tables: nothing to recover
    asyncio.run(run())
    from zhengai.ingest.serde import decode, decode_many

    verdicts = [v for m in sent["verdicts"] for v in decode_many(m)]  # batch messages
    assert [(v.rule_id, v.entity_id, v.band.value) for v in verdicts] == [("student.gpa", "S1", "red")]
    with store.engine.connect() as c:  # stored before it was published: one hop, no read-back
        assert c.exec_driver_sql("SELECT rule_id, entity_id, band FROM verdicts").all() == [
            ("student.gpa", "S1", "red")
        ]
        assert c.exec_driver_sql("SELECT key FROM observations").scalars().all() == [good.key]
    (letter,) = [decode(v) for v in sent["dlq"]]
    assert letter.reason.startswith("bad JSON") and letter.raw == "{oops"


def test_committed_transitions_become_wire_records(tmp_path):
    from zhengai.ingest.records import WarningTransition
    from zhengai.ingest.serde import decode
    from zhengai.warnings.service import WarningService, wire_transition
    from zhengai.warnings.store import WarningStore

    store = WarningStore(f"sqlite:///{tmp_path / 'w.db'}")
    store.create_schema()
    rules, directory = load_rulebook(default_rulebook_path()), Directory(directory_records())
    obs = [
        Observation(
            level=Level.student, entity_id="S1", metric="student.gpa", value=v, period=p, observed_at=T, source="t"
        )
        for v, p in ((1.0, "2025-2026-1"), (1.0, "2025-2026-2"), (3.5, "2026-2027-1"))
    ]
    verdicts = evaluate_batch(rules, obs, directory, T).verdicts
    service = WarningService(store, lambda: rules, lambda: directory, channels=("console",))
    applied = service.handle(verdicts)
    assert applied and service.handle(verdicts) == [], "a replayed batch yields no transitions"
    wire = [wire_transition(a, Level.student) for a in applied]
    assert all(decode(encode(t)) == t and isinstance(t, WarningTransition) for t in wire)
    with store.engine.connect() as c:
        rows = c.exec_driver_sql(
            "SELECT warning_id, kind, to_status, to_band, period, reason FROM warning_events"
        ).all()
    assert sorted((t.warning_id, t.kind, t.to_status, t.to_band.value, t.period, t.reason) for t in wire) == sorted(
        rows
    )
    assert {t.rule_id for t in wire} == {"student.gpa"} and {t.entity_id for t in wire} == {"S1"}


def test_the_judge_writes_a_big_batch_in_slices_with_the_same_result(tmp_path):
    """A Kafka batch of batch messages can carry 100,000 records; the judge writes them in slices
    (each slice one transaction, bounded locks) and the result is the one of a single write."""
    from zhengai.warnings.judge import Judge
    from zhengai.warnings.service import WarningService
    from zhengai.warnings.store import WarningStore

    rules, directory = load_rulebook(default_rulebook_path()), Directory(directory_records())
    obs = [
        Observation(
            level=Level.student, entity_id=s, metric="student.gpa", value=v, period=p, observed_at=T, source="t"
        )
        for s in ("S1", "S2", "S3")
        for v, p in ((1.0, "2025-2026-1"), (1.2, "2025-2026-2"), (3.5, "2026-2027-1"))
    ]
    outcomes = []
    for n, size in enumerate((Judge.SLICE, 2)):
        store = WarningStore(f"sqlite:///{tmp_path / f'w{n}.db'}")
        store.create_schema()
        aggregator = Aggregator(store.engine)
        aggregator.create_schema()
        service = WarningService(store, lambda: rules, lambda: directory, channels=("console",))
        judge = Judge(service, aggregator, lambda: rules, lambda: directory, replay=True, slice=size)
        out = judge.judge([(o, "t") for o in obs], T)
        with store.engine.connect() as c:
            rows = c.exec_driver_sql(
                "SELECT rule_id, entity_id, status, band FROM warnings ORDER BY rule_id, entity_id"
            ).all()
            events = c.exec_driver_sql("SELECT kind, period FROM warning_events ORDER BY warning_id, id").all()
            stored = c.exec_driver_sql("SELECT count(*) FROM observations").scalar()
        outcomes.append(
            (sorted((a.transition.kind.value, a.state.entity_id) for a in out.transitions), rows, events, stored)
        )
    assert outcomes[0] == outcomes[1] and outcomes[0][3] == len(obs) and outcomes[0][0]
