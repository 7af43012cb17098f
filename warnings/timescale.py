"""TimescaleDB for the store's time series, switched on where the extension is usable.

Where ``probe_timescale`` (``capabilities``) says the extension is preloaded and created, the time
series become hypertables partitioned by a deterministic time column — observations and verdicts by
their period's start (``period_start``, part of their idempotency key), warning events and dead
letters by ``at`` — compressed after an age, kept for a retention period, and the dashboards' views
read continuous aggregates. On plain PostgreSQL the same views exist with the same columns over the
plain tables (``PLAIN_VIEWS``), so Grafana and reports do not care which is underneath.

Every step checks what is already there, so the switch can run again: from migration 0006, and from
``migrate.upgrade`` on a database migrated before the extension became usable (fix the server, run
``zhengai warnings migrate`` again). Continuous aggregates cannot be created inside a transaction
block, so they are created in an autocommit block; policies are re-applied on every migrate, so a
changed setting takes effect there.

Settings (environment, prefix ``ZHENGAI_TSDB_``; durations like ``90d``):
``COMPRESS_AFTER`` (90d), ``RETENTION`` (1825d: observations, verdicts, dead letters),
``EVENT_RETENTION`` (unset: the warnings' audit trail is kept), ``REFRESH_EVERY`` (1h).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.engine import Connection

from zhengai.ingest.durations import parse_duration

__all__ = [
    "TimescaleSettings",
    "HYPERTABLES",
    "PLAIN_VIEWS",
    "READONLY_ROLE",
    "switch_on",
    "switched_on",
    "apply_policies",
    "create_views",
]

READONLY_ROLE = "zhengai_readonly"


class TimescaleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZHENGAI_TSDB_", extra="ignore", frozen=True)

    compress_after: timedelta = timedelta(days=90)
    retention: timedelta | None = timedelta(days=1825)  # five years: a full 诊改 cycle plus the reporting year
    event_retention: timedelta | None = None
    refresh_every: timedelta = timedelta(hours=1)

    @field_validator("compress_after", "retention", "event_retention", "refresh_every", mode="before")
    @classmethod
    def _duration(cls, value):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
            return None
        return parse_duration(value)


def _interval(td: timedelta) -> str:
    seconds = int(td.total_seconds())
    return f"INTERVAL '{seconds // 86400} days'" if seconds % 86400 == 0 else f"INTERVAL '{seconds} seconds'"


@dataclass(frozen=True)
class Hypertable:
    table: str
    time_column: str
    chunk: str
    segment_by: str
    order_by: str
    prepare: tuple[str, ...]  # unique keys gain the time column (a hypertable's unique indexes must hold it)
    retention: str  # which setting: "retention" or "event_retention"


HYPERTABLES = (
    Hypertable(
        "observations",
        "period_start",
        "90 days",
        "metric",
        "period_start DESC, entity_id",
        (
            "ALTER TABLE observations DROP CONSTRAINT observations_pkey",
            "ALTER TABLE observations ADD PRIMARY KEY (id, period_start)",
        ),
        "retention",
    ),
    Hypertable(
        "verdicts",
        "period_start",
        "90 days",
        "rule_id",
        "period_start DESC, entity_id",
        (
            "ALTER TABLE verdicts DROP CONSTRAINT verdicts_pkey",
            "ALTER TABLE verdicts ADD PRIMARY KEY (id, period_start)",
        ),
        "retention",
    ),
    # (warning, kind, cause) gains `at`, which is deterministic for a cause (the verdict's or the
    # action's time); the outbox keeps event ids without a foreign key (nothing may reference a
    # hypertable's partial key).
    Hypertable(
        "warning_events",
        "at",
        "30 days",
        "kind",
        "at DESC, warning_id",
        (
            "ALTER TABLE notification_outbox DROP CONSTRAINT IF EXISTS notification_outbox_event_id_fkey",
            "ALTER TABLE warning_events DROP CONSTRAINT warning_events_pkey",
            "ALTER TABLE warning_events ADD PRIMARY KEY (id, at)",
            "ALTER TABLE warning_events DROP CONSTRAINT uq_event_cause",
            "ALTER TABLE warning_events ADD CONSTRAINT uq_event_cause UNIQUE (warning_id, kind, cause, at)",
        ),
        "event_retention",
    ),
    Hypertable(
        "dead_letters",
        "at",
        "7 days",
        "source",
        "at DESC",
        (
            "ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_pkey",
            "ALTER TABLE dead_letters ADD PRIMARY KEY (id, at)",
        ),
        "retention",
    ),
)

# --- the dashboards' views: same names and columns on both backends ------------------------------

_DEPT = "LEFT JOIN entities d ON d.id = {src}.department_id"

PLAIN_VIEWS = {
    # indicator values per period, level, metric and department (画像, reports, dashboards)
    "indicator_values": """
