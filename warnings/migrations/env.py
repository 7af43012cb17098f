"""Alembic environment: run with a connection handed in by zhengai.warnings.migrate."""

from alembic import context

import zhengai.warnings.diagnosis_schema  # noqa: F401 — registers the diagnosis tables on Base
import zhengai.warnings.forms_schema  # noqa: F401 — registers the forms, tasks and incident tables on Base
import zhengai.warnings.improvement_schema  # noqa: F401 — registers the improvement tables on Base
import zhengai.warnings.notify_schema  # noqa: F401 — registers the notification tables on Base
import zhengai.warnings.scopes  # noqa: F401 — registers access_scopes on Base
from zhengai.ingest import (
    aggregator,  # noqa: F401 — registers the stream tables on units.metadata
    units,
)
from zhengai.warnings.schema import Base

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=[Base.metadata, units.metadata],
    render_as_batch=connection.dialect.name == "sqlite",
    # one transaction per revision: a revision may leave its transaction for an autocommit block
    # (TimescaleDB's continuous aggregates cannot be created inside one)
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
