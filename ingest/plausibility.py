"""Plausibility of what arrives on the wire, decided once (used by ``zhengai.ingest.records``).

* Periods are calendar-valid (``2026-02-31``, week 53 of a 52-week year, ``0000`` are refused)
  and their years lie in ``PERIOD_YEARS`` (2000–2099).
* Timestamps carry a timezone and stay within years 1–9999 once converted to UTC. The times a
  source stamps (``observed_at``, ``occurred_at``) lie between ``EARLIEST`` (2000-01-01) and
  ``FUTURE_SLACK`` (366 days) after the moment of validation. Not tighter: a replay only carries
  past times, but the demo college and backfills stamp whole terms ahead of the wall clock, and
  campus systems' clocks drift. 2999 is refused; next term's timetable is not.
* Numbers are numbers: ``true`` is not accepted where an int or a float is expected (pydantic
  would read it as 1).
"""

from __future__ import annotations

import re
import types
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

__all__ = [
    "PERIOD_YEARS",
    "EARLIEST",
    "FUTURE_SLACK",
    "period_kind",
    "period_sort_key",
    "utc",
    "plausible_time",
    "numeric_only",
]

# Periods: term 2025-2026-1, month 2026-03, year 2026, ISO week 2026-W09, day 2026-03-05.
_PERIOD_PATTERNS = {
    "term": re.compile(r"^(\d{4})-(\d{4})-([12])$"),
    "week": re.compile(r"^(\d{4})-W(\d{2})$"),
    "day": re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"),
    "month": re.compile(r"^(\d{4})-(\d{2})$"),
    "year": re.compile(r"^(\d{4})$"),
}


PERIOD_YEARS = range(2000, 2100)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=366)


def _calendar_check(kind: str, m: re.Match) -> None:
    """ValueError unless the period names a real calendar span (2026-02-31, 2026-W53, 0000 fail)."""
    year = int(m.group(1))
    if year not in PERIOD_YEARS:
        raise ValueError(f"year {m.group(1)} is outside {PERIOD_YEARS.start}..{PERIOD_YEARS.stop - 1}")
    if kind == "term" and int(m.group(2)) != year + 1:
        raise ValueError("the second year must follow the first")
    if kind == "week":
        week = int(m.group(2))
        weeks_in_year = date(year, 12, 28).isocalendar()[1]  # 28 December is always in the last week
        if not 1 <= week <= weeks_in_year:
            raise ValueError(f"week number must be 01..{weeks_in_year} in {year}")
    if kind in ("month", "day") and not 1 <= int(m.group(2)) <= 12:
        raise ValueError("month must be 01..12")
    if kind == "day":
        try:
            date(year, int(m.group(2)), int(m.group(3)))
        except ValueError:
            raise ValueError(f"{m.group(0)} is not a calendar day") from None


@lru_cache(maxsize=8192)
def period_kind(period: str) -> str:
    """The kind of a period string, or ValueError saying what is accepted. Cached: a stream
    carries few distinct periods (weeks, terms, years), each checked once."""
    for kind, pattern in _PERIOD_PATTERNS.items():
        m = pattern.match(period)
        if not m:
            continue
        try:
            _calendar_check(kind, m)
        except ValueError as exc:
            raise ValueError(f"{kind} {period!r}: {exc}") from None
        return kind
    raise ValueError(
        f"period {period[:32]!r} is not one of: term 2025-2026-1, year 2026, month 2026-03, "
        "ISO week 2026-W09, day 2026-03-05"
    )


_CHINA = timezone(timedelta(hours=8))


@lru_cache(maxsize=8192)
def period_start(period: str) -> datetime:
    """The first instant of a period, midnight China time: the deterministic time column that the
    store's idempotency keys carry (TimescaleDB partitions observations and verdicts by it).
    Terms follow the Chinese academic year: term 1 starts on 1 September of the first year,
    term 2 on 1 February of the second; an ISO week starts on its Monday."""
    kind = period_kind(period)
    m = _PERIOD_PATTERNS[kind].match(period)
    assert m is not None  # period_kind() matched the same pattern
    year = int(m.group(1))
    if kind == "term":
        day = date(year, 9, 1) if m.group(3) == "1" else date(year + 1, 2, 1)
    elif kind == "week":
        # week 1's Monday plus whole weeks
        day = date.fromisocalendar(year, 1, 1) + timedelta(weeks=int(m.group(2)) - 1)
    elif kind == "day":
        day = date(year, int(m.group(2)), int(m.group(3)))
    elif kind == "month":
        day = date(year, int(m.group(2)), 1)
    else:
        day = date(year, 1, 1)
    return datetime(day.year, day.month, day.day, tzinfo=_CHINA).astimezone(UTC)


@lru_cache(maxsize=8192)
def period_sort_key(period: str) -> tuple:
    """Orders periods of one kind chronologically (string order already does for these forms)."""
    return (period_kind(period), period)


def utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a timezone (e.g. +08:00 or Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+08:00 is year 0 in UTC
        raise ValueError("timestamp is outside years 1–9999 once converted to UTC") from None


def plausible_time(value: datetime) -> datetime:
    """A time a source stamped: UTC, not before 2000, not more than FUTURE_SLACK ahead of now."""
    value = utc(value)
    if value < EARLIEST:
        raise ValueError(f"timestamp {value:%Y-%m-%d} is before {EARLIEST:%Y-%m-%d}")
    if value > datetime.now(UTC) + FUTURE_SLACK:
        raise ValueError(f"timestamp {value:%Y-%m-%d} is more than {FUTURE_SLACK.days} days in the future")
    return value


def numeric_only(annotation: Any) -> bool:
    """Does this field take numbers (int, float, Literal[1]) but never a boolean?"""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        return bool not in args and any(numeric_only(a) for a in args if a is not type(None))
    if get_origin(annotation) is Literal:
        return all(type(a) is int for a in get_args(annotation))
    return annotation in (int, float)
