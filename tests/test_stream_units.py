"""The streaming worker's parts without a broker: validation and reason codes, the attendance
windows (on SQLite), the roll-up formula, the rulebook watcher, store retries, and the
evaluation agent driven through Faust's ``agent.test_context()``."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import exc as sa_exc

from zhengai.ingest import metrics
from zhengai.ingest.aggregate import attendance_metrics, attendance_rollups
from zhengai.ingest.directory import Directory
from zhengai.ingest.records import AttendanceEvent, DeadLetter, Entity, EntityKind, Level, Observation, Person
from zhengai.ingest.serde import MAX_BYTES, encode
from zhengai.ingest.stream import Rejected, raw_text, reason_code, store_batch, validate
from zhengai.ingest.windows import AttendanceWindows, term_of_week, week_end
from zhengai.rules.engine import evaluate_batch
from zhengai.rules.loader import default_rulebook_path, load_rulebook
from zhengai.rules.reload import RulebookWatcher

T = datetime(2026, 10, 9, 10, tzinfo=timezone.utc)
WEEK = "2026-W40"  # Mon 2026-09-28 … Sun 2026-10-04, China time
REC = datetime(2026, 10, 5, 8, tzinfo=timezone.utc)  # when late tallies are recorded: the week is over


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
    return AttendanceEvent(student_id=student, course_id=course, week=week, scheduled=scheduled, attended=attended,
                           excused=excused, occurred_at=at, source="t", key=f"a|{student}|{course}|{week}|{n}")


def values(observations):
    return {(o.metric, o.entity_id, o.period): o.value for o in observations}


# --- validation: every serde refusal has a reason code -------------------------------------------

GOOD = encode(Observation(level=Level.student, entity_id="S1", metric="student.gpa", value=2.0, period="2026-2027-1",
                          observed_at=T, source="t"))


def _with(data_update=None, **envelope):
    e = json.loads(GOOD)
    e.update(envelope)
    e["data"].update(data_update or {})
    return json.dumps(e).encode()


@pytest.mark.parametrize("raw, code", [
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
])
def test_every_refusal_is_a_dead_letter_with_a_known_reason_code(raw, code):
    out = validate(raw, (Observation,), "kafka:zg.observations/1/42", T)
    assert isinstance(out, Rejected)
    assert out.code == code and code in metrics.DEAD_LETTER_REASONS
    assert out.letter.source == "kafka:zg.observations/1/42" and out.letter.reason
    if code not in ("wrong_topic",):
        assert reason_code(out.letter.reason) == code


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
        Observation(level=Level.student, entity_id="S1", metric="student.gpa", value=1.0, period="2026-2027-1", observed_at=T, source="t"),
        Observation(level=Level.student, entity_id="S1", metric="student.unknown", value=1.0, period="2026-2027-1", observed_at=T, source="t"),
        Observation(level=Level.student, entity_id="NOBODY", metric="student.gpa", value=1.0, period="2026-2027-1", observed_at=T, source="t"),
        Observation(level=Level.student, entity_id="S1", metric="student.gpa", value=True, period="2026-2027-1", observed_at=T, source="t"),
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


@pytest.mark.parametrize("week, term", [
    ("2026-W37", "2026-2027-1"), ("2027-W02", "2026-2027-1"), ("2027-W10", "2026-2027-2"), ("2027-W27", "2026-2027-2"),
    ("2027-W33", "2027-2028-1"),
])
def test_term_of_a_teaching_week(week, term):
    assert term_of_week(week) == term


def test_a_week_ends_on_monday_midnight_china_time():
    assert week_end(WEEK) == datetime(2026, 10, 5, 0, 0, tzinfo=timezone(timedelta(hours=8)))


# --- attendance windows on SQLite ------------------------------------------------------------------

@pytest.fixture
def windows(tmp_path):
    w = AttendanceWindows(f"sqlite:///{tmp_path}/w.sqlite")
    w.create_schema()
    return w


def _claim(w, now, **kw):
    return w.claim(now, grace=kw.pop("grace", timedelta(0)), settle=kw.pop("settle", timedelta(0)), **kw)


def test_windows_emit_closed_weeks_with_the_aggregate_formulas(windows):
    d = Directory(directory_records())
    events = [att("S1", 10, 9, 1), att("S2", 10, 6), att("S3", 4, 4)]
    after_week = week_end(WEEK) + timedelta(hours=1)
    assert windows.record(events, d, week_end(WEEK) - timedelta(hours=2)) == 1 + 3 + 2 + 1 + 1  # course; 3 students; 2 classes; major; department

    assert _claim(windows, week_end(WEEK) - timedelta(minutes=1)) == []  # the week is not over
    assert _claim(windows, after_week, grace=timedelta(hours=6)) == []  # nor is its grace period
    refs = _claim(windows, after_week)
    assert len(refs) == 8
    assert _claim(windows, after_week) == []  # leased: nobody else emits them meanwhile
    got = values(windows.observations(refs, d))
    want = values(attendance_metrics(events, term_of_week(WEEK)) + attendance_rollups(events, d))
    assert got == want
    windows.release(refs, after_week)
    assert windows.pending() == 0


def test_a_late_or_racing_event_re_emits_and_an_older_one_changes_nothing(windows):
    d = Directory(directory_records())
    now = week_end(WEEK) + timedelta(days=1)
    windows.record([att("S1", 10, 5)], d, REC)
    refs = _claim(windows, now)
    windows.record([att("S1", 10, 8, at=T + timedelta(hours=1))], d, REC)  # arrives while the windows are out
    windows.release(refs, now)
    assert windows.pending() == 5, "emitted with the old tally: dirty again"
    refs = _claim(windows, now)
    assert values(windows.observations(refs, d))[("student.attendance_rate", "S1", WEEK)] == 80.0
    windows.release(refs, now)
    windows.record([att("S1", 10, 1, at=T - timedelta(hours=1))], d, REC)  # an older tally for the same key
    refs = _claim(windows, now)
    assert values(windows.observations(refs, d))[("student.attendance_rate", "S1", WEEK)] == 80.0


def test_a_window_waits_until_no_event_touched_it_for_the_settle_time(windows):
    d = Directory(directory_records())
    now = week_end(WEEK) + timedelta(days=1)
    windows.record([att("S1", 10, 5)], d, now)
    assert _claim(windows, now, settle=timedelta(seconds=2)) == []
    assert len(_claim(windows, now + timedelta(seconds=3), settle=timedelta(seconds=2))) == 5


def test_an_expired_lease_is_claimed_again(windows):
    d = Directory(directory_records())
    now = week_end(WEEK) + timedelta(days=1)
    windows.record([att("S3", 4, 1)], d, REC)
    first = _claim(windows, now, lease=timedelta(seconds=30))
    assert first and _claim(windows, now + timedelta(seconds=10)) == []
    assert _claim(windows, now + timedelta(seconds=31)) == first  # the first claimer died


# --- the rulebook watcher ----------------------------------------------------------------------------

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

def test_evaluation_agent_turns_observations_into_verdicts_and_dead_letters(monkeypatch):
    from zhengai.ingest import app as app_module
    from zhengai.ingest.agents import replica
    from zhengai.rules import agents

    records = directory_records()
    replica.use(records)
    sent: dict[str, list] = {"verdicts": [], "dlq": []}

    class Capture:
        def __init__(self, name):
            self.name = name

        async def send(self, *, key, value, force):
            sent[self.name].append(value)
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    monkeypatch.setattr(agents, "verdicts_topic", Capture("verdicts"))
    monkeypatch.setattr(agents, "dlq_topic", Capture("dlq"))
    good = Observation(level=Level.student, entity_id="S1", metric="student.gpa", value=1.0, period="2026-2027-1",
                       observed_at=datetime.now(timezone.utc), source="t")

    async def run():
        async with agents.evaluate.test_context() as agent:
            await agent.put(encode(good))
            await agent.put(b"{oops")
            for _ in range(100):
                if sent["verdicts"] and sent["dlq"]:
                    break
                await asyncio.sleep(0.05)

    assert app_module.get_app().conf.store.scheme == "memory"  # no tables: nothing to recover
    asyncio.run(run())
    from zhengai.ingest.serde import decode

    verdicts = [decode(v) for v in sent["verdicts"]]
    assert [(v.rule_id, v.entity_id, v.band.value) for v in verdicts] == [("student.gpa", "S1", "red")]
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
    obs = [Observation(level=Level.student, entity_id="S1", metric="student.gpa", value=v, period=p, observed_at=T,
                       source="t") for v, p in ((1.0, "2025-2026-1"), (1.0, "2025-2026-2"), (3.5, "2026-2027-1"))]
    verdicts = evaluate_batch(rules, obs, directory, T).verdicts
    service = WarningService(store, lambda: rules, lambda: directory, channels=("console",))
    applied = service.handle(verdicts)
    assert applied and service.handle(verdicts) == [], "a replayed batch yields no transitions"
    wire = [wire_transition(a, Level.student) for a in applied]
    assert all(decode(encode(t)) == t and isinstance(t, WarningTransition) for t in wire)
    with store.engine.connect() as c:
        rows = c.exec_driver_sql("SELECT warning_id, kind, to_status, to_band, period, reason FROM warning_events").all()
    assert sorted((t.warning_id, t.kind, t.to_status, t.to_band.value, t.period, t.reason) for t in wire) == sorted(rows)
    assert {t.rule_id for t in wire} == {"student.gpa"} and {t.entity_id for t in wire} == {"S1"}
