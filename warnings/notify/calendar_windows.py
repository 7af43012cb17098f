"""Academic-calendar mute windows: holidays, exam weeks — a file the quality office edits.

A notification that falls inside a window is *delayed to the end of the window*, never dropped.
Windows may be narrowed to some levels, bands or channels (an exam week may hold back yellow
student warnings while red ones still go out). Windows that overlap or touch are followed to the
end of the last one. Dates are whole days in the calendar's time zone, ``end`` inclusive.

The file (``deploy/notify/calendar.yaml``)::

    timezone: Asia/Shanghai
    windows:
      - name: 国庆节假期
        kind: holiday
        start: 2026-10-01
        end: 2026-10-07
      - name: 期末考试周
        kind: exam
        start: 2027-01-11
        end: 2027-01-17
        levels: [student, course]
        bands: [yellow]
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from zhengai.ingest.records import Band, Level

__all__ = ["MuteWindow", "AcademicCalendar", "TimeZoneName"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class MuteWindow(_Strict):
    name: str
    kind: Literal["holiday", "exam", "vacation", "other"] = "holiday"
    start: datetime | date
    end: datetime | date
    levels: list[Level] | None = None  # None: every level
    bands: list[Band] | None = None  # None: every band (recoveries included)
    channels: list[str] | None = None  # None: every channel

    @model_validator(mode="after")
    def _order(self) -> MuteWindow:
        if _as_dt(self.end, ZoneInfo("UTC"), end=True) <= _as_dt(self.start, ZoneInfo("UTC"), end=False):
            raise ValueError(f"window {self.name!r} ends before it starts")
        return self

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """[start, end) as aware datetimes."""
        return _as_dt(self.start, tz, end=False), _as_dt(self.end, tz, end=True)

    def applies(self, *, level: str | None, band: str | None, channel: str | None) -> bool:
        if self.levels is not None and level not in {lv.value for lv in self.levels}:
            return False
        if self.bands is not None and band not in {b.value for b in self.bands}:
            return False
        return self.channels is None or channel in self.channels


def _as_dt(value: date | datetime, tz: ZoneInfo, *, end: bool) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    day = value + timedelta(days=1) if end else value  # an end date is inclusive: the window runs to its midnight
    return datetime.combine(day, time(0), tzinfo=tz)


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
    return value


TimeZoneName = Annotated[str, AfterValidator(_zone)]


class AcademicCalendar(_Strict):
    timezone: TimeZoneName = "Asia/Shanghai"
    windows: list[MuteWindow] = []

    def mute_until(
        self, now: datetime, *, level: str | None, band: str | None, channel: str | None
    ) -> tuple[datetime, MuteWindow] | None:
        """If a window covers ``now`` for this notification: the time it may go out (the end of
        the last window in a chain of touching ones) and the window that holds it."""
        tz = ZoneInfo(self.timezone)
        spans = [(w, *w.bounds(tz)) for w in self.windows if w.applies(level=level, band=band, channel=channel)]
        until: datetime | None = None
        holding: MuteWindow | None = None
        probe = now
        while True:
            covering = [(end, w) for w, start, end in spans if start <= probe < end]
            if not covering:
                break
            end, window = max(covering, key=lambda c: c[0])
            holding = holding or window
            until = probe = end
        return (until, holding) if until is not None and holding is not None else None
