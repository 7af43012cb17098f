"""TimescaleDB when present: hypertables with retention for the time-series tables.

On plain PostgreSQL and SQLite this revision does nothing (the indexes of 0001 serve), so the same
schema runs everywhere. Where the extension is packaged and preloaded, the append-mostly audit and
history tables become hypertables. A hypertable's unique indexes must contain its time column, so
the surrogate keys of these tables become (id, time); the idempotency keys of observations and
verdicts stay plain unique columns on ordinary tables, which is why those two are NOT converted —
exact replay protection matters more than compression for them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
import logging

from alembic import op
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from zhengai.warnings.capabilities import detect

log = logging.getLogger(__name__)

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RETENTION = "1825 days"  # keep five years: a full 诊改 cycle plus the reporting year

STATEMENTS = [
    # warning_events: (id, at) primary key; the (warning, kind, cause) constraint gains `at`,
    # which is deterministic for a given cause (the verdict's or the action's time).
    "ALTER TABLE notification_outbox DROP CONSTRAINT IF EXISTS notification_outbox_event_id_fkey",
    "ALTER TABLE warning_events DROP CONSTRAINT warning_events_pkey",
    "ALTER TABLE warning_events ADD PRIMARY KEY (id, at)",
    "ALTER TABLE warning_events DROP CONSTRAINT uq_event_cause",
    "ALTER TABLE warning_events ADD CONSTRAINT uq_event_cause UNIQUE (warning_id, kind, cause, at)",
    "SELECT create_hypertable('warning_events', 'at', migrate_data => true)",
    "ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_pkey",
    "ALTER TABLE dead_letters ADD PRIMARY KEY (id, at)",
    "SELECT create_hypertable('dead_letters', 'at', migrate_data => true)",
    f"SELECT add_retention_policy('dead_letters', INTERVAL '{RETENTION}')",
]


def upgrade() -> None:
    conn = op.get_bind()
    caps = detect(conn)
    if not (caps.timescale_available or caps.timescale_installed):
        return
    if not caps.timescale_installed:
        savepoint = conn.begin_nested()
        try:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
            savepoint.commit()
        except DBAPIError as exc:  # packaged but not preloaded, or no privilege: plain PostgreSQL
            savepoint.rollback()
            log.warning("timescaledb is packaged but cannot be created here (%s); using plain tables", exc.orig)
            return
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    pass  # hypertables are not converted back; restore from a dump instead
