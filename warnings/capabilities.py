"""What the database can do, detected — never assumed (TimescaleDB or plain PostgreSQL or SQLite).

Time bucketing for dashboards differs by capability: TimescaleDB's ``time_bucket`` where the
extension is installed, ``date_trunc`` on plain PostgreSQL (calendar days in China time either
way), and SQLite's ``strftime`` for the embedded store.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

__all__ = ["Capabilities", "detect", "day_bucket", "TIMEZONE"]

TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Capabilities:
    dialect: str
    timescale_available: bool = False  # packaged on the server (CREATE EXTENSION may still need it preloaded)
    timescale_installed: bool = False  # the extension exists in this database

    @property
    def timescale(self) -> bool:
        return self.timescale_installed


def detect(conn: Connection) -> Capabilities:
    if conn.dialect.name != "postgresql":
        return Capabilities(conn.dialect.name)
    # shared_preload_libraries is readable only by superusers, so whether the extension can really
    # be created is found out by trying (see migration 0002), not by reading settings.
    available = conn.execute(text("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'")).scalar() > 0
    installed = conn.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")).scalar() > 0
    return Capabilities("postgresql", timescale_available=available, timescale_installed=installed)


def day_bucket(caps: Capabilities, column: str) -> str:
    """SQL for the China-time calendar day of a timestamptz column."""
    if caps.dialect == "sqlite":
        return f"date({column}, '+8 hours')"
    if caps.timescale:
        return f"time_bucket(INTERVAL '1 day', {column}, '{TIMEZONE}')::date"
    return f"date_trunc('day', {column} AT TIME ZONE '{TIMEZONE}')::date"
