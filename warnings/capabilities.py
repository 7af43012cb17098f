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
    timescale_available: bool = False  # packaged and preloaded: CREATE EXTENSION would work
    timescale_installed: bool = False  # the extension exists in this database

    @property
    def timescale(self) -> bool:
        return self.timescale_installed


def detect(conn: Connection) -> Capabilities:
    if conn.dialect.name != "postgresql":
        return Capabilities(conn.dialect.name)
    available = conn.execute(text("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'")).scalar() > 0
    preload = conn.execute(text("SELECT current_setting('shared_preload_libraries', true)")).scalar() or ""
    installed = conn.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")).scalar() > 0
    return Capabilities("postgresql", timescale_available=available and "timescaledb" in preload, timescale_installed=installed)


def day_bucket(caps: Capabilities, column: str) -> str:
    """SQL for the China-time calendar day of a timestamptz column."""
    if caps.dialect == "sqlite":
        return f"date({column}, '+8 hours')"
    if caps.timescale:
        return f"time_bucket(INTERVAL '1 day', {column}, '{TIMEZONE}')::date"
    return f"date_trunc('day', {column} AT TIME ZONE '{TIMEZONE}')::date"
