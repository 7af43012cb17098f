"""画像 and the loop's dashboards: reporting views ``indicator_portrait``, ``improvement_loop`` and
``data_freshness``; role scopes (``access_scopes``) and the ``scoped`` schema of per-login filtered
views that logins in role ``zhengai_scoped`` read (``zhengai.warnings.reporting_views``).

Revision ID: 0013
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "access_scopes" not in set(sa.inspect(op.get_bind()).get_table_names()):
        op.create_table(
            "access_scopes",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("principal", sa.String(length=64), nullable=False),
            sa.Column("role", sa.String(length=24), nullable=False),
            sa.Column("unit_id", sa.String(length=64), nullable=True),
            sa.Column("department_id", sa.String(length=64), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_access_scopes_principal", "access_scopes", ["principal"], unique=False)
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    from zhengai.warnings.reporting_views import create_views

    create_views(conn)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute("DROP SCHEMA IF EXISTS scoped CASCADE")
        for name in ("indicator_portrait", "improvement_loop", "data_freshness"):
            op.execute(f"DROP VIEW IF EXISTS reporting.{name}")
    op.drop_index("ix_access_scopes_principal", table_name="access_scopes")
    op.drop_table("access_scopes")
