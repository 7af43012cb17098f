"""Poison on the real broker (issue 9): every kind of bad record mixed with good ones on
zg.observations, zg.events and zg.entities → every good record judged, every bad one on zg.dlq
with a reason, the worker alive and moving; an agent that crashes anyway ends the worker with a
non-zero status and nothing is lost; the rulebook keeps its last good version live and at start.

The worker runs as ``python -m zhengai worker`` with the helpers of tests/streamkit.py.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
from streamkit import (  # tests/ is on sys.path (conftest); the ``env`` fixture is conftest's
    LAST_WEEK,
    NOW,
    TERM,
    Worker,
    college,
    consume,
    expected,
    produce,
    student_observations,
    students,
    wait_until,
)

from zhengai.cli import main
from zhengai.ingest.records import AttendanceEvent, DeadLetter, Entity, EntityKind, Level, Observation
from zhengai.ingest.serde import decode, encode
from zhengai.ingest.topics import DLQ, ENTITIES, EVENTS, OBSERVATIONS
from zhengai.rules.loader import default_rulebook_path, load_rulebook
from zhengai.warnings.published import published_rulebook

pytestmark = pytest.mark.integration


def envelope(record) -> dict:
    return json.loads(encode(record))


def with_field(record, field: str, literal: bytes) -> bytes:
    """The record's envelope with ``field`` holding ``literal`` verbatim."""
    e = envelope(record)
    e["data"][field] = "@@marker@@"
    return json.dumps(e, ensure_ascii=False).encode().replace(b'"@@marker@@"', literal)


def with_json(record, **data) -> bytes:
    e = envelope(record)
    e["data"].update(data)
    return json.dumps(e, ensure_ascii=False).encode()


def common_poison(record) -> dict[str, bytes]:
    """Kinds of poison every topic must survive, built around a good record of that topic."""
    e = envelope(record)
    return {
        "deep_nesting": b'{"type":"observation","v":1,"data":' + b"[" * 100000 + b"]" * 100000 + b"}",
        "bad_utf8": b"\xff\xfe\x00\x81 not text",
        "not_envelope": b"[1, 2, 3]",
        "bad_json": b'{"type": "observation", "v": 1, "data": {',
        "v_true": json.dumps({**e, "v": True}).encode(),
        "int_5000_digits": json.dumps({**e, "v": 0}).encode().replace(b'"v": 0', b'"v": ' + b"7" * 5000),
        "unknown_type": json.dumps({**e, "type": "spaceship"}).encode(),
    }


