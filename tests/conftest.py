"""Shared test configuration.

In CI (``CI`` set) or with ``ZHENGAI_FAIL_ON_SKIP=1``, any skipped test fails the run: an
integration test that skipped because a service was missing has not shown anything.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest

from zhengai.ingest.topics import TopicSpec

# Shared test helpers (``streamkit``) import as plain modules; pytest runs with --import-mode=importlib.
sys.path.insert(0, os.path.dirname(__file__))


def _strict() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("ZHENGAI_FAIL_ON_SKIP") == "1"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not _strict():
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped:
        reporter.write_line(f"FAILED: {len(skipped)} test(s) skipped; in CI a skip is a failure:", red=True)
        for rep in skipped:
            reporter.write_line(
                f"  {rep.nodeid}: {rep.longrepr[-1] if isinstance(rep.longrepr, tuple) else rep.longrepr}"
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------------------------------
# Real services: PostgreSQL and Kafka (deploy/local/services.sh up; `make test` starts them and
# exports ZHENGAI_TEST_PG_URL / ZHENGAI_TEST_KAFKA). Every test gets its own database and its own
# uniquely prefixed topics. Tests using these fixtures are marked `integration` (also automatically).

PG_URL_ENV = "ZHENGAI_TEST_PG_URL"
KAFKA_ENV = "ZHENGAI_TEST_KAFKA"
_SERVICE_FIXTURES = {"pg_admin_url", "pg_database", "pg_module_database", "pg_url", "kafka_bootstrap", "kafka_topics"}
_HINT = "start them with `deploy/local/services.sh up` (or run `make test`)"


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python 3.0 loads its protocol schemas with the deprecated importlib.resources API:
    # hundreds of identical warnings per session that are not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore:read_text is deprecated:DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:open_text is deprecated:DeprecationWarning")


# --------------------------------------------------------------------------------------------------
# TimescaleDB: no registry these machines reach has it, so its tests are opt-in. They are collected
# only when a URL is given (ZHENGAI_TEST_TSDB_URL: a server with timescaledb preloaded, a role that
# may create databases; ZHENGAI_TEST_TSDB_NOT_PRELOADED_URL: a server with the extension packaged
# but not preloaded) — not collected otherwise, so a run on plain PostgreSQL never skips them.

TSDB_URL_ENV = "ZHENGAI_TEST_TSDB_URL"
TSDB_NOT_PRELOADED_ENV = "ZHENGAI_TEST_TSDB_NOT_PRELOADED_URL"
_OPT_IN = {"test_store_timescale.py": TSDB_URL_ENV, "test_migrate_not_preloaded.py": TSDB_NOT_PRELOADED_ENV}


def pytest_ignore_collect(collection_path, config: pytest.Config) -> bool | None:
    env = _OPT_IN.get(collection_path.name)
    return True if env and not os.environ.get(env) else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # files named on the command line are collected even so: deselect (never skip) their tests
    opted_out = [i for i in items if (env := _OPT_IN.get(i.path.name)) and not os.environ.get(env)]
    if opted_out:
        config.hook.pytest_deselected(items=opted_out)
        items[:] = [i for i in items if i not in opted_out]
    for item in items:
        if _SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    name = type(exc).__name__
    return first if first.startswith(name) else f"{name}: {first}"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """SQLAlchemy URL of a role that may create databases (from ZHENGAI_TEST_PG_URL); skips if unreachable."""
    raw = os.environ.get(PG_URL_ENV)
    if not raw:
        pytest.skip(f"PostgreSQL: {PG_URL_ENV} is not set; {_HINT}")
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    url = sa.engine.make_url(raw)
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        pytest.skip(
            f"PostgreSQL at {url.render_as_string(hide_password=True)} is not reachable ({_first_line(exc)}); {_HINT}"
        )
    finally:
        engine.dispose()
    return raw


@contextmanager
def _fresh_databases(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Factory: each call creates a fresh, uniquely named database and returns its SQLAlchemy URL.

    All of them are dropped on exit (open connections are terminated first).
    """
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    url = sa.engine.make_url(pg_admin_url)
    admin = sa.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def make() -> str:
        name = f"zgtest_{uuid.uuid4().hex[:16]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return url.set(database=name).render_as_string(hide_password=False)

    try:
        yield make
    finally:
        with admin.connect() as conn:
            for name in created:
                # Only our own client sessions: an autovacuum worker may be in the fresh database,
                # and terminating it needs a superuser (DROP DATABASE stops it by itself).
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid() "
                        "AND backend_type = 'client backend' AND usename = current_user"
                    ),
                    {"name": name},
                )
                for attempt in range(5):
                    try:
                        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                        break
                    except sa.exc.DBAPIError:
                        if attempt == 4:
                            raise
                        time.sleep(0.2 * (attempt + 1))
        admin.dispose()


