"""The connectors' value parsers under hostile input (issue 9): whatever a campus system hands
over — any text, huge or non-finite numbers, decimals, bytes, dates — a parser returns a value or
raises ``ValueError`` saying why, and ``field`` turns that into a ``MappingError`` naming the
field (the row becomes a dead letter; the stream goes on). Nothing else ever leaves."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zhengai.connectors.errors import MappingError
from zhengai.connectors.values import field, parse_bool, parse_int, parse_number, parse_timestamp

HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=60),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.binary(max_size=40),
    st.datetimes(),
    st.dates(),
    st.from_regex(r"\(?[¥$]?[0-9,.\-]{0,40}[元%]?\)?", fullmatch=True),
)
PARSERS = (parse_number, parse_int, parse_bool, parse_timestamp)


@settings(max_examples=400, deadline=None)
@given(value=HOSTILE)
def test_parsers_return_or_raise_value_error_only(value):
    for parse in PARSERS:
        try:
            result = parse(value)
        except ValueError:
            continue
        if parse is parse_number or parse is parse_int:
            assert math.isfinite(result), (parse.__name__, value, result)  # never inf or nan into a record


@settings(max_examples=300, deadline=None)
@given(value=HOSTILE, parse=st.sampled_from(PARSERS))
def test_field_raises_mapping_errors_only(value, parse):
    try:
        field({"x": value}, "x", parse)
    except MappingError as exc:
        assert str(exc).startswith("x: ")


@pytest.mark.parametrize(
    "value",
    [
        10**400,
        "9" * 400,
        "1" + "0" * 5000,
        float("inf"),
        float("nan"),
        Decimal("Infinity"),
        Decimal("NaN"),
        Decimal("sNaN"),
        "1e400",
        "(1,000,000,000,000,000,000,000,000,000,000,000)" + "0" * 400,
    ],
)
def test_huge_and_non_finite_numbers_are_refused_with_a_reason(value):
    with pytest.raises(ValueError):
        parse_number(value)
    with pytest.raises(ValueError):
        parse_int(value)


def test_the_corpus_of_dates_is_read_or_refused():
    assert parse_timestamp(date(2026, 3, 1)).tzinfo is not None
    assert parse_timestamp(datetime(1, 1, 1)).year == 1  # parsed; plausibility is the record's to judge
    with pytest.raises(ValueError):
        parse_timestamp("2026-13-45")
