"""The history the rule kinds read: one value per (metric, entity, period) of the watched metrics

Revision ID: 0011
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # KindJudge also creates it on a bare engine (checkfirst): create only when missing.
    if "metric_history" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        "metric_history",
        sa.Column("metric", sa.String(length=80), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("metric", "entity_id", "period"),
    )
    op.create_index("ix_metric_history_entity", "metric_history", ["entity_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_metric_history_entity", table_name="metric_history")
    op.drop_table("metric_history")
