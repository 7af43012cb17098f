"""The streaming worker on a real Kafka broker and a real PostgreSQL server.

Each test gets its own topics (a unique prefix), consumer group and database, and runs
``python -m zhengai worker`` as a subprocess — the way it is deployed, and the only way to
SIGKILL it. Expectations are computed with the same pure functions the worker calls (the
evaluator, the aggregation), never hard-coded from a worker run.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from zhengai.ingest.aggregate import attendance_metrics, attendance_rollups
from zhengai.ingest.directory import Directory
from zhengai.ingest.records import (
    AttendanceEvent,
    DeadLetter,
    Entity,
    Level,
    Observation,
    WarningTransition,
)
from zhengai.ingest.serde import decode, decode_many, encode, key_of
from zhengai.ingest.topics import DLQ, ENTITIES, EVENTS, OBSERVATIONS, TRANSITIONS, VERDICTS
from zhengai.rules.loader import default_rulebook_path

pytestmark = pytest.mark.integration

from streamkit import (  # noqa: E402 — tests/ is on sys.path (conftest)
    LAST_WEEK,
    NOW,
    TERM,
    Env,
    college,
    consume,
    expected,
    produce,
    producer,
    student_observations,
    students,
    wait_until,
    warnings_by_pair,
)

# --- the tests -----------------------------------------------------------------------------------


def test_observations_in_exact_verdicts_and_warnings_out(env):
    records = college()
    observations = student_observations(students(records), seed=1)
    observations.append(
        Observation(
            level=Level.course,
            entity_id="C1",
            metric="course.attendance_rate",
            value=91.0,
            period=LAST_WEEK,
            observed_at=NOW,
            source="test",
        )
    )
    keys, breaches, _ = expected(observations, records)
    assert len(keys) == len(observations) and breaches

    produce(env.bootstrap, env.topic(ENTITIES), records)
    produce(env.bootstrap, env.topic(OBSERVATIONS), observations)
    w = env.worker().start()
    wait_until(lambda: len(env.verdict_keys()) >= len(keys), 60, "every verdict in the store", w)
    time.sleep(1.0)  # anything beyond the expected would show now

    assert env.verdict_keys() == keys
    pairs = warnings_by_pair(env)
    assert len(pairs) == len(set(pairs)), "one warning per rule and entity"
    assert set(pairs) == breaches
    # observations and the directory are stored too; the directory routes warnings to people
    assert env.scalar("SELECT count(*) FROM observations") == len(observations)
    assert env.scalar("SELECT count(*) FROM entities") == sum(isinstance(r, Entity) for r in records)
    routed = dict(
        env.rows("SELECT entity_id, responsible_person_id FROM warnings WHERE rule_id = 'course.attendance_rate'")
    )
    assert routed == {"C1": "T1"}
    assert w.metric("zhengai_verdicts_total", level="student", band="red") > 0
    assert w.metric("zhengai_records_in_total", topic="zg.observations", agent="judge") >= len(observations)

    # Every committed transition is published on zg.warnings, exactly once, before the batch is acked.
    events = env.rows("SELECT warning_id, kind FROM warning_events")
    assert events
    wait_until(
        lambda: w.metric("zhengai_records_out_total", topic="zg.warnings") >= len(events),
        30,
        "the transitions on zg.warnings",
        w,
    )
    messages = consume(env.bootstrap, env.topic(TRANSITIONS), len(events) + 1, timeout=3)
    published = [decode(m.value) for m in messages]
    assert all(isinstance(t, WarningTransition) for t in published)
    assert sorted((t.warning_id, t.kind) for t in published) == sorted((i, k) for i, k in events)
    assert all(m.key == t.entity_id.encode() for m, t in zip(messages, published, strict=True)), "keyed by entity"
    levels = {(r[0], r[1]): r[2] for r in env.rows("SELECT id, rule_id, level FROM warnings")}
    assert all(levels[(t.warning_id, t.rule_id)] == t.level.value for t in published)
    assert all(re.search(r"[\u4e00-\u9fff]", t.reason) for t in published), "reasons in Chinese"
    personal = re.compile(rb"(?<!\d)1[3-9]\d{9}(?!\d)|(?<!\d)\d{17}[\dXx](?!\d)")
    assert not any(personal.search(m.value) for m in messages), "no mobile or ID-card number"
    assert not any(b"13800000001" in m.value or b"example.edu" in m.value for m in messages), "no contact data"


def test_attendance_events_become_weekly_windows_and_rollups(env):
    records = college(students_per_class=6)
    rng = random.Random(7)
    events = []
    for sid in students(records):
        klass = int(sid[1])
        course = f"C{1 + (klass - 1) % 2}"
        scheduled = 8
        attended = rng.choice([8, 8, 7, 5]) if sid != "S1001" else 2  # one truant
        excused = min(scheduled - attended, rng.choice([0, 1]))
        events.append(
            AttendanceEvent(
                occurred_at=NOW - timedelta(hours=1),
                source="test.att",
                key=f"att|{sid}|{course}|{LAST_WEEK}",
                student_id=sid,
                course_id=course,
                week=LAST_WEEK,
                scheduled=scheduled,
                attended=attended,
                excused=excused,
            )
        )
    # a corrected tally for the truant (same key, later): latest wins
    fixed = events[0].model_copy(update={"attended": 3, "occurred_at": NOW - timedelta(minutes=5)})
    directory = Directory(records)
    want = {
        (o.metric, o.entity_id, o.period): o.value
        for o in attendance_metrics(events[1:] + [fixed], TERM) + attendance_rollups(events[1:] + [fixed], directory)
    }
    assert {m for m, _, _ in want} == {
        "course.attendance_rate",
        "student.attendance_rate",
        "student.absence_hours",
        "student.class_attendance_rate",
        "student.major_attendance_rate",
        "student.department_attendance_rate",
    }

    produce(env.bootstrap, env.topic(ENTITIES), records)
    produce(env.bootstrap, env.topic(EVENTS), events + [fixed, events[0]])  # the stale original again: ignored
    w = env.worker().start()

    metrics = tuple(sorted({m for m, _, _ in want}))

    def latest():
        rows = env.rows(
            "SELECT metric, entity_id, period, value FROM observations WHERE source = 'aggregate' AND metric IN :m",
            m=metrics,
        )
        return {(m, e, p): v for m, e, p, v in rows}

    wait_until(lambda: latest() == want, 60, "every unit emitted with its final value", w)
    # every emitted observation was evaluated; the truant and his class are warned
    wait_until(
        lambda: (
            {tuple(r) for r in env.rows("SELECT metric, entity_id, period FROM verdicts WHERE metric IN :m", m=metrics)}
            == set(want)
        ),
        30,
        "a verdict for every unit",
        w,
    )
    pairs = set(warnings_by_pair(env))
    assert ("student.attendance_rate", "S1001") in pairs
    wait_until(lambda: w.metric("zhengai_units_emitted_total", kind="rollup") >= 1, 10, "the roll-up unit counted", w)


def test_poison_records_go_to_the_dead_letter_topic_and_the_stream_goes_on(env):
    records = college(students_per_class=5)
    good = student_observations(students(records)[:8], seed=3)
    unknown_metric = Observation(
        level=Level.student,
        entity_id="S1001",
        metric="student.no_such_metric",
        value=1.0,
        period=TERM,
        observed_at=NOW,
        source="test",
    )
    unknown_entity = Observation(
        level=Level.student,
        entity_id="NOBODY",
        metric="student.gpa",
        value=1.0,
        period=TERM,
        observed_at=NOW,
        source="test",
    )
    envelope = json.loads(encode(good[0]))
    wrong_type = json.dumps({**envelope, "data": {**envelope["data"], "value": "very high"}}).encode()
    nan = re.sub(rb'"value":[^,}]+', b'"value":NaN', encode(good[1]))
    assert b'"value":NaN' in nan
    huge = json.dumps({**envelope, "data": {**envelope["data"], "source": "x" * 1_000_000}}).encode()
    bad_json = b'{"type": "observation", "v": 1, "data": {"level": "student",'
    not_utf8 = b"\xff\xfe\x00\x81 not text"
    poison = {  # reason code → raw value
        "bad_json": bad_json,
        "invalid_record": wrong_type,
        "non_finite": nan,
        "too_large": huge,
        "not_utf8": not_utf8,
        "unknown_metric": encode(unknown_metric),
        "unknown_entity": encode(unknown_entity),
        "wrong_topic": encode(records[0]),
        "tombstone": None,
    }
    # One key, so everything lands in one partition in this order: good and bad interleaved.
    stream, good_iter = [], iter(good)
    for raw in poison.values():
        stream.append((b"S1001", encode(next(good_iter))))
        stream.append((b"S1001", raw))
    stream += [(b"S1001", encode(o)) for o in good_iter]
    keys, breaches, _ = expected(good, records)

    produce(env.bootstrap, env.topic(ENTITIES), records)
    produce(env.bootstrap, env.topic(OBSERVATIONS), stream)
    w = env.worker(park_wait=2).start()  # an unknown entity waits for the directory this long
    wait_until(lambda: len(env.verdict_keys()) >= len(keys), 60, "the good records' verdicts", w)
    assert env.verdict_keys() == keys
    assert set(warnings_by_pair(env)) == breaches

    wait_until(lambda: w.metric("zhengai_records_out_total", topic="zg.dlq") >= len(poison), 30, "the dead letters", w)
    time.sleep(1.0)  # anything beyond the expected would show now
    letters = [decode(m.value) for m in consume(env.bootstrap, env.topic(DLQ), len(poison) + 1, timeout=5)]
    assert all(isinstance(d, DeadLetter) for d in letters)
    assert len(letters) == len(poison), [d.reason for d in letters]
    src = re.compile(rf"^kafka:{re.escape(env.topic(OBSERVATIONS))}/\d+/\d+$")
    assert all(src.match(d.source) for d in letters), [d.source for d in letters]

    def letter(raw: bytes) -> DeadLetter:
        return next(d for d in letters if d.raw == raw.decode())

    assert letter(bad_json).reason.startswith("bad JSON")
    assert "value" in letter(wrong_type).reason
    assert "non-finite" in letter(nan).reason
    big = next(d for d in letters if d.raw.startswith(huge[:1000].decode()))
    assert "exceeds" in big.reason and "truncated" in big.raw and len(big.raw) < 70_000
    binary = next(d for d in letters if "UTF-8" in d.reason)  # kept as masked text, not base64 (privacy)
    assert "not text" in binary.raw and not binary.raw.startswith("base64:")
    assert any("no rule for metric 'student.no_such_metric'" in d.reason for d in letters)
    assert any("'NOBODY' is not in the directory" in d.reason for d in letters)
    assert any("does not belong on this topic" in d.reason for d in letters)
    assert any("tombstone" in d.reason for d in letters)
    for code in poison:
        assert w.metric("zhengai_dead_letters_total", reason=code) == 1, code


def test_sigkill_restart_and_rebalances_lose_nothing_and_duplicate_nothing(env):
    records = college(students_per_class=150)  # 600 students
    observations = student_observations(students(records), seed=11)  # 1800 observations
    keys, breaches, _ = expected(observations, records)
    produce(env.bootstrap, env.topic(ENTITIES), records)
    third = len(observations) // 3
    produce(env.bootstrap, env.topic(OBSERVATIONS), observations[:third])

    def trickle():  # the rest arrives while workers join, die and come back
        p = producer(env.bootstrap)
        for i in range(third, len(observations), 20):
            for o in observations[i : i + 20]:
                p.send(env.topic(OBSERVATIONS), key=key_of(o), value=encode(o))
            p.flush()
            time.sleep(0.3)
        p.close()

    def stored() -> int:
        return env.scalar("SELECT count(*) FROM verdicts")

    # Small batches, and A commits only every 3 s: when it is killed it has written results whose
    # offsets it has not committed — those records are delivered again to the survivors.
    a = env.worker(batch_size=20, commit_interval=3).start()
    rest = threading.Thread(target=trickle)
    rest.start()
    wait_until(lambda: stored() >= len(keys) // 6, 60, "a sixth of the verdicts", a, every=0.05)
    b = env.worker(batch_size=20).start()  # B joins the group: a rebalance mid-stream
    mark = stored()
    wait_until(lambda: stored() >= mark + 100, 60, "both workers at work", b, every=0.05)
    assert rest.is_alive(), "the kill must land mid-stream"
    a.kill(signal.SIGKILL)
    at_kill = stored()
    rest.join()
    a2 = env.worker(batch_size=20).start()  # A comes back: another rebalance
    wait_until(lambda: stored() >= len(keys), 120, "every verdict after the restart", a2)
    time.sleep(1.0)  # anything beyond the expected would show now

    assert env.verdict_keys() == keys, "no verdict lost, none extra"
    pairs = warnings_by_pair(env)
    assert len(pairs) == len(set(pairs)), "no duplicate warning"
    assert set(pairs) == breaches
    assert env.scalar("SELECT count(*) FROM warning_events WHERE kind = 'opened'") == len(breaches), "each opened once"
    assert env.scalar("SELECT count(*) FROM notification_outbox") == env.scalar(
        "SELECT count(*) FROM (SELECT DISTINCT event_id, channel FROM notification_outbox) AS d"
    )
    # The test did exercise redelivery: the survivors read more verdict messages than were left to store.
    reread = sum(x.metric("zhengai_records_in_total", topic="zg.observations", agent="judge") for x in (b, a2))
    print(f"verdicts {len(keys)}, stored when A was killed {at_kill}, observation messages read afterwards {reread}")
    assert reread > len(keys) - at_kill, (reread, len(keys), at_kill)


def committed_and_end(env: Env, spec) -> tuple[int, int]:
    """Sum over the topic's partitions of the offsets the worker group committed, and of the end offsets."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=env.bootstrap)
    try:
        offsets = admin.list_group_offsets(env.app_id).get(env.app_id, {})
    finally:
        admin.close()
    topic = env.topic(spec)
    committed = sum(max(0, meta.offset) for tp, meta in offsets.items() if tp.topic == topic)
    c = KafkaConsumer(bootstrap_servers=env.bootstrap)
    try:
        ends = c.end_offsets([TopicPartition(topic, p) for p in range(spec.partitions)])
    finally:
        c.close()
    return committed, sum(ends.values())


