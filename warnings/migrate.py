"""Versioned schema migrations (Alembic), run programmatically.

``upgrade(engine)`` brings a database to the newest version; it is what ``WarningStore.create_schema``
calls, on SQLite and PostgreSQL alike. Revisions live in ``warnings/migrations/versions/``; the
reporting views, the read-only role and the TimescaleDB switch are revisions too (PostgreSQL only).

Before the revisions run, ``probe_timescale`` finds out — on a connection of its own — whether
TimescaleDB is usable; a server that has it packaged but cannot use it (not preloaded, no
privilege) gets plain tables and one warning saying what to change. Each revision runs in its own
transaction. After them, a database whose time series are still plain although TimescaleDB is
usable now (the server was fixed after an earlier migrate) is switched on, and the configured
Timescale policies are (re)applied.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from zhengai.warnings import timescale
from zhengai.warnings.capabilities import TimescaleProbe, probe_timescale

__all__ = ["upgrade", "current", "head", "config", "storage"]

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def _autocommit(conn: Connection):
    """Leave the transaction (committing it) for statements that cannot run inside one."""
    if conn.in_transaction():
        conn.commit()
    level = conn.get_isolation_level()
    conn.execution_options(isolation_level="AUTOCOMMIT")
    try:
        yield
    finally:
        if conn.in_transaction():
            conn.commit()  # SQLAlchemy's autobegun "transaction" (nothing is open on the server)
        conn.execution_options(isolation_level=level)


def upgrade(engine: Engine, revision: str = "head") -> TimescaleProbe:
    """Migrate; returns what the TimescaleDB probe found (``usable`` False on SQLite and plain PostgreSQL)."""
    probe = probe_timescale(engine)
    if probe.problem:
        log.warning(probe.problem)
    with engine.connect() as connection:
        cfg = config(connection)
        cfg.attributes["timescale"] = probe
        command.upgrade(cfg, revision)
        if connection.in_transaction():
            connection.commit()
    if probe.usable and revision == "head":
        with engine.connect() as conn:
            if timescale.switched_on(conn):
                timescale.apply_policies(conn)
            else:
                timescale.switch_on(lambda: conn, lambda: _autocommit(conn))
            if conn.in_transaction():
                conn.commit()
    return probe


def storage(engine: Engine) -> str:
    """How the time series are stored here, in words (for ``zhengai warnings migrate``)."""
    if engine.dialect.name != "postgresql":
        return f"{engine.dialect.name}: plain tables"
    with engine.connect() as conn:
        version = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")).scalar()
        if version and timescale.switched_on(conn):
            tables = ", ".join(h.table for h in timescale.HYPERTABLES)
            return f"TimescaleDB {version}: hypertables {tables}; continuous aggregates for the reporting views"
        server = conn.execute(text("SHOW server_version")).scalar()
    return f"PostgreSQL {server}: plain tables and reporting views"


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str:
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None  # the migrations ship with the package
    return revision
