"""Stream windows (ingest) and notification state (warnings/notify) under versioned migrations

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The stream worker and the notifier also create these tables on start (checkfirst), so a
    # database they ran against before this revision already has some: create only what is missing.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if 'notify_attempts' not in existing:
        op.create_table('notify_attempts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('bucket', sa.String(length=96), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ok', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('notify_attempts', schema=None) as batch_op:
            batch_op.create_index('ix_notify_attempts_bucket_at', ['bucket', 'at'], unique=False)
    if 'notify_buckets' not in existing:
        op.create_table('notify_buckets',
        sa.Column('bucket', sa.String(length=96), nullable=False),
        sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('bucket')
        )
    if 'notify_groups' not in existing:
        op.create_table('notify_groups',
        sa.Column('key', sa.String(length=160), nullable=False),
        sa.Column('last_flush_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key')
        )
    if 'notify_log' not in existing:
        op.create_table('notify_log',
        sa.Column('warning_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=32), nullable=False),
        sa.Column('recipient_id', sa.String(length=64), nullable=False),
        sa.Column('first_sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_kind', sa.String(length=24), nullable=False),
        sa.Column('sent_count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('warning_id', 'channel', 'recipient_id')
        )
    if 'notify_messages' not in existing:
        op.create_table('notify_messages',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('channel', sa.String(length=32), nullable=False),
        sa.Column('recipient_id', sa.String(length=64), nullable=True),
        sa.Column('group_key', sa.String(length=160), nullable=False),
        sa.Column('kind', sa.String(length=12), nullable=False),
        sa.Column('notices', sa.Integer(), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('notify_messages', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_notify_messages_sent_at'), ['sent_at'], unique=False)
    if 'notify_silences' not in existing:
        op.create_table('notify_silences',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('rule', sa.String(length=80), nullable=False),
        sa.Column('entity_id', sa.String(length=64), nullable=True),
        sa.Column('level', sa.String(length=16), nullable=True),
        sa.Column('recipient_id', sa.String(length=64), nullable=True),
        sa.Column('channel', sa.String(length=32), nullable=True),
        sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('comment', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('notify_silences', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_notify_silences_ends_at'), ['ends_at'], unique=False)
    if 'notify_deliveries' not in existing:
        op.create_table('notify_deliveries',
        sa.Column('outbox_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=32), nullable=False),
        sa.Column('recipient_id', sa.String(length=64), nullable=True),
        sa.Column('warning_id', sa.Integer(), nullable=True),
        sa.Column('group_key', sa.String(length=160), nullable=False),
        sa.Column('digest', sa.Boolean(), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('inhibited_by', sa.Integer(), nullable=True),
        sa.Column('admitted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['message_id'], ['notify_messages.id'], ),
        sa.ForeignKeyConstraint(['outbox_id'], ['notification_outbox.id'], ),
        sa.PrimaryKeyConstraint('outbox_id')
        )
        with op.batch_alter_table('notify_deliveries', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_notify_deliveries_state'), ['state'], unique=False)
            batch_op.create_index(batch_op.f('ix_notify_deliveries_warning_id'), ['warning_id'], unique=False)
    if 'attendance_tallies' not in existing:
        op.create_table('attendance_tallies',
        sa.Column('key', sa.String(length=256), nullable=False),
        sa.Column('student_id', sa.String(length=64), nullable=False),
        sa.Column('course_id', sa.String(length=64), nullable=False),
        sa.Column('week', sa.String(length=8), nullable=False),
        sa.Column('term', sa.String(length=16), nullable=False),
        sa.Column('scheduled', sa.Integer(), nullable=False),
        sa.Column('attended', sa.Integer(), nullable=False),
        sa.Column('excused', sa.Integer(), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint('key')
        )
        with op.batch_alter_table('attendance_tallies', schema=None) as batch_op:
            batch_op.create_index('ix_attendance_tallies_course_week', ['course_id', 'week'], unique=False)
            batch_op.create_index('ix_attendance_tallies_student_term', ['student_id', 'term'], unique=False)
            batch_op.create_index('ix_attendance_tallies_week_student', ['week', 'student_id'], unique=False)
    if 'attendance_windows' not in existing:
        op.create_table('attendance_windows',
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('unit_id', sa.String(length=64), nullable=False),
        sa.Column('week', sa.String(length=8), nullable=False),
        sa.Column('term', sa.String(length=16), nullable=False),
        sa.Column('week_end', sa.DateTime(timezone=True), nullable=False),
        sa.Column('dirty', sa.Boolean(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('emitted_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('kind', 'unit_id', 'week')
        )
        with op.batch_alter_table('attendance_windows', schema=None) as batch_op:
            batch_op.create_index('ix_attendance_windows_due', ['dirty', 'week_end'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('attendance_windows', schema=None) as batch_op:
        batch_op.drop_index('ix_attendance_windows_due')

    op.drop_table('attendance_windows')
    with op.batch_alter_table('attendance_tallies', schema=None) as batch_op:
        batch_op.drop_index('ix_attendance_tallies_week_student')
        batch_op.drop_index('ix_attendance_tallies_student_term')
        batch_op.drop_index('ix_attendance_tallies_course_week')

    op.drop_table('attendance_tallies')
    with op.batch_alter_table('notify_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notify_deliveries_warning_id'))
        batch_op.drop_index(batch_op.f('ix_notify_deliveries_state'))

    op.drop_table('notify_deliveries')
    with op.batch_alter_table('notify_silences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notify_silences_ends_at'))

    op.drop_table('notify_silences')
    with op.batch_alter_table('notify_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notify_messages_sent_at'))

    op.drop_table('notify_messages')
    op.drop_table('notify_log')
    op.drop_table('notify_groups')
    op.drop_table('notify_buckets')
    with op.batch_alter_table('notify_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_notify_attempts_bucket_at')

    op.drop_table('notify_attempts')
