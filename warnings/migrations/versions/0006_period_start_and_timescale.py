"""Deterministic time columns on the idempotency keys; TimescaleDB where it is usable

Observations and verdicts gain ``period_start`` (the first instant of their period, China time:
``zhengai.ingest.records.period_start``), and their idempotency keys become (key, period_start) on
every backend, so the same replay protection holds on SQLite, plain PostgreSQL and TimescaleDB —
where a hypertable's unique indexes must contain its time column. On PostgreSQL the view
``reporting.indicator_values`` joins the dashboards' views. Where TimescaleDB is usable
(``capabilities.probe_timescale``, run by ``migrate.upgrade`` on a connection of its own before
this revision), ``warnings.timescale.switch_on`` converts the time series to hypertables and
creates the continuous aggregates in an autocommit block; elsewhere the plain tables stay.
Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""
import logging

import sqlalchemy as sa
from alembic import context, op

from zhengai.ingest.records import period_start
from zhengai.ingest.sqltypes import UTCDateTime
from zhengai.warnings import timescale
from zhengai.warnings.capabilities import probe_timescale

log = logging.getLogger(__name__)

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

KEYED = (("observations", "uq_observation_key"), ("verdicts", "uq_verdict_key"))
# PostgreSQL's name for the unnamed UNIQUE (key) of 0001; SQLite gets it through this convention.
NAMING = {"uq": "%(table_name)s_%(column_0_name)s_key"}


def _start(period: str):
    try:
        return period_start(period)
    except ValueError:  # a period stored before periods were validated: a fixed, deterministic start
        return period_start("1970")


def upgrade() -> None:
    bind = op.get_bind()
    for table, constraint in KEYED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("period_start", sa.DateTime(timezone=True), nullable=True))
        t = sa.table(table, sa.column("period", sa.String), sa.column("period_start", UTCDateTime()))
        for period in bind.execute(sa.select(t.c.period).distinct()).scalars().all():
            bind.execute(t.update().where(t.c.period == period).values(period_start=_start(period)))
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            batch.alter_column("period_start", existing_type=sa.DateTime(timezone=True), nullable=False)
            batch.drop_constraint(f"{table}_key_key", type_="unique")
            batch.create_unique_constraint(constraint, ["key", "period_start"])
    if bind.dialect.name != "postgresql":
        return
    timescale.create_views(bind, timescale.PLAIN_VIEWS)
    probe = context.config.attributes.get("timescale") or probe_timescale(bind.engine)
    if probe.usable:
        timescale.switch_on(op.get_bind, op.get_context().autocommit_block)


def downgrade() -> None:
    pass  # hypertables are not converted back, nor keys narrowed; restore from a dump instead
