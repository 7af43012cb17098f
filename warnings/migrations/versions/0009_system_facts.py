"""Facts of the other campus systems' processors: each student's last 一卡通 day, 学籍 dropouts, connector health

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The worker also creates these tables on start (checkfirst): create only what is missing.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "card_last_active" not in existing:
        op.create_table(
            "card_last_active",
            sa.Column("student_id", sa.String(length=64), nullable=False),
            sa.Column("last_day", sa.String(length=10), nullable=False),
            sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("source", sa.String(length=128), nullable=False),
            sa.PrimaryKeyConstraint("student_id"),
        )
    if "dropout_facts" not in existing:
        op.create_table(
            "dropout_facts",
            sa.Column("key", sa.String(length=256), nullable=False),
            sa.Column("student_id", sa.String(length=64), nullable=False),
            sa.Column("term", sa.String(length=16), nullable=False),
            sa.Column("value", sa.Float(), nullable=False),
            sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("source", sa.String(length=128), nullable=False),
            sa.PrimaryKeyConstraint("key"),
        )
        with op.batch_alter_table("dropout_facts", schema=None) as batch_op:
            batch_op.create_index("ix_dropout_facts_term", ["term"], unique=False)
    if "source_health" not in existing:
        op.create_table(
            "source_health",
            sa.Column("connector", sa.String(length=64), nullable=False),
            sa.Column("school_id", sa.String(length=64), nullable=False),
            sa.Column("overdue", sa.Float(), nullable=False),
            sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("source", sa.String(length=128), nullable=False),
            sa.PrimaryKeyConstraint("connector"),
        )


def downgrade() -> None:
    op.drop_table("source_health")
    op.drop_table("dropout_facts")
    op.drop_table("card_last_active")
