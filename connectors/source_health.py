"""A connector's health on the wire: one input observation per report (``school.source_overdue``).

The runner sends it after every run and when a connector enters the overdue state; the stream
processors turn the latest state of every connector into ``school.source_health`` (the number of
connectors overdue), which one rule turns into one warning to 信息中心
(``zhengai.ingest.source_health``). The key is the connector and the day, so the day's latest
report wins and a restart re-sends harmlessly.
"""

from __future__ import annotations

from datetime import datetime

from zhengai.ingest.records import Level, Observation
from zhengai.ingest.source_health import HEALTH_SOURCE_PREFIX, SOURCE_INPUT

__all__ = ["health_observation"]

CHINA_DAY_OFFSET_H = 8  # the day is the campus's (UTC+8) day


def health_observation(connector: str, overdue: bool, at: datetime, school_id: str) -> Observation:
    from datetime import timedelta, timezone

    day = at.astimezone(timezone(timedelta(hours=CHINA_DAY_OFFSET_H))).date().isoformat()
    return Observation(
        level=Level.school,
        entity_id=school_id,
        metric=SOURCE_INPUT,
        value=1 if overdue else 0,
        period=day,
        observed_at=at,
        source=f"{HEALTH_SOURCE_PREFIX}{connector}",
        key=f"health|{connector}|{day}",
    )
