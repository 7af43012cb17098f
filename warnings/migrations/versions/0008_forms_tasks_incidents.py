"""填报 (forms), department tasks and the quality-incident register

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "form_issues",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("form_id", sa.String(64), nullable=False),
        sa.Column("office", sa.String(64), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("issued_at", TS, nullable=False),
    )
    op.create_index("ix_form_issues_form_office_period", "form_issues", ["form_id", "office", "period"], unique=True)
    op.create_table(
        "form_submissions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("form_id", sa.String(64), nullable=False),
        sa.Column("office", sa.String(64), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=True),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("submitted_by", sa.String(64), nullable=False),
        sa.Column("submitted_at", TS, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
    )
    op.create_index("ix_form_submissions_form_id", "form_submissions", ["form_id"])
    op.create_table(
        "form_values",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("submission_id", sa.Integer(), sa.ForeignKey("form_submissions.id"), nullable=False),
        sa.Column("metric", sa.String(80), nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("previous", sa.Float(), nullable=True),
        sa.Column("entered_by", sa.String(64), nullable=False),
        sa.Column("entered_at", TS, nullable=False),
        sa.Column("source_file", sa.String(255), nullable=True),
        sa.Column("sheet", sa.String(64), nullable=True),
        sa.Column("row", sa.Integer(), nullable=True),
    )
    op.create_index("ix_form_values_submission_id", "form_values", ["submission_id"])
    op.create_index("ix_form_values_metric_entity_period", "form_values", ["metric", "entity_id", "period"])
    op.create_table(
        "dept_tasks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("attribute", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("due", sa.Date(), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("months", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("source_file", sa.String(255), nullable=True),
    )
    op.create_table(
        "quality_incidents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("course_id", sa.String(64), nullable=True),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("grade", sa.String(8), nullable=False),
        sa.Column("veto", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("handling", sa.Text(), nullable=False),
        sa.Column("registered_by", sa.String(64), nullable=False),
        sa.Column("registered_at", TS, nullable=False),
        sa.Column("source_file", sa.String(255), nullable=True),
        sa.Column("notified_at", TS, nullable=True),
    )


def downgrade() -> None:
    for table in ("quality_incidents", "dept_tasks", "form_values", "form_submissions", "form_issues"):
        op.drop_table(table)
