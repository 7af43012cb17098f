"""What the database can do, detected — never assumed (TimescaleDB or plain PostgreSQL or SQLite).

Time bucketing for dashboards differs by capability: TimescaleDB's ``time_bucket`` where the
extension is installed, ``date_trunc`` on plain PostgreSQL (calendar days in China time either
way), and SQLite's ``strftime`` for the embedded store.

``probe_timescale`` decides whether the store may switch TimescaleDB on. It runs on a connection
of its own, never the migration's: on a server where the extension is packaged but not preloaded,
``CREATE EXTENSION timescaledb`` ends the session ("server closed the connection unexpectedly"),
so the probe first reads whether the library is loaded and only then tries to create it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

__all__ = ["Capabilities", "detect", "day_bucket", "TIMEZONE", "TimescaleProbe", "probe_timescale"]


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
    available = (
        conn.execute(text("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'")).scalar() or 0
    ) > 0
    installed = (
        conn.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")).scalar() or 0
    ) > 0
    return Capabilities("postgresql", timescale_available=available, timescale_installed=installed)


def day_bucket(caps: Capabilities, column: str) -> str:
    """SQL for the China-time calendar day of a timestamptz column."""
    if caps.dialect == "sqlite":
        return f"date({column}, '+8 hours')"
    if caps.timescale:
        return f"time_bucket(INTERVAL '1 day', {column}, '{TIMEZONE}')::date"
    return f"date_trunc('day', {column} AT TIME ZONE '{TIMEZONE}')::date"


@dataclass(frozen=True)
class TimescaleProbe:
    """Whether TimescaleDB can be used in this database; when it is packaged on the server but
    cannot be used, ``problem`` says why and what to change (logged once, as a warning)."""

    usable: bool
    version: str | None = None
    problem: str | None = None


_FIX = (
    "set shared_preload_libraries = 'timescaledb' in postgresql.conf, restart PostgreSQL, have a superuser "
    "run CREATE EXTENSION timescaledb in this database, then run `zhengai warnings migrate` again"
)


def _preloaded(conn: Connection) -> bool:
    """Is the timescaledb library loaded into this server? ``shared_preload_libraries`` is readable
    by superusers (and pg_read_all_settings) only; anyone sees the loader's own settings, which
    exist exactly when the library was preloaded (a bool, never a placeholder)."""
    setting = conn.execute(text("SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'")).scalar()
    if setting is not None:
        return "timescaledb" in [lib.strip().strip('"') for lib in setting.split(",")]
    return bool(
        conn.execute(
            text("SELECT count(*) FROM pg_settings WHERE name = 'timescaledb.disable_load' AND vartype = 'bool'")
        ).scalar()
    )


def probe_timescale(engine: Engine, *, create: bool = True) -> TimescaleProbe:
    """On a connection of its own: is TimescaleDB usable here (creating the extension when the
    library is preloaded and ``create``)? Never raises for a server that cannot use it."""
    if engine.dialect.name != "postgresql":
        return TimescaleProbe(False)
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")  # unreachable server: raises
    try:
        packaged = conn.execute(
            text("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'")
        ).scalar()
        installed = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")).scalar()
        if packaged is None and installed is None:
            return TimescaleProbe(False)  # plain PostgreSQL: nothing to say
        if not _preloaded(conn):
            return TimescaleProbe(
                False,
                installed,
                "TimescaleDB is packaged on this server but not in "
                f"shared_preload_libraries; using plain PostgreSQL tables. To use it: {_FIX}",
            )
        if installed is None and create:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
            installed = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")).scalar()
        return TimescaleProbe(installed is not None, installed)
    except DBAPIError as exc:  # no privilege, or a server that dropped the probe's session
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        return TimescaleProbe(
            False,
            None,
            f"TimescaleDB is packaged on this server but cannot be used here ({reason}); "
            f"using plain PostgreSQL tables. To use it: {_FIX}",
        )
    finally:
        conn.close()
