"""Stream processors' state: generic units of derived metrics, grade/finance/score facts, parked observations

The weekly attendance windows become units of the ``stream_units`` table (kind course, student or
rollup); windows that were still dirty carry over, so nothing waiting to be emitted is lost.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa



revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The worker also creates these tables on start (checkfirst): create only what is missing.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if 'stream_units' not in existing:
        op.create_table('stream_units',
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('unit_id', sa.String(length=64), nullable=False),
        sa.Column('period', sa.String(length=16), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ready_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('dirty', sa.Boolean(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('emitted_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('kind', 'unit_id', 'period')
        )
        with op.batch_alter_table('stream_units', schema=None) as batch_op:
            batch_op.create_index('ix_stream_units_due', ['dirty', 'due_at'], unique=False)
    if 'grade_facts' not in existing:
        op.create_table('grade_facts',
        sa.Column('student_id', sa.String(length=64), nullable=False),
        sa.Column('course_id', sa.String(length=64), nullable=False),
        sa.Column('term', sa.String(length=16), nullable=False),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('credits', sa.Float(), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=128), nullable=False),
        sa.Column('key', sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint('student_id', 'course_id', 'term')
        )
        with op.batch_alter_table('grade_facts', schema=None) as batch_op:
            batch_op.create_index('ix_grade_facts_course_term', ['course_id', 'term'], unique=False)
    if 'finance_facts' not in existing:
        op.create_table('finance_facts',
        sa.Column('key', sa.String(length=256), nullable=False),
        sa.Column('school_id', sa.String(length=64), nullable=False),
        sa.Column('year', sa.String(length=4), nullable=False),
        sa.Column('category', sa.String(length=32), nullable=False),
        sa.Column('item', sa.String(length=128), nullable=False),
        sa.Column('budget', sa.Float(), nullable=False),
        sa.Column('actual', sa.Float(), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint('key')
        )
        with op.batch_alter_table('finance_facts', schema=None) as batch_op:
            batch_op.create_index('ix_finance_facts_school_year', ['school_id', 'year'], unique=False)
    if 'score_facts' not in existing:
        op.create_table('score_facts',
        sa.Column('key', sa.String(length=256), nullable=False),
        sa.Column('course_id', sa.String(length=64), nullable=False),
        sa.Column('period', sa.String(length=16), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('observed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint('key')
        )
        with op.batch_alter_table('score_facts', schema=None) as batch_op:
            batch_op.create_index('ix_score_facts_period', ['period'], unique=False)
    if 'parked_observations' not in existing:
        op.create_table('parked_observations',
        sa.Column('key', sa.String(length=256), nullable=False),
        sa.Column('entity_id', sa.String(length=64), nullable=False),
        sa.Column('record', sa.Text(), nullable=False),
        sa.Column('source', sa.String(length=160), nullable=False),
        sa.Column('parked_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key')
        )
        with op.batch_alter_table('parked_observations', schema=None) as batch_op:
            batch_op.create_index('ix_parked_observations_entity', ['entity_id'], unique=False)
    if 'attendance_windows' in existing:
        # Windows still waiting to be emitted become units; class/major/department windows become
        # the week's roll-up unit (roll-ups are now computed for every unit of a week at once).
        op.execute(
            "INSERT INTO stream_units (kind, unit_id, period, due_at, ready_at, dirty, version, updated_at) "
            "SELECT CASE WHEN kind IN ('course', 'student') THEN kind ELSE 'rollup' END, "
            "CASE WHEN kind IN ('course', 'student') THEN unit_id ELSE '*' END, week, "
            "MIN(week_end), MAX(updated_at), %s, 1, MAX(updated_at) FROM attendance_windows WHERE dirty "
            "GROUP BY 1, 2, 3 ON CONFLICT DO NOTHING" % ("true" if op.get_bind().dialect.name == "postgresql" else "1")
        )
        with op.batch_alter_table('attendance_windows', schema=None) as batch_op:
            batch_op.drop_index('ix_attendance_windows_due')
        op.drop_table('attendance_windows')


def downgrade() -> None:
    for table, indexes in (
        ('parked_observations', ['ix_parked_observations_entity']),
        ('score_facts', ['ix_score_facts_period']),
        ('finance_facts', ['ix_finance_facts_school_year']),
        ('grade_facts', ['ix_grade_facts_course_term']),
        ('stream_units', ['ix_stream_units_due']),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for index in indexes:
                batch_op.drop_index(index)
        op.drop_table(table)
