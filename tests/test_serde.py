"""Records on the wire: round trip, and every poison input gets a precise reason."""

import pytest

from zhengai.ingest.records import Observation
from zhengai.ingest.serde import MAX_BYTES, DecodeError, decode, encode, key_of

OBS = Observation(
    level="course",
    entity_id="C1",
    metric="course.pass_rate",
    value=80,
    period="2025-2026-2",
    observed_at="2026-01-01T08:00:00+08:00",
    source="jiaowu.grades",
)


def test_round_trip_and_key():
    assert decode(encode(OBS)) == OBS
    assert key_of(OBS) == b"C1"


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"{not json", "bad JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"type":"observation","v":1,"data":{"value":NaN}}', "non-finite number NaN"),
        (b'{"type":"spaceship","v":1,"data":{}}', "unknown record type"),
        (b'{"type":"observation","v":9,"data":{}}', "schema version 9 is not supported"),
        (b"[1,2]", "not an envelope"),
        (encode(OBS).replace(b"80.0", b'"eighty"'), "observation.value"),
        (encode(OBS).replace(b'"course.pass_rate"', b'"Course Pass"'), "observation.metric"),
        (b'{"type":"observation","v":1,"data":{"x":"' + b"a" * MAX_BYTES + b'"}}', "exceeds"),
    ],
)
def test_poison(raw, reason):
    with pytest.raises(DecodeError, match=reason):
        decode(raw)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("period", "2026-13", "month must be 01..12"),
        ("period", "last week", "is not one of"),
        ("observed_at", "2026-01-01T00:00:00", "timezone"),
        ("value", None, "missing"),
        ("level", "dorm", "level"),
    ],
)
def test_record_validation_names_the_field(field, value, message):
    data = OBS.model_dump(mode="json") | {field: value}
    with pytest.raises(ValueError) as info:
        Observation.model_validate(data)
    assert field in str(info.value) and message in str(info.value)


def test_person_and_entity_with_one_id_get_distinct_keys_on_the_compacted_topic():
    from zhengai.ingest.records import Entity, Person

    teacher = Entity(id="T0001", kind="teacher", name="王老师", parent_id="D01")
    person = Person(id="T0001", name="王老师", mobile="13812345678")
    assert key_of(teacher) == b"T0001" and key_of(person) == b"person:T0001"


def test_warning_transition_round_trip_key_and_masked_reason():
    from zhengai.ingest.records import WarningTransition
    from zhengai.ingest.serde import TYPES

    t = WarningTransition(
        warning_id=7,
        rule_id="student.gpa",
        entity_id="S1001",
        level="student",
        episode=1,
        kind="opened",
        from_status="pending",
        to_status="open",
        from_band="yellow",
        to_band="red",
        period="2025-2026-2",
        value=1.2,
        reason="平均学分绩点 1.2 低于预警线；联系 13812345678，身份证 110101199003071234",
        actor=None,
        at="2026-03-01T08:00:00+08:00",
    )
    assert TYPES["warning_transition"] is WarningTransition
    raw = encode(t)
    assert raw.startswith(b'{"type":"warning_transition","v":1,') and "平均学分绩点".encode() in raw
    assert decode(raw) == t and key_of(t) == b"S1001"
    assert "13812345678" not in t.reason and "110101199003071234" not in t.reason
    assert "138****5678" in t.reason and t.at.utcoffset().total_seconds() == 0
    with pytest.raises(ValueError, match="kind"):
        WarningTransition.model_validate(t.model_dump(mode="json") | {"kind": "Opened!"})