def test_offsets_are_committed_only_after_the_store_has_the_result(env):
    """One hop: an observation's offset is committed only after its verdict is stored, and the
    verdict is published on zg.verdicts (a side output) only after that too."""
    records = college(students_per_class=5)
    observations = student_observations(students(records)[:10], seed=5)
    keys, _, _ = expected(observations, records)
    produce(env.bootstrap, env.topic(ENTITIES), records)
    w = env.worker().start()
    with env.engine.connect() as hold:
        tx = hold.begin()
        hold.execute(text("LOCK TABLE verdicts IN ACCESS EXCLUSIVE MODE"))  # the store stalls
        produce(env.bootstrap, env.topic(OBSERVATIONS), observations)
        # The judge takes a first batch (as many messages as arrived within batch_within) and
        # blocks in the store with it: none of it may be committed or published.
        wait_until(
            lambda: w.metric("zhengai_records_in_total", topic="zg.observations", agent="judge") >= 1,
            90,
            "observations taken by the judge",
            w,
        )
        time.sleep(2.0)  # four commit intervals
        observations_committed, observations_end = committed_and_end(env, OBSERVATIONS)
        assert observations_end == len(observations) and observations_committed == 0, (
            "nothing committed before the store has it"
        )
        assert committed_and_end(env, VERDICTS)[1] == 0, "nothing published before the store has it"
        tx.rollback()
    wait_until(lambda: env.verdict_keys() == keys, 30, "the verdicts in the store once it is back", w)
    wait_until(
        lambda: committed_and_end(env, OBSERVATIONS) == (len(observations), len(observations)),
        30,
        "the commit after the store",
        w,
    )
    wait_until(
        lambda: w.metric("zhengai_records_out_total", topic="zg.verdicts") >= len(keys),
        30,
        "the verdicts published after the commit",
        w,
    )
    messages = consume(env.bootstrap, env.topic(VERDICTS), committed_and_end(env, VERDICTS)[1], timeout=10)
    published = [v for m in messages for v in decode_many(m.value)]
    assert sorted(v.key for v in published) == sorted(keys), "every stored verdict, once, in batch messages"
    wait_until(lambda: "zhengai_consumer_lag{" in w.metrics(), 10, "the lag gauge", w)
    lag = [line for line in w.metrics().splitlines() if line.startswith("zhengai_consumer_lag{")]
    assert all(line.endswith(" 0.0") for line in lag if 'topic="zg.observations"' in line), lag


