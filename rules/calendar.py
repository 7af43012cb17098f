"""Period arithmetic for the rule kinds: the period before, the same period last year, a period's
days, and the elapsed share of a term or year (过程值 prorating). Pure; dates are China dates.

Terms follow the academic year as ``zhengai.ingest.plausibility.period_start`` does: term 1 runs
from 1 September to 31 January, term 2 from 1 February to 31 August.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

from zhengai.ingest.records import period_kind

__all__ = ["previous_period", "last_year_period", "period_days", "span_of", "elapsed_share", "china_date"]

_CHINA = timezone(timedelta(hours=8))


def china_date(at: datetime) -> date:
    return at.astimezone(_CHINA).date()


def _term(first_year: int, n: int) -> str:
    return f"{first_year}-{first_year + 1}-{n}"


@lru_cache(maxsize=8192)
def previous_period(period: str) -> str:
    """The period just before ``period`` (same kind). ValueError before year 2000."""
    kind = period_kind(period)
    if kind == "term":
        y, n = int(period[:4]), int(period[-1])
        out = _term(y, 1) if n == 2 else _term(y - 1, 2)
    elif kind == "year":
        out = str(int(period) - 1)
    elif kind == "month":
        y, m = int(period[:4]), int(period[5:7])
        out = f"{y - 1}-12" if m == 1 else f"{y}-{m - 1:02d}"
    elif kind == "week":
        monday = date.fromisocalendar(int(period[:4]), int(period[6:8]), 1) - timedelta(weeks=1)
        iso = monday.isocalendar()
        out = f"{iso[0]}-W{iso[1]:02d}"
    else:
        out = (date.fromisoformat(period) - timedelta(days=1)).isoformat()
    period_kind(out)  # inside the accepted years, or ValueError
    return out


@lru_cache(maxsize=8192)
def last_year_period(period: str) -> str:
    """The same period one year earlier (week 53 → week 52, 29 February → 28 February)."""
    kind = period_kind(period)
    y = int(period[:4])
    if kind == "term":
        out = _term(y - 1, int(period[-1]))
    elif kind == "year":
        out = str(y - 1)
    elif kind == "month":
        out = f"{y - 1}{period[4:]}"
    elif kind == "week":
        week = int(period[6:8])
        last = date(y - 1, 12, 28).isocalendar()[1]
        out = f"{y - 1}-W{min(week, last):02d}"
    else:
        d = date.fromisoformat(period)
        out = (d.replace(year=y - 1) if not (d.month == 2 and d.day == 29) else date(y - 1, 2, 28)).isoformat()
    period_kind(out)
    return out


@lru_cache(maxsize=8192)
def period_days(period: str) -> tuple[date, date]:
    """First and last day of a period (inclusive)."""
    kind = period_kind(period)
    y = int(period[:4])
    if kind == "term":
        return (date(y, 9, 1), date(y + 1, 1, 31)) if period[-1] == "1" else (date(y + 1, 2, 1), date(y + 1, 8, 31))
    if kind == "year":
        return date(y, 1, 1), date(y, 12, 31)
    if kind == "month":
        m = int(period[5:7])
        nxt = date(y + 1, 1, 1) if m == 12 else date(y, m + 1, 1)
        return date(y, m, 1), nxt - timedelta(days=1)
    if kind == "week":
        monday = date.fromisocalendar(y, int(period[6:8]), 1)
        return monday, monday + timedelta(days=6)
    d = date.fromisoformat(period)
    return d, d


def span_of(day: date, span: str) -> str:
    """The term or calendar year that contains ``day``."""
    if span == "year":
        return str(day.year)
    if day.month >= 9:
        return _term(day.year, 1)
    if day.month == 1:
        return _term(day.year - 1, 1)
    return _term(day.year - 1, 2)


def _counted(first: date, last: date, skip: frozenset[int]) -> int:
    if last < first:
        return 0
    if not skip:
        return (last - first).days + 1
    n, d = 0, first
    while d <= last:
        n += d.month not in skip
        d += timedelta(days=1)
    return n


def elapsed_share(span: str, as_of: date, skip_months: Iterable[int] = ()) -> float:
    """The share (0–1] of the span's counted days up to and including ``as_of``: the first day
    counts as one day done, the last day as the whole span. Days in ``skip_months`` count
    neither as elapsed nor in the whole (a day inside a skipped month has the share of the day
    before it)."""
    skip = frozenset(skip_months)
    first, last = period_days(span)
    if as_of < first:
        return 0.0
    as_of = min(as_of, last)
    total = _counted(first, last, skip)
    return _counted(first, as_of, skip) / total if total else 1.0
