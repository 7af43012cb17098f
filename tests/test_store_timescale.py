"""The warning store on a real TimescaleDB (opt-in: collected only with ZHENGAI_TEST_TSDB_URL, a
server with timescaledb in shared_preload_libraries and a role that may create databases).

Every test of ``test_store_pg.py`` runs here again on TimescaleDB — lifecycle, replay and race
idempotency, the reporting views with known answers, every dashboard panel as the read-only role —
and then what only TimescaleDB has: hypertables, policies, compressed chunks and the aggregates."""

import importlib.util
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from zhengai.ingest.records import period_start
from zhengai.warnings.migrate import head

_spec = importlib.util.spec_from_file_location("_store_pg_on_timescale", Path(__file__).with_name("test_store_pg.py"))
_pg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_pg)
globals().update({name: obj for name, obj in vars(_pg).items() if name.startswith("test_")})
rules, directory, store, service = _pg.rules, _pg.directory, _pg.store, _pg.service
V, _observation = _pg.V, _pg._observation

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """This module's databases are made on the TimescaleDB server (overrides conftest's)."""
    return os.environ["ZHENGAI_TEST_TSDB_URL"]  # conftest.TSDB_URL_ENV


# test_store_pg's plain-PostgreSQL CLI test expects no TimescaleDB: replaced by its counterpart here
del globals()["test_migrate_command_on_plain_postgres_says_what_it_did"]


def test_migrate_command_on_timescaledb(pg_url):
    import subprocess
    import sys

    env = {**os.environ, "ZHENGAI_STORE_URL": pg_url, "PYTHONSAFEPATH": "1"}
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "zhengai", "warnings", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "WARNING" not in done.stderr
        assert done.stdout.startswith(f"store schema at revision {head()} (postgresql); TimescaleDB 2.")
        assert "hypertables observations, verdicts, warning_events, dead_letters" in done.stdout


def _q(store, sql, **params):
    with store.engine.connect() as c:
        return c.execute(text(sql), params).all()


def test_time_series_are_hypertables_with_policies(store, monkeypatch):
    hypertables = dict(
        _q(
            store,
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = 'public'",
        )
    )
    assert hypertables == {"observations": True, "verdicts": True, "warning_events": True, "dead_letters": True}
    dims = dict(
        _q(
            store,
            "SELECT hypertable_name, column_name FROM timescaledb_information.dimensions "
            "WHERE hypertable_schema = 'public'",
        )
    )
    assert dims == {
        "observations": "period_start",
        "verdicts": "period_start",
        "warning_events": "at",
        "dead_letters": "at",
    }
    aggregates = {r[0] for r in _q(store, "SELECT view_name FROM timescaledb_information.continuous_aggregates")}
    assert aggregates == {"daily_counts_cagg", "indicator_values_cagg"}

    def policies():
        return {
            (r[0], r[1]): r[2]
            for r in _q(
                store,
                """
            SELECT proc_name, hypertable_name,
                   COALESCE(config->>'compress_after', config->>'drop_after', schedule_interval::text)
            FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL""",
            )
        }

    assert policies() == {
        ("policy_compression", "observations"): "90 days",
        ("policy_compression", "verdicts"): "90 days",
        ("policy_compression", "warning_events"): "90 days",
        ("policy_compression", "dead_letters"): "90 days",
        ("policy_retention", "observations"): "1825 days",
        ("policy_retention", "verdicts"): "1825 days",
        ("policy_retention", "dead_letters"): "1825 days",  # the warnings' audit trail is kept by default
        ("policy_refresh_continuous_aggregate", "daily_counts_cagg"): "01:00:00",
        ("policy_refresh_continuous_aggregate", "indicator_values_cagg"): "01:00:00",
    }
    jobs = {r[0] for r in _q(store, "SELECT job_id FROM timescaledb_information.jobs")}
    store.create_schema()  # unchanged settings: the same jobs
    assert {r[0] for r in _q(store, "SELECT job_id FROM timescaledb_information.jobs")} == jobs
    monkeypatch.setenv("ZHENGAI_TSDB_COMPRESS_AFTER", "30d")
    monkeypatch.setenv("ZHENGAI_TSDB_EVENT_RETENTION", "3650d")
    store.create_schema()  # a changed setting replaces its policies
    changed = policies()
    assert {
        changed[("policy_compression", t)] for t in ("observations", "verdicts", "warning_events", "dead_letters")
    } == {"30 days"}
    assert changed[("policy_retention", "warning_events")] == "3650 days"


def test_replays_stay_exact_on_compressed_chunks(service, store, rules):
    """Idempotency keys carry the period's start, so a replay into a compressed chunk finds its key."""
    from zhengai.warnings.schema import VerdictRow, WarningEventRow, WarningRow

    observations = [_observation(c, v) for c, v in (("C0001", 90.0), ("C0002", 80.0))]
    verdicts = [V(rules, 40, 93.0), V(rules, 41, 85.0)]
    assert store.observations.add(observations) == 2
    service.handle(verdicts)
    counts = (store.read.count(VerdictRow), store.read.count(WarningRow), store.read.count(WarningEventRow))
    compressed = _q(
        store,
        "SELECT count(compress_chunk(c)) FROM (SELECT show_chunks('observations') AS c "
        "UNION ALL SELECT show_chunks('verdicts')) chunks",
    )
    assert compressed[0][0] >= 2
    assert store.observations.add(observations) == 0  # replay: nothing written
    assert service.handle(verdicts) == [] and service.handle(list(reversed(verdicts))) == []
    assert (store.read.count(VerdictRow), store.read.count(WarningRow), store.read.count(WarningEventRow)) == counts
    assert store.observations.add([_observation("C0002", 81.5)]) == 1  # a correction, into the compressed chunk
    assert _q(store, "SELECT key, value FROM observations ORDER BY key") == [
        ("t|C0001|2026-W40", 90.0),
        ("t|C0002|2026-W40", 81.5),
    ]


def test_aggregates_refresh_corrections(service, store):
    """The views read the aggregates in real time; a correction to a materialised bucket shows once
    the refresh policy (or a manual refresh) has run."""
    store.observations.add([_observation("C0001", 90.0), _observation("C0002", 80.0)])
    view = (
        "SELECT observations, avg_value FROM reporting.indicator_values"
        " WHERE period = '2026-W40' AND department_id = 'D01'"
    )
    assert _q(store, view) == [(2, 85.0)]  # not materialised yet: real-time aggregation
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("CALL refresh_continuous_aggregate('reporting.indicator_values_cagg', NULL, NULL)"))
        store.observations.add([_observation("C0002", 90.0)])
        c.execute(text("CALL refresh_continuous_aggregate('reporting.indicator_values_cagg', NULL, NULL)"))
    assert _q(store, view) == [(2, 90.0)]
    # the aggregate's bucket is the China-time day of the period's start: the period start itself
    assert _q(store, "SELECT DISTINCT period_start FROM reporting.indicator_values") == [(period_start("2026-W40"),)]
