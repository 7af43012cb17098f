"""Run the streaming worker: the Faust app with every agent, in this process, until signalled.

Before Faust starts: the store schema is brought up to date, the topics are created if missing
(with their partition counts), and ``/metrics`` is served. Then Faust's own worker owns the event
loop and the signals (SIGTERM/SIGINT stop it cleanly; after SIGKILL the next start simply
re-reads what was not committed — every sink is idempotent). An agent that crashes stops the
worker the same clean way, and the process exits with status 70 so that its supervisor restarts
it (``zhengai.ingest.supervision``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from zhengai.ingest.settings import Settings

__all__ = ["prepare", "run_worker"]

log = logging.getLogger("zhengai.worker")


@contextmanager
def _one_at_a_time(url: str) -> Iterator[None]:
    """Workers of a deployment often start together: on PostgreSQL, one migrates, the others wait."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        if engine.dialect.name != "postgresql":
            yield
            return
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(hashtext('zhengai schema'))"))
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(hashtext('zhengai schema'))"))
                conn.commit()
    finally:
        engine.dispose()


def prepare(settings: Settings, *, create_topics: bool = True) -> None:
    """Everything the worker needs outside Kafka's consumer group: schema and topics."""
    from zhengai.ingest.aggregator import Aggregator
    from zhengai.ingest.app import all_topic_specs, ensure_topics
    from zhengai.warnings.store import WarningStore

    url = settings.store_url.get_secret_value()
    with _one_at_a_time(url):
        WarningStore(url).create_schema()
        Aggregator(url).create_schema()
    if create_topics:
        report = ensure_topics(settings.bootstrap_servers, all_topic_specs(), prefix=settings.topic_prefix)
        created = [name for name, state in report.items() if state == "created"]
        if created:
            log.info("created topics: %s", ", ".join(created))


def _worker_class():
    import faust

    from zhengai.ingest.logs import install_log_policy

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            # Faust has just replaced the root handlers: put the log policy on the new ones.
            super().on_setup_root_logger(logger, level)
            install_log_policy(logger)

    return Worker


def run_worker(settings: Settings, *, create_topics: bool = True, loglevel: str = "warning") -> int:
    from zhengai.ingest import app as app_module
    from zhengai.ingest import metrics
    from zhengai.ingest.supervision import EXIT_AGENT_CRASHED, crash_reason

    prepare(settings, create_topics=create_topics)
    app = app_module.configure(settings)
    metrics.serve(settings.metrics_port)
    app.finalize()
    app.worker_init()
    app.discover()  # imports the agent modules listed in zhengai.ingest.app.AGENT_MODULES
    app.worker_init_post_autodiscover()
    from zhengai.rules import reload
    from zhengai.rules.agents import watcher
    from zhengai.rules.loader import RulebookError
    from zhengai.warnings.published import published_rulebook

    # Load the rulebook now. A folder that does not load starts the worker on the last version
    # published to the store (``zhengai rules publish``); with none published, it does not start.
    reload.use_fallback(lambda: published_rulebook(settings.store_url.get_secret_value()))
    if settings.publish_gate:  # publishing is the gate: the worker runs the latest publication
        from zhengai.rules.agents import use_source
        from zhengai.warnings.publications import PublishedRules
        from zhengai.warnings.store import WarningStore

        use_source(lambda folder: PublishedRules(WarningStore(settings.store_url.get_secret_value()), folder))
    try:
        watcher()
    except RulebookError as exc:
        print(f"{exc}\n规则库无法加载，且存储中没有已发布的版本：worker 未启动。", file=sys.stderr)
        return 2
    worker = _worker_class()(app, loglevel=loglevel, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()  # returns only by SystemExit
    except SystemExit:
        if crash_reason() is not None:  # an agent crashed: stopped gracefully, but say so in the status
            raise SystemExit(EXIT_AGENT_CRASHED) from None
        raise
    return 0
