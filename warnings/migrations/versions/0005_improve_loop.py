"""The improve half of the loop: evidence, measured effects, link revocations, silence expiry
notices, and an outbox row per recipient (an escalation notice also copies the owner)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    op.create_table('warning_evidence',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('warning_id', sa.Integer(), nullable=False),
    sa.Column('improvement_id', sa.Integer(), nullable=True),
    sa.Column('url', sa.String(length=1000), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('added_by', sa.String(length=64), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['warning_id'], ['warnings.id'], ),
    sa.ForeignKeyConstraint(['improvement_id'], ['improvements.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_warning_evidence_warning_id', 'warning_evidence', ['warning_id'], unique=False)
    op.create_table('improvement_effects',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('warning_id', sa.Integer(), nullable=False),
    sa.Column('improvement_id', sa.Integer(), nullable=True),
    sa.Column('reviewed_by', sa.String(length=64), nullable=True),
    sa.Column('measured_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['warning_id'], ['warnings.id'], ),
    sa.ForeignKeyConstraint(['improvement_id'], ['improvements.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_improvement_effects_warning_id', 'improvement_effects', ['warning_id'], unique=False)
    op.create_table('link_revocations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=64), nullable=False),
    sa.Column('revoked_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_by', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_link_revocations_person_id', 'link_revocations', ['person_id'], unique=False)
    if 'notify_silences' in existing:  # the notifier may have created it (checkfirst) before 0004
        cols = {c['name'] for c in sa.inspect(op.get_bind()).get_columns('notify_silences')}
        if 'expiry_noticed_at' not in cols:
            with op.batch_alter_table('notify_silences', schema=None) as batch_op:
                batch_op.add_column(sa.Column('expiry_noticed_at', sa.DateTime(timezone=True), nullable=True))
    # one outbox row per (event, channel, recipient): an escalation is sent to the next level and
    # copied to the owner on the same channel
    with op.batch_alter_table('notification_outbox', schema=None) as batch_op:
        batch_op.drop_constraint('uq_outbox_event_channel', type_='unique')
        batch_op.create_unique_constraint('uq_outbox_event_channel_recipient', ['event_id', 'channel', 'recipient_id'])


def downgrade() -> None:
    with op.batch_alter_table('notification_outbox', schema=None) as batch_op:
        batch_op.drop_constraint('uq_outbox_event_channel_recipient', type_='unique')
        batch_op.create_unique_constraint('uq_outbox_event_channel', ['event_id', 'channel'])
    with op.batch_alter_table('notify_silences', schema=None) as batch_op:
        batch_op.drop_column('expiry_noticed_at')
    op.drop_index('ix_link_revocations_person_id', table_name='link_revocations')
    op.drop_table('link_revocations')
    op.drop_index('ix_improvement_effects_warning_id', table_name='improvement_effects')
    op.drop_table('improvement_effects')
    op.drop_index('ix_warning_evidence_warning_id', table_name='warning_evidence')
    op.drop_table('warning_evidence')
