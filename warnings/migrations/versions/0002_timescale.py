"""TimescaleDB switch (superseded: now a no-op; see 0006)

This revision used to create the extension on the migration's own connection — which a server that
has the extension packaged but not preloaded answers by closing the session — and to convert some
tables before the schema was complete. The switch now runs after the schema is complete, from
revision 0006 and ``zhengai.warnings.timescale``, behind a probe on a connection of its own. The
revision stays so that databases already stamped with it keep their history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
