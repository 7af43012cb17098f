"""Versioned schema migrations (Alembic), run programmatically.

``upgrade(engine)`` brings a database to the newest version; it is what ``WarningStore.create_schema``
calls, on SQLite and PostgreSQL alike. Revisions live in ``warnings/migrations/versions/``; the
reporting views, the read-only role and the TimescaleDB switch are revisions too (PostgreSQL only).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

__all__ = ["upgrade", "current", "head", "config"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        command.upgrade(config(connection), revision)


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str:
    return ScriptDirectory.from_config(config()).get_current_head()
