"""Personal data on the real broker: ID-card numbers, mobiles, emails and student IDs planted in
poison records on ``zg.observations``, ``zg.events`` and ``zg.entities`` reach ``zg.dlq`` with
the reason and a masked copy only; ``zg.warnings`` carries no contact data and no personal number
in its reasons; the worker's log shows none of them. The worker runs as in
``test_stream_worker.py`` (``python -m zhengai worker`` as a subprocess, ``streamkit``'s helpers)."""

from __future__ import annotations

import json
import time

import pytest
import streamkit as sw  # tests/ is on sys.path (conftest); the ``env`` fixture is conftest's

from zhengai.ingest.records import DeadLetter, Entity, EntityKind, Level, Observation, Person
from zhengai.ingest.serde import decode, encode
from zhengai.ingest.topics import DLQ, ENTITIES, EVENTS, OBSERVATIONS, TRANSITIONS

pytestmark = pytest.mark.integration

MOBILE = "13912345678"
ID_CARD = "11010119900101123X"
EMAIL = "jia.zhang@example.edu.cn"
STUDENT = "2401010001"  # the demo college's 学号 shape: cohort, major, sequence (10 digits)
UNKNOWN_STUDENT = "2401019999"
PLANTED = (MOBILE, ID_CARD, EMAIL, "jia.zhang", STUDENT, UNKNOWN_STUDENT)


def _envelope(kind: str, data: dict) -> bytes:
    return json.dumps({"type": kind, "v": 1, "data": data}, ensure_ascii=False).encode()


def test_poison_with_personal_data_is_masked_on_the_dead_letter_topic(env):
    records = sw.college(students_per_class=4)
    # a student with a real 学号 and a teacher whose contact data the directory carries
    records.append(Entity(id=STUDENT, kind=EntityKind.student, name="张佳", parent_id="K1"))
    records.append(Person(id="T9", name="张老师", mobile=MOBILE, email=EMAIL))
    good = sw.student_observations(sw.students(records), seed=5)
    good.append(
        Observation(
            level=Level.student,
            entity_id=STUDENT,
            metric="student.gpa",
            value=1.0,
            period=sw.TERM,
            observed_at=sw.NOW,
            source="test",
        )
    )
    keys, breaches, _ = sw.expected(good, records)
    assert any(e == STUDENT for _, e in breaches), "the planted student gets a warning"

    observation = json.loads(encode(good[0]))["data"]
    poison_observations = [
        _envelope("observation", {**observation, "value": f"待核实 {MOBILE}"}),  # invalid value
        _envelope(
            "observation", {**observation, "entity_id": UNKNOWN_STUDENT, "source": f"备注 {EMAIL}"}
        ),  # unknown entity
        b'{"type": "observation", "v": 1, "data": {"note": "' + ID_CARD.encode() + b'", ',  # bad JSON
        b"\xff\xfe mobile " + MOBILE.encode() + b" id " + ID_CARD.encode(),  # not UTF-8
    ]
    poison_events = [
        _envelope(
            "attendance",
            {
                "occurred_at": sw.NOW.isoformat(),
                "source": "test",
                "key": "bad-att",
                "student_id": STUDENT,
                "course_id": "C1",
                "week": sw.LAST_WEEK,
                "scheduled": f"身份证 {ID_CARD}",
                "attended": 1,
                "excused": 0,
            },
        ),
    ]
    poison_entities = [
        _envelope("entity", {"id": f"bad id {MOBILE}", "kind": "student", "name": f"联系 {EMAIL}", "parent_id": "K1"}),
    ]
    n_poison = len(poison_observations) + len(poison_events) + len(poison_entities)

    sw.produce(env.bootstrap, env.topic(ENTITIES), records + [(b"bad", raw) for raw in poison_entities])
    sw.produce(env.bootstrap, env.topic(OBSERVATIONS), [(b"S1001", raw) for raw in poison_observations] + good)
    sw.produce(env.bootstrap, env.topic(EVENTS), [(STUDENT.encode(), raw) for raw in poison_events])
    w = env.worker(park_wait=2).start()  # the unknown student waits this long for the directory
    sw.wait_until(lambda: len(env.verdict_keys()) >= len(keys), 90, "the good records' verdicts", w)
    sw.wait_until(lambda: w.metric("zhengai_records_out_total", topic="zg.dlq") >= n_poison, 60, "the dead letters", w)
    time.sleep(1.0)

    messages = sw.consume(env.bootstrap, env.topic(DLQ), n_poison + 1, timeout=5)
    letters = [decode(m.value) for m in messages]
    assert len(letters) == n_poison and all(isinstance(d, DeadLetter) for d in letters), [d.reason for d in letters]
    payloads = b"\n".join(m.value for m in messages).decode()
    assert not [p for p in PLANTED if p in payloads], payloads
    assert "139****5678" in payloads and "110101********123X" in payloads and "j***@example.edu.cn" in payloads
    assert any("2401****99" in d.reason for d in letters), "the unknown student's id masked in the reason"
    assert any("not UTF-8" in d.reason and "139****5678" in d.raw for d in letters)

    # zg.warnings: reasons masked, no contact data; the student's id only as the entity key
    events = env.rows("SELECT warning_id FROM warning_events")
    sw.wait_until(
        lambda: w.metric("zhengai_records_out_total", topic="zg.warnings") >= len(events),
        30,
        "the transitions on zg.warnings",
        w,
    )
    transitions = sw.consume(env.bootstrap, env.topic(TRANSITIONS), len(events) + 1, timeout=3)
    assert transitions
    for m in transitions:
        t = decode(m.value)
        data = json.loads(m.value)["data"]
        assert STUDENT not in t.reason and MOBILE not in m.value.decode() and EMAIL not in m.value.decode()
        rest = {k: v for k, v in data.items() if k != "entity_id"}
        assert not [p for p in PLANTED if p in json.dumps(rest, ensure_ascii=False)], rest

    log = w.log_text()
    assert "dead letter" in log  # the worker logged the letters (codes and sources) …
    assert not [p for p in PLANTED if p in log], [p for p in PLANTED if p in log]  # … and nothing personal