CREATE VIEW reporting.indicator_values AS
SELECT o.period, o.period_start, o.level, o.metric, e.department_id, COALESCE(d.name, '全校') AS department_name,
       count(*) AS observations, avg(o.value) AS avg_value, min(o.value) AS min_value, max(o.value) AS max_value
FROM observations o
LEFT JOIN entities e ON e.id = o.entity_id
LEFT JOIN entities d ON d.id = e.department_id
GROUP BY o.period, o.period_start, o.level, o.metric, e.department_id, d.name
""",
}

_AGGREGATES = {
    # new warnings per China-time day by level x band x department (the band at opening)
    "daily_counts_cagg": """
CREATE MATERIALIZED VIEW IF NOT EXISTS reporting.daily_counts_cagg
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', ev.at, 'Asia/Shanghai') AS bucket, w.level, ev.to_band AS band,
       e.department_id, count(*) AS opened
FROM warning_events ev
JOIN warnings w ON w.id = ev.warning_id
LEFT JOIN entities e ON e.id = w.entity_id
WHERE ev.kind = 'opened'
GROUP BY 1, 2, 3, 4
""",
    "indicator_values_cagg": """
CREATE MATERIALIZED VIEW IF NOT EXISTS reporting.indicator_values_cagg
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', o.period_start, 'Asia/Shanghai') AS bucket, o.period, o.level, o.metric,
       e.department_id, count(*) AS observations, avg(o.value) AS avg_value, min(o.value) AS min_value,
       max(o.value) AS max_value
FROM observations o
LEFT JOIN entities e ON e.id = o.entity_id
GROUP BY 1, 2, 3, 4, 5
""",
}

# The views over the aggregates: department names are joined at read time (a renamed 二级学院 shows
# at once); the columns and their order are those of the plain views.
TIMESCALE_VIEWS = {
    "daily_counts": """
CREATE VIEW reporting.daily_counts AS
SELECT (c.bucket AT TIME ZONE 'Asia/Shanghai')::date AS day, c.level, c.band, c.department_id,
       COALESCE(d.name, '全校') AS department_name, c.opened
FROM reporting.daily_counts_cagg c
LEFT JOIN entities d ON d.id = c.department_id
""",
    "indicator_values": """
CREATE VIEW reporting.indicator_values AS
SELECT c.period, c.bucket AS period_start, c.level, c.metric, c.department_id,
       COALESCE(d.name, '全校') AS department_name, c.observations, c.avg_value, c.min_value, c.max_value
