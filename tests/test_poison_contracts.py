"""Closed error contracts (issue 9): whatever the bytes, ``serde.decode`` raises only
``DecodeError`` (with a code), ``stream.validate`` returns a record or a dead letter, the directory
replica's ``_apply`` never raises. Property-based (Hypothesis) over generated hostile input, plus
the issue's cases as a regression corpus."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from zhengai.ingest import metrics
from zhengai.ingest.records import DeadLetter, Entity, EntityKind, Observation, period_kind
from zhengai.ingest.serde import DECODE_CODES, MAX_BYTES, MAX_DEPTH, DecodeError, decode, encode
from zhengai.ingest.stream import DirectoryReplica, Rejected, validate

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime.now(UTC)
T = NOW.isoformat()
OBS = {
    "level": "student",
    "entity_id": "S1",
    "metric": "student.attendance_rate",
    "value": 93.5,
    "period": "2026-W09",
    "observed_at": "2026-03-01T08:00:00+08:00",
    "source": "jiaowu.attendance",
}
GRADE = {
    "kind": "grade",
    "occurred_at": "2026-01-10T10:00:00+08:00",
    "source": "jiaowu.grades",
    "key": "g1",
    "student_id": "S1",
    "course_id": "C1",
    "term": "2025-2026-1",
    "score": 80,
    "credits": 2,
}
ATT = {
    "kind": "attendance",
    "occurred_at": "2026-03-06T17:00:00+08:00",
    "source": "jiaowu.att",
    "key": "a1",
    "student_id": "S1",
    "course_id": "C1",
    "week": "2026-W10",
    "scheduled": 4,
    "attended": 3,
}
ENTITY = {"id": "S1", "kind": "student", "name": "学生一", "parent_id": "K1"}


def env(data, type_="observation", v=1) -> bytes:
    return json.dumps({"type": type_, "v": v, "data": data}, ensure_ascii=False).encode()


def raw_value(data: dict, field: str, literal: bytes, type_="observation") -> bytes:
    """An envelope whose ``field`` holds ``literal`` verbatim (number literals json.dumps cannot write)."""
    marker = "@@" + field + "@@"
    return env({**data, field: marker}, type_).replace(json.dumps(marker).encode(), literal)


def assert_closed(raw) -> BaseModel | DecodeError:
    try:
        return decode(raw)
    except DecodeError as exc:
        assert exc.code in DECODE_CODES and exc.code in metrics.DEAD_LETTER_REASONS
        assert str(exc) and len(str(exc)) < 1000
        return exc


# --- the corpus: every case the issue names, and their neighbours --------------------------------

CORPUS = {  # id → (raw, expected code)
    "deep_nesting_100000": (b'{"type":"observation","v":1,"data":' + b"[" * 100000 + b"]" * 100000 + b"}", "too_deep"),
    "deep_nesting_just_over": (env(json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)), "too_deep"),
    "deep_unclosed": (b"[" * 200000, "too_deep"),
    "value_10_pow_400_int": (raw_value(OBS, "value", b"1" + b"0" * 400), "number_too_large"),
    "value_10_pow_400_float": (raw_value(OBS, "value", b"1" + b"0" * 400 + b".5"), "number_too_large"),
    "value_1e400": (raw_value(OBS, "value", b"1e400"), "non_finite"),
    "value_minus_1e400": (raw_value(OBS, "value", b"-1e400"), "non_finite"),
    "value_nan": (raw_value(OBS, "value", b"NaN"), "non_finite"),
    "value_5000_digits": (raw_value(OBS, "value", b"9" * 5000), "number_too_large"),
    "key_5000_digit_int": (b'{"type":"observation","v":' + b"1" * 5000 + b',"data":{}}', "number_too_large"),
    "observed_0001_plus8": (env({**OBS, "observed_at": "0001-01-01T00:00:00+08:00"}), "invalid_record"),
    "observed_9999_minus8": (env({**OBS, "observed_at": "9999-12-31T23:00:00-08:00"}), "invalid_record"),
    "occurred_0001_plus8": (env({**GRADE, "occurred_at": "0001-01-01T00:00:00+08:00"}, "grade"), "invalid_record"),
    "observed_2999": (env({**OBS, "observed_at": "2999-01-01T00:00:00Z"}), "invalid_record"),
    "observed_1970": (env({**OBS, "observed_at": "1970-01-01T00:00:00Z"}), "invalid_record"),
    "observed_naive": (env({**OBS, "observed_at": "2026-03-01T08:00:00"}), "invalid_record"),
    "v_true": (env(OBS, v=True), "unsupported_version"),
    "v_float": (env(OBS, v=1.0), "unsupported_version"),
    "v_string": (env(OBS, v="1"), "unsupported_version"),
    "data_v_true": (env({**OBS, "v": True}), "invalid_record"),
    "score_true": (env({**GRADE, "score": True}, "grade"), "invalid_record"),
    "scheduled_true": (env({**ATT, "scheduled": True}, "attendance"), "invalid_record"),
    "period_2026_02_31": (env({**OBS, "period": "2026-02-31"}), "invalid_record"),
    "period_0000": (env({**OBS, "period": "0000"}), "invalid_record"),
    "period_0000_01": (env({**OBS, "period": "0000-01"}), "invalid_record"),
    "period_2025_W53": (env({**OBS, "period": "2025-W53"}), "invalid_record"),
    "period_2026_13": (env({**OBS, "period": "2026-13"}), "invalid_record"),
    "period_term_gap": (env({**OBS, "period": "2025-2027-1"}), "invalid_record"),
    "bad_utf8": (b"\xff\xfe\x00\x81 not text", "not_utf8"),
    "lone_surrogate": (env({**ENTITY, "name": "@@"}, "entity").replace(b'"@@"', b'"\\ud800"'), "not_utf8"),
    "not_json": (b"{not json", "bad_json"),
    "unterminated_escapes": (b'{"a":"' + b'\\"' * 100000, "bad_json"),
    "list": (b"[1,2]", "not_envelope"),
    "string": (b'"observation"', "not_envelope"),
    "no_data": (b'{"type":"observation","v":1}', "not_envelope"),
    "unknown_type": (env(OBS, "spaceship"), "unknown_type"),
    "type_is_a_list": (b'{"type":["observation"],"v":1,"data":{}}', "unknown_type"),
    "version_9": (env(OBS, v=9), "unsupported_version"),
    "tombstone": (None, "tombstone"),
    "too_large": (b"x" * (MAX_BYTES + 1), "too_large"),
    "value_string": (env({**OBS, "value": "high"}), "invalid_record"),
    "long_source": (env({**OBS, "source": "x" * 5000}), "invalid_record"),
    "many_attributes": (env({**ENTITY, "attributes": {f"k{i}": i for i in range(100)}}, "entity"), "invalid_record"),
    "long_attribute": (env({**ENTITY, "attributes": {"note": "长" * 600}}, "entity"), "invalid_record"),
}


@pytest.mark.parametrize("raw, code", list(CORPUS.values()), ids=list(CORPUS))
def test_corpus_each_poison_is_a_decode_error_with_its_code(raw, code):
    out = assert_closed(raw)
    assert isinstance(out, DecodeError), out
    assert out.code == code, str(out)


@pytest.mark.parametrize(
    "period", ["2025-2026-1", "2025-2026-2", "2026-03", "2026", "2026-W09", "2026-W53", "2024-02-29", "2026-12-31"]
)
def test_every_period_form_accepted_today_still_is(period):
    assert period_kind(period)
    assert isinstance(decode(env({**OBS, "period": period})), Observation)


@pytest.mark.parametrize(
    "data, type_",
    [
        (OBS, "observation"),
        ({**ENTITY, "name": "[" * 60 + "{" * 60}, "entity"),  # brackets inside strings are not nesting
        ({**OBS, "value": 12345678901234567890}, "observation"),
        ({**OBS, "value": 0.1000000000000000055511151231257827}, "observation"),
        ({**OBS, "observed_at": (NOW + timedelta(days=60)).isoformat()}, "observation"),  # next weeks' timetable
        (GRADE, "grade"),
        (ATT, "attendance"),
    ],
)
def test_good_records_near_the_limits_are_accepted(data, type_):
    assert isinstance(decode(env(data, type_)), BaseModel)


# --- generated hostile input ----------------------------------------------------------------------

JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(["2026-02-31", "0000", "2026-W53", "0001-01-01T00:00:00+08:00", "\u0000", "S1"]),
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20,
)
RECORDS = st.sampled_from([("observation", OBS), ("grade", GRADE), ("attendance", ATT), ("entity", ENTITY)])
LITERALS = st.one_of(
    st.integers(min_value=1, max_value=6000).map(lambda n: b"9" * n),
    st.integers(min_value=300, max_value=500).map(lambda n: b"1e" + str(n).encode()),
    st.sampled_from([b"true", b"false", b"null", b"NaN", b"-Infinity", b"[]", b"{}", b'"\\ud800"', b"1.0e-400"]),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
)


@FAST
@given(st.binary(max_size=2000))
def test_decode_any_bytes(raw):
    assert_closed(raw)


@FAST
@given(st.text(alphabet='[]{}",:0123456789eE.-+\\tnrufals ', max_size=3000))
def test_decode_json_shaped_noise(text):
    assert_closed(text.encode())


@FAST
@given(RECORDS, st.data())
def test_decode_mutated_records(record, data):
    type_, base = record
    field = data.draw(st.sampled_from(sorted(base)))
    how = data.draw(st.sampled_from(["json", "literal", "drop", "envelope"]))
    if how == "json":
        raw = env({**base, field: data.draw(JSON)}, type_)
    elif how == "literal":
        raw = raw_value(base, field, data.draw(LITERALS), type_)
    elif how == "drop":
        raw = env({k: v for k, v in base.items() if k != field}, type_)
    else:
        raw = json.dumps({"type": data.draw(JSON), "v": data.draw(JSON), "data": base}).encode()
    out = assert_closed(raw)
    if isinstance(out, BaseModel):
        assert decode(encode(out)) == out  # what is accepted round-trips


@FAST
@given(st.one_of(st.none(), st.binary(max_size=500), JSON.map(lambda v: json.dumps(v).encode())))
def test_validate_returns_a_record_or_a_dead_letter(raw):
    out = validate(raw, (Observation,), "kafka:zg.observations/0/1", NOW)
    if isinstance(out, Rejected):
        assert isinstance(out.letter, DeadLetter) and out.letter.reason
        assert out.code in metrics.DEAD_LETTER_REASONS
        assert decode(encode(out.letter)) == out.letter  # the dead letter itself goes on the wire
    else:
        assert isinstance(out, Observation)


def entity(i: int) -> Entity:
    return Entity(id=f"E{i}", kind=EntityKind.department, name=f"学院{i}", parent_id="SCH")


@FAST
@given(
    st.lists(
        st.one_of(st.none(), st.binary(max_size=300), st.sampled_from([v for v, _ in CORPUS.values()])), max_size=12
    )
)
def test_replica_apply_survives_any_batch(poison):
    replica = DirectoryReplica("127.0.0.1:1", "zg.entities")
    good = [encode(entity(i)) for i in range(3)]
    batch = [good[0], *poison[: len(poison) // 2], good[1], *poison[len(poison) // 2 :], good[2]]
    assert replica._apply(batch) == 3 + sum(isinstance(assert_closed(p), Entity) for p in poison if p is not None)
    assert {"E0", "E1", "E2"} <= {rid for _, rid in replica._records}


def test_replica_last_resort_guard_counts_and_goes_on(monkeypatch, caplog):
    """Should anything but DecodeError escape decode (a future bug), the replica counts, logs and goes on."""
    from zhengai.ingest import stream

    def broken(raw):
        if raw == b"boom":
            raise OverflowError("a bug")
        return decode(raw)

    monkeypatch.setattr(stream, "decode", broken)
    replica = DirectoryReplica("127.0.0.1:1", "zg.entities")
    before = metrics.REPLICA_SKIPPED._value.get()
    assert replica._apply([b"boom", encode(entity(1))]) == 1
    assert replica.skipped == 1 and metrics.REPLICA_SKIPPED._value.get() == before + 1
    assert "OverflowError" in caplog.text and "a bug" not in caplog.text
