"""When a connector runs: every fixed interval, or on a cron expression (croniter).

A :class:`Schedule` is pure: ``next_after(t)`` is a function of ``t`` only, so the runner and
the tests pass the clock in. Cron expressions are read in the campus's time zone (default
Asia/Shanghai): ``0 2 * * *`` is 02:00 Beijing time whatever the host's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from croniter import croniter

from .values import CHINA_TZ

__all__ = ["Schedule", "format_duration"]


@dataclass(frozen=True)
class Schedule:
    """Exactly one of ``every`` (a positive interval) or ``cron`` (five-field expression)."""

    every: timedelta | None = None
    cron: str | None = None
    tz: tzinfo = CHINA_TZ

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise ValueError("a schedule needs exactly one of every or cron")
        if self.every is not None and self.every <= timedelta(0):
            raise ValueError("every must be a positive interval")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(
                f"{self.cron!r} is not a valid cron expression (five fields, e.g. '*/15 * * * *' or '0 2 * * *')"
            )

    def next_after(self, t: datetime) -> datetime:
        """The next run strictly after ``t`` (an aware datetime), in ``t``'s time zone."""
        if t.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        if self.every is not None:
            return t + self.every
        local = t.astimezone(self.tz)
        return croniter(self.cron, local).get_next(datetime).astimezone(t.tzinfo)

    def period(self, around: datetime) -> timedelta:
        """The interval, or for cron the gap between the two runs after ``around`` (a daily
        cron gives one day): the default expected window of health is twice this."""
        if self.every is not None:
            return self.every
        first = self.next_after(around)
        return self.next_after(first) - first

    def __str__(self) -> str:
        if self.every is not None:
            return f"every {format_duration(self.every)}"
        return f"cron '{self.cron}'"


def format_duration(d: timedelta) -> str:
    """``15m``, ``1h30m``, ``2d``, ``0.5s``: the form the configuration files use."""
    seconds = d.total_seconds()
    if seconds < 60 and not seconds.is_integer():
        return f"{seconds:g}s"
    out, rest = [], int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"