def _set_warning(rulebook: Path, rule_id: str, warning: float) -> None:
    path = rulebook / "student.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == f"- id: {rule_id}")
    i = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("warning:"))
    lines[i] = re.sub(r"warning: .*", f"warning: {warning}", lines[i])
    path.write_text("".join(lines), encoding="utf-8")


def test_rulebook_change_is_picked_up_live_and_a_broken_change_is_refused(env):
    rulebook = env.workdir / "rulebook"
    shutil.copytree(default_rulebook_path(), rulebook)
    records = college(students_per_class=3)
    produce(env.bootstrap, env.topic(ENTITIES), records)
    w = env.worker(rulebook=rulebook).start()

    def observe(entity_id: str) -> None:
        produce(
            env.bootstrap,
            env.topic(OBSERVATIONS),
            [
                Observation(
                    level=Level.student,
                    entity_id=entity_id,
                    metric="student.attendance_rate",
                    value=93.0,
                    period=LAST_WEEK,
                    observed_at=NOW,
                    source="test",
                )
            ],
        )

    def verdict(entity_id: str):
        return env.rows("SELECT band, rule_version FROM verdicts WHERE entity_id = :e", e=entity_id)

    # 93 % with the shipped thresholds (target 98, standard 90, warning 95) is yellow.
    observe("S1001")
    ((band, v1),) = wait_until(lambda: verdict("S1001"), 30, "the first verdict", w)
    assert band == "yellow"

    # The quality office lowers the warning line to 92: 93 % is now normal — live.
    _set_warning(rulebook, "student.attendance_rate", 92)
    wait_until(lambda: w.metric("zhengai_rulebook_reloads_total", result="loaded") == 1, 30, "the reload", w)
    observe("S1002")
    ((band, v2),) = wait_until(lambda: verdict("S1002"), 30, "a verdict under the new rules", w)
    assert (band, v2 != v1) == ("normal", True)

    # A broken change (warning above the target) is refused; the running rules keep evaluating.
    _set_warning(rulebook, "student.attendance_rate", 99)
    (rulebook / "zz_typo.yaml").write_text("rules:\n  - id: student.typo\n    nmae: 拼写错误\n", encoding="utf-8")
    refused = re.compile(r"rulebook change refused: .*(student|zz_typo)\.yaml:\d+: ")
    wait_until(
        lambda: {m.group(1) for m in refused.finditer(w.log_text())} == {"student", "zz_typo"},
        30,
        "both broken files reported with file and line",
        w,
    )
    assert w.metric("zhengai_rulebook_reloads_total", result="refused") >= 1
    assert w.metric("zhengai_rulebook_errors_total") >= 2
    assert w.metric("zhengai_rulebook_reloads_total", result="loaded") == 1
    observe("S1003")
    ((band, v3),) = wait_until(lambda: verdict("S1003"), 30, "a verdict after the refusal", w)
    assert (band, v3) == ("normal", v2), "the last good rulebook still runs"