FROM reporting.indicator_values_cagg c
LEFT JOIN entities d ON d.id = c.department_id
""",
}


def _is_hypertable(conn: Connection, table: str) -> bool:
    return bool(
        conn.execute(
            text(
                "SELECT count(*) FROM timescaledb_information.hypertables "
                "WHERE hypertable_schema = 'public' AND hypertable_name = :t"
            ),
            {"t": table},
        ).scalar()
    )


def _has_aggregate(conn: Connection, name: str) -> bool:
    return bool(
        conn.execute(
            text(
                "SELECT count(*) FROM timescaledb_information.continuous_aggregates "
                "WHERE view_schema = 'reporting' AND view_name = :n"
            ),
            {"n": name},
        ).scalar()
    )


def switched_on(conn: Connection) -> bool:
    """Is the switch complete here (every hypertable and aggregate in place)?"""
    if not conn.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")).scalar():
        return False
    return all(_is_hypertable(conn, h.table) for h in HYPERTABLES) and all(_has_aggregate(conn, n) for n in _AGGREGATES)


def create_views(conn: Connection, views: dict[str, str]) -> None:
    """(Re)create reporting views and let the read-only role read them."""
    for name, sql in views.items():
        conn.execute(text(f"DROP VIEW IF EXISTS reporting.{name} CASCADE"))  # its scoped copy goes too …
        conn.execute(text(sql))
    conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO {READONLY_ROLE}"))
    if conn.execute(text("SELECT to_regclass('public.access_scopes')")).scalar() is not None:
        from zhengai.warnings.reporting_views import refresh_scoped_views

        refresh_scoped_views(conn)  # … and comes back (revision 0013 onwards)


def _policy(conn: Connection, proc: str, table: str, key: str, schema: str = "public") -> str | None:
    """The interval a policy of kind ``proc`` on a table (or aggregate) is configured with (None: no such policy)."""
    value = f"(config->>'{key}')::interval" if key != "schedule_interval" else "schedule_interval"
    return conn.execute(
        text(
            f"SELECT {value}::text FROM timescaledb_information.jobs "
            "WHERE proc_name = :proc AND hypertable_schema = :s AND hypertable_name = :t"
        ),
        {"proc": proc, "s": schema, "t": table},
    ).scalar()


def _same(conn: Connection, current: str | None, wanted: timedelta | None) -> bool:
    if current is None or wanted is None:
        return current is None and wanted is None
    return bool(conn.execute(text(f"SELECT CAST(:c AS interval) = {_interval(wanted)}"), {"c": current}).scalar())


def apply_policies(conn: Connection, settings: TimescaleSettings | None = None) -> None:
    """Compression, retention and refresh policies as configured; a policy whose setting changed is
    replaced, an unchanged one is left alone (workers migrate on every start)."""
    settings = settings or TimescaleSettings()
    for h in HYPERTABLES:
        if not _same(conn, _policy(conn, "policy_compression", h.table, "compress_after"), settings.compress_after):
            conn.execute(text(f"SELECT remove_compression_policy('{h.table}', if_exists => true)"))
            conn.execute(
                text(
                    f"SELECT add_compression_policy('{h.table}',"
                    f" compress_after => {_interval(settings.compress_after)})"
                )
            )
        keep = getattr(settings, h.retention)
        if not _same(conn, _policy(conn, "policy_retention", h.table, "drop_after"), keep):
            conn.execute(text(f"SELECT remove_retention_policy('{h.table}', if_exists => true)"))
            if keep is not None:
                conn.execute(text(f"SELECT add_retention_policy('{h.table}', drop_after => {_interval(keep)})"))
    for name in _AGGREGATES:
        every = _policy(conn, "policy_refresh_continuous_aggregate", name, "schedule_interval", "reporting")
        if _same(conn, every, settings.refresh_every):
            continue
        # start_offset NULL: every invalidated range is refreshed, also late history (backfills and
        # corrections of old periods); end_offset leaves the last hour to real-time aggregation.
        conn.execute(text(f"SELECT remove_continuous_aggregate_policy('reporting.{name}', if_exists => true)"))
        conn.execute(
            text(
                f"SELECT add_continuous_aggregate_policy('reporting.{name}', start_offset => NULL, "
                f"end_offset => INTERVAL '1 hour', schedule_interval => {_interval(settings.refresh_every)})"
            )
        )


def switch_on(
    bind: Callable[[], Connection],
    autocommit_block: Callable[[], AbstractContextManager],
    settings: TimescaleSettings | None = None,
) -> None:
    """Convert the time series to hypertables, create the continuous aggregates (outside a
    transaction block), point the dashboards' views at them and apply the policies. ``bind()`` is
    the current connection (it changes inside ``autocommit_block()``)."""
    conn = bind()
    for h in HYPERTABLES:
        if _is_hypertable(conn, h.table):
            continue
        for statement in h.prepare:
            conn.execute(text(statement))
        conn.execute(
            text(
                f"SELECT create_hypertable('{h.table}', '{h.time_column}', chunk_time_interval => "
                f"INTERVAL '{h.chunk}', migrate_data => true)"
            )
        )
        conn.execute(
            text(
                f"ALTER TABLE {h.table} SET (timescaledb.compress, timescaledb.compress_segmentby = "
                f"'{h.segment_by}', timescaledb.compress_orderby = '{h.order_by}')"
            )
        )
    with autocommit_block():
        conn = bind()
        for name, sql in _AGGREGATES.items():
            if not _has_aggregate(conn, name):
                conn.execute(text(sql))
        create_views(conn, TIMESCALE_VIEWS)
        apply_policies(conn, settings)
