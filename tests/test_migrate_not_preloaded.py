"""`zhengai warnings migrate` on a server where TimescaleDB is packaged but not preloaded (the state
right after installing the package). Opt-in: collected only with ZHENGAI_TEST_TSDB_NOT_PRELOADED_URL
(a role that may create databases on such a server). There, ``CREATE EXTENSION timescaledb`` ends
the session; the migration must not try it on its own connection, must fall back to plain tables
and say once, without a traceback, what to change."""

import os
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from zhengai.warnings.migrate import head

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return os.environ["ZHENGAI_TEST_TSDB_NOT_PRELOADED_URL"]  # conftest.TSDB_NOT_PRELOADED_ENV


def test_packaged_but_not_preloaded_falls_back_with_one_warning(pg_url):
    engine = create_engine(pg_url)
    with engine.connect() as c:  # the premise: packaged here, not loaded
        assert c.execute(text("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'")).scalar() == 1
        assert c.execute(text("SELECT count(*) FROM pg_settings WHERE name LIKE 'timescaledb.%'")).scalar() == 0
    env = {**os.environ, "ZHENGAI_STORE_URL": pg_url, "PYTHONSAFEPATH": "1"}
    for _ in range(2):  # and again: still plain, still one warning
        done = subprocess.run(
            [sys.executable, "-m", "zhengai", "warnings", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
        assert (
            len(warnings) == 1
            and "shared_preload_libraries" in warnings[0]
            and "plain PostgreSQL tables" in warnings[0]
        )
        assert f"revision {head()} (postgresql)" in done.stdout and "plain tables and reporting views" in done.stdout
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")).scalar() == 0
        views = set(
            c.execute(
                text("SELECT table_name FROM information_schema.views WHERE table_schema = 'reporting'")
            ).scalars()
        )
    assert {"daily_counts", "indicator_values", "open_warnings"} <= views
    engine.dispose()