def test_poison_of_every_kind_on_three_topics_good_records_judged_bad_ones_dead_lettered(env):
    records = college(students_per_class=4)
    ids = students(records)
    good_obs = student_observations(ids[:10], seed=9)
    o = good_obs[0]
    obs_poison = common_poison(o) | {
        "value_10_pow_400": with_field(o, "value", b"1" + b"0" * 400),
        "value_1e400": with_field(o, "value", b"1e400"),
        "value_5000_digits": with_field(o, "value", b"9" * 5000),
        "observed_0001_plus8": with_json(o, observed_at="0001-01-01T00:00:00+08:00"),
        "observed_2999": with_json(o, observed_at="2999-01-01T00:00:00Z"),
        "period_2026_02_31": with_json(o, period="2026-02-31"),
        "period_0000": with_json(o, period="0000"),
        "value_string": with_json(o, value="high"),
        "lone_surrogate": with_json(o, source="@@").replace(b'"@@"', b'"\\ud800"'),
    }
    good_events = [
        AttendanceEvent(
            occurred_at=NOW,
            source="test.att",
            key=f"att|{sid}|{LAST_WEEK}",
            student_id=sid,
            course_id=f"C{1 + (int(sid[1]) - 1) % 2}",
            week=LAST_WEEK,
            scheduled=4,
            attended=3,
        )
        for sid in ids[10:14]
    ]
    a = good_events[0]
    event_poison = common_poison(a) | {
        "occurred_0001_plus8": with_json(a, occurred_at="0001-01-01T00:00:00+08:00"),
        "scheduled_true": with_json(a, scheduled=True),
        "scheduled_5000_digits": with_field(a, "scheduled", b"4" * 5000),
        "occurred_2999": with_json(a, occurred_at="2999-01-01T00:00:00Z"),
    }
    s = next(r for r in records if isinstance(r, Entity) and r.kind is EntityKind.student)
    entity_poison = common_poison(s) | {
        "kind_planet": with_json(s, kind="planet"),
        "attributes_flood": with_json(s, attributes={f"k{i}": i for i in range(100)}),
        "lone_surrogate": with_json(s, name="@@").replace(b'"@@"', b'"\\ud800"'),
    }

    def interleave(good: list, poison: dict[str, bytes], key: bytes) -> list[tuple[bytes, bytes]]:
        out, bad = [], list(poison.values())
        for i, record in enumerate(good):
            out.append((key, encode(record)))
            if i < len(bad):
                out.append((key, bad[i]))
        return out + [(key, b) for b in bad[len(good) :]]

    # The directory first, with its poison in the middle (one key: one partition, in this order).
    produce(env.bootstrap, env.topic(ENTITIES), interleave(records, entity_poison, b"dir"))
    produce(env.bootstrap, env.topic(OBSERVATIONS), interleave(good_obs, obs_poison, b"S1001"))
    produce(env.bootstrap, env.topic(EVENTS), interleave(good_events, event_poison, b"S2001"))
    keys, _, _ = expected(good_obs, records)
    w = env.worker().start()

    # Every good observation judged, exactly; every good event aggregated and its student judged.
    wait_until(lambda: keys <= env.verdict_keys(), 90, "the good observations' verdicts", w)

    def judged() -> set[str]:
        return {
            r[0]
            for r in env.rows(
                "SELECT entity_id FROM verdicts WHERE metric = 'student.attendance_rate' AND period = :p", p=LAST_WEEK
            )
        }

    wait_until(
        lambda: {e.student_id for e in good_events} <= judged(), 90, "a verdict for every good event's student", w
    )
    entities = sum(isinstance(r, Entity) for r in records)
    wait_until(
        lambda: env.scalar("SELECT count(*) FROM entities") == entities, 30, "every good directory record stored", w
    )

    # Every bad record on zg.dlq, once, with a reason.
    total = len(obs_poison) + len(event_poison) + len(entity_poison)
    wait_until(lambda: w.metric("zhengai_records_out_total", topic="zg.dlq") >= total, 60, "the dead letters", w)
    time.sleep(1.5)  # anything beyond the expected would show now
    letters = [decode(m.value) for m in consume(env.bootstrap, env.topic(DLQ), total + 1, timeout=5)]
    assert all(isinstance(d, DeadLetter) and d.reason for d in letters)
    by_topic = {}
    for d in letters:
        by_topic.setdefault(d.source.split("/")[0].removeprefix("kafka:"), []).append(d)
    assert {t: len(v) for t, v in by_topic.items()} == {
        env.topic(OBSERVATIONS): len(obs_poison),
        env.topic(EVENTS): len(event_poison),
        env.topic(ENTITIES): len(entity_poison),
    }
    reasons = " | ".join(d.reason for d in letters)
    for fragment in (
        "nesting deeper than",
        "integer literal of 5000 digits",
        "integer literal of 401 digits",
        "overflows to infinity",
        "outside years 1–9999",
        "more than 366 days in the future",
        "2026-02-31",
        "year 0000",
        "schema version True",
        "not UTF-8",
        "lone surrogate",
        "not an envelope",
        "bad JSON",
        "a number is expected, not a boolean",
        "kind",
    ):
        assert fragment in reasons, fragment
    for code in (
        "too_deep",
        "number_too_large",
        "non_finite",
        "not_utf8",
        "not_envelope",
        "bad_json",
        "unsupported_version",
        "invalid_record",
        "unknown_type",
    ):
        assert w.metric("zhengai_dead_letters_total", reason=code) >= 1, code

    # Alive and moving: a second wave is judged, nothing stalled, no agent crashed.
    more = student_observations(ids[14:], seed=10)
    produce(env.bootstrap, env.topic(OBSERVATIONS), more)
    more_keys, _, _ = expected(more, records)
    wait_until(lambda: more_keys <= env.verdict_keys(), 60, "the second wave", w)
    assert w.proc.poll() is None
    assert w.metric("zhengai_agent_crashes_total") == 0
    assert "Crashed reason" not in w.log_text() and "Restarting dead" not in w.log_text()
    assert w.metric("zhengai_directory_entities") == entities
    wait_until(
        lambda: 'zhengai_consumer_stalled_seconds{topic="zg.observations"} 0.0' in w.metrics(),
        30,
        "the stall gauge at 0 for a moving stream",
        w,
    )


class CrashingWorker(Worker):
    """The real worker with one planted bug: decoding a batch with an observation of entity CRASH raises."""

    # Planted outside the one-hop store transaction: a bug there is a refused record (isolated and
    # dead-lettered by store_batch), not a crash. Decoding runs before it, in the agent itself.
    PLANT = (
        "import sys, zhengai.ingest.stream as s\n"
        "real = s.decode_batch\n"
        "def planted(events, *a, **k):\n"
        "    if any(b'\"CRASH\"' in (e.value or b'') for e in events):\n"
        "        raise RuntimeError('planted bug')\n"
        "    return real(events, *a, **k)\n"
        "s.decode_batch = planted\n"
        "from zhengai.cli import main\n"
        "sys.exit(main(['worker', '--log-level', 'info']))\n"
    )

    def start(self) -> CrashingWorker:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.PLANT],
            cwd=self.env.workdir,
            env=self.environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(lambda: "Worker]: Ready" in self.log_text(), 90, "the worker to be ready", self)
        return self


