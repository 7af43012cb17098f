"""Source health as a metric: the connectors' overdue state → ``school.source_health``.

The connector runner reports each connector's state after every run and when it falls overdue
(``zhengai.connectors.health.health_observation``): an input observation
``school.source_overdue`` (1 = overdue or failing past its window, 0 = healthy), keyed by the
connector and the day, ``source = health.<connector>``. This processor keeps the latest state per
connector (table ``source_health``) and emits, per school and day, ``school.source_health`` = the
number of connectors overdue — one rule, one warning to 信息中心 for every source that stopped,
instead of a stale warning per rule and entity (``zhengai.warnings.source_health`` holds those
back while their source is down).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import Column, Float, String, Table, select
from sqlalchemy.engine import Connection

from zhengai.ingest.aggregate import observation
from zhengai.ingest.processors import ALL, Processor
from zhengai.ingest.records import Level, Observation
from zhengai.ingest.sqltypes import UTCDateTime
from zhengai.ingest.units import metadata

__all__ = [
    "SOURCE_INPUT",
    "SOURCE_METRIC",
    "HEALTH_SOURCE_PREFIX",
    "source_health",
    "SourceHealthProcessor",
    "overdue_sources",
]

SOURCE_INPUT = "school.source_overdue"
SOURCE_METRIC = "school.source_health"
HEALTH_SOURCE_PREFIX = "health."

source_health = Table(
    "source_health",
    metadata,
    Column("connector", String(64), primary_key=True),
    Column("school_id", String(64), nullable=False),
    Column("overdue", Float, nullable=False),  # 1 overdue, 0 healthy
    Column("observed_at", UTCDateTime(), nullable=False),
    Column("source", String(128), nullable=False),
)


def _connector(o: Observation) -> str:
    return o.source.removeprefix(HEALTH_SOURCE_PREFIX)


class SourceHealthProcessor(Processor):
    name = "source_health"
    kinds = ("source_health",)
    table = source_health

    def accepts(self, record: BaseModel) -> bool:
        return (
            isinstance(record, Observation)
            and record.metric == SOURCE_INPUT
            and not isinstance(record.value, bool)
            and record.source.startswith(HEALTH_SOURCE_PREFIX)
        )

    def record(self, conn, records: Sequence[Observation], now):
        latest: dict[str, Observation] = {}
        for o in records:
            c = _connector(o)
            if c not in latest or o.observed_at >= latest[c].observed_at:
                latest[c] = o
        rows = [
            dict(connector=c, school_id=o.entity_id, overdue=float(o.value), observed_at=o.observed_at, source=o.source)
            for c, o in latest.items()
        ]
        self._store_latest(conn, rows, ["connector"], "observed_at")
        return {("source_health", ALL, o.observed_at.date().isoformat()): self.timing.now(now) for o in latest.values()}

    def observations(self, conn, refs, directory, as_of):
        rows = conn.execute(select(source_health)).all()
        by_school: dict[str, list] = defaultdict(list)
        for row in rows:
            by_school[row.school_id].append(row)
        out: list[Observation] = []
        for r in refs:
            for school, states in by_school.items():
                at = max(s.observed_at for s in states)
                out.append(
                    observation(
                        Level.school, school, SOURCE_METRIC, sum(1 for s in states if s.overdue > 0), r.period, at
                    )
                )
        return out


def overdue_sources(conn: Connection) -> dict[str, datetime]:
    """The connectors whose latest report says overdue, with when they said it."""
    return {
        row.connector: row.observed_at for row in conn.execute(select(source_health).where(source_health.c.overdue > 0))
    }