@pytest.fixture
def pg_database(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Factory: fresh databases of this test's own (dropped after the test)."""
    with _fresh_databases(pg_admin_url) as make:
        yield make


@pytest.fixture(scope="module")
def pg_module_database(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Factory: fresh databases shared by a module's tests (e.g. one demo run), dropped after the module."""
    with _fresh_databases(pg_admin_url) as make:
        yield make


@pytest.fixture
def pg_url(pg_database: Callable[[], str]) -> str:
    """SQLAlchemy URL of a fresh database of this test's own (dropped afterwards)."""
    return pg_database()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of a real Kafka broker (from ZHENGAI_TEST_KAFKA); skips if unreachable."""
    servers = os.environ.get(KAFKA_ENV)
    if not servers:
        pytest.skip(f"Kafka: {KAFKA_ENV} is not set; {_HINT}")
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=servers,
            client_id="zhengai-tests-probe",
            bootstrap_timeout_ms=10_000,
            request_timeout_ms=10_000,
        )
        try:
            admin.list_topics()
        finally:
            admin.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        pytest.skip(f"Kafka at {servers} is not reachable ({_first_line(exc)}); {_HINT}")
    return servers


class KafkaTopics:
    """``make(names_or_specs, partitions=None) -> list[str]``: creates topics for one test.

    Each name (or :class:`TopicSpec`, whose partitions and config are kept) gets this test's
    unique ``prefix``; returns the real names in the given order. ``partitions`` overrides the
    partition count (default: the spec's, or 1 for a plain name). Topics are created with
    replication factor 1, waited for until every partition has a leader, and deleted after the test.
    """

    def __init__(self, admin, prefix: str) -> None:
        self._admin = admin
        self.prefix = prefix
        self.created: list[str] = []

    def real(self, name: str) -> str:
        return self.prefix + name

    def __call__(
        self, names_or_specs: str | TopicSpec | Iterable[str | TopicSpec], partitions: int | None = None
    ) -> list[str]:
        items = [names_or_specs] if isinstance(names_or_specs, (str, TopicSpec)) else list(names_or_specs)
        specs: list[TopicSpec] = []
        for item in items:
            spec = TopicSpec(item, 1) if isinstance(item, str) else item
            if partitions is not None:
                spec = replace(spec, partitions=partitions)
            specs.append(replace(spec, name=self.real(spec.name)))
        if not specs:
            return []
        self._admin.create_topics(
            {
                s.name: {"num_partitions": s.partitions, "replication_factor": 1, "configs": dict(s.config)}
                for s in specs
            },
            timeout_ms=30_000,
            wait_for_metadata=True,
        )
        self.created.extend(s.name for s in specs)
        return [s.name for s in specs]

    def cleanup(self) -> None:
        if self.created:
            self._admin.delete_topics(self.created, timeout_ms=30_000, raise_errors=False)
            self.created.clear()


@pytest.fixture(scope="session")
def _kafka_admin(kafka_bootstrap: str) -> Iterator[object]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="zhengai-tests", request_timeout_ms=30_000)
    yield admin
    admin.close()


@pytest.fixture
def kafka_topics(_kafka_admin) -> Iterator[Callable[..., list[str]]]:
    """Factory creating uniquely prefixed topics for this test (see :class:`KafkaTopics`)."""
    topics = KafkaTopics(_kafka_admin, prefix=f"test-{uuid.uuid4().hex[:10]}.")
    yield topics
    topics.cleanup()


@pytest.fixture
def env(tmp_path, kafka_bootstrap, pg_url, kafka_topics):
    """A streaming deployment of this test's own: topics, database, ``python -m zhengai worker``
    subprocesses (``streamkit.Env``)."""
    from streamkit import stream_env

    yield from stream_env(tmp_path, kafka_bootstrap, pg_url, kafka_topics)