def test_an_agent_that_crashes_anyway_ends_the_worker_non_zero_and_nothing_is_lost(env):
    records = college(students_per_class=3) + [Entity(id="CRASH", kind=EntityKind.student, name="测试", parent_id="K1")]
    good = student_observations(students(records)[:6], seed=11)
    crash = Observation(
        level=Level.student,
        entity_id="CRASH",
        metric="student.gpa",
        value=3.0,
        period=TERM,
        observed_at=NOW,
        source="test",
    )
    produce(env.bootstrap, env.topic(ENTITIES), records)
    w = CrashingWorker(env, 0, {})
    env.workers.append(w)
    w.start()
    produce(env.bootstrap, env.topic(OBSERVATIONS), good[:3] + [crash] + good[3:])
    try:
        status = w.proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker stayed alive after its agent crashed\n" + w.tail())
    assert status == 70, w.tail()
    log = w.log_text()
    assert "planted bug" in log and "exits with status 70" in log

    # The supervisor restarts it (here: the test, without the bug): every record is judged.
    keys, _, _ = expected(good + [crash], records)
    w2 = env.worker().start()
    wait_until(lambda: keys <= env.verdict_keys(), 90, "every verdict after the restart", w2)
    assert env.verdict_keys() == keys


def test_rulebook_refuses_a_renamed_file_live_and_a_restart_on_a_broken_folder_runs_the_published_version(env):
    rulebook = env.workdir / "rulebook"
    shutil.copytree(default_rulebook_path(), rulebook)
    records = college(students_per_class=3)
    produce(env.bootstrap, env.topic(ENTITIES), records)
    assert (
        main(
            ["rules", "publish", str(rulebook), "--author", "质量办", "--reason", "首次发布", "--store", env.store_url]
        )
        == 0
    )
    published = {r.id: r.version for r in load_rulebook(rulebook).rules.values()}
    # The folder watch itself (the gate off; with it on the worker runs publications only).
    w = env.worker(rulebook=rulebook, publish_gate="false").start()

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

    def version(entity_id: str):
        return env.scalar("SELECT rule_version FROM verdicts WHERE entity_id = :e", e=entity_id)

    observe("S1001")
    assert wait_until(lambda: version("S1001"), 30, "the first verdict", w) == published["student.attendance_rate"]

    # An editor renames student.yaml to .yml: 18 rules would vanish. Refused live, at ERROR.
    (rulebook / "student.yaml").rename(rulebook / "student.yml")
    wait_until(lambda: "改名为 student.yml" in w.log_text(), 30, "the refusal in the log", w)
    assert "ERROR" in next(line for line in w.log_text().splitlines() if "改名为 student.yml" in line)
    observe("S1002")
    assert (
        wait_until(lambda: version("S1002"), 30, "a verdict after the refusal", w)
        == published["student.attendance_rate"]
    )

    # The worker restarts while the folder is broken (an empty file besides): it runs the published version.
    w.kill(signal.SIGTERM)
    (rulebook / "student.yml").rename(rulebook / "student.yaml")
    (rulebook / "course.yaml").write_text("", encoding="utf-8")
    w2 = env.worker(rulebook=rulebook, publish_gate="false").start()
    assert "starting on the last published version" in w2.log_text()
    observe("S1003")
    assert (
        wait_until(lambda: version("S1003"), 30, "a verdict on the published version", w2)
        == published["student.attendance_rate"]
    )
    assert w2.metric("zhengai_rules_loaded") == sum(
        len(v) for v in published_rulebook(env.store_url).by_metric.values()
    )


def test_a_broken_folder_with_nothing_published_stops_the_start_with_located_errors_not_a_traceback(env):
    rulebook = env.workdir / "rulebook"
    shutil.copytree(default_rulebook_path(), rulebook)
    (rulebook / "course.yaml").write_text("rules:\n  - id: course.x\n    name_en: 2026-13-45\n", encoding="utf-8")
    w = env.worker(rulebook=rulebook)
    log = open(w.log_path, "ab")
    w.proc = subprocess.Popen(
        [sys.executable, "-m", "zhengai", "worker"],
        cwd=env.workdir,
        env=w.environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    assert w.proc.wait(timeout=120) == 2
    text = w.log_text()
    assert "Traceback" not in text
    assert "course.yaml:3: rules[0].name_en: 值无法读取" in text and "worker 未启动" in text
