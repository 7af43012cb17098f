"""Alembic environment: run with a connection handed in by zhengai.warnings.migrate."""

from alembic import context

import zhengai.warnings.notify_schema  # noqa: F401 — registers the notification tables on Base
from zhengai.ingest import windows
from zhengai.warnings.schema import Base

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=[Base.metadata, windows.metadata],
    render_as_batch=connection.dialect.name == "sqlite",
    # one transaction per revision: a revision may leave its transaction for an autocommit block
    # (TimescaleDB's continuous aggregates cannot be created inside one)
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
