"""``zhengai connectors run``: connectors on their schedules, with backoff chosen by error type.

Each :class:`ConnectorJob` is one connector with its schedule and health. :class:`Runner`
runs every job once (``--once``) or keeps them running, one thread each, until ``stop`` is set:

* a run starts when the job is due; the first run is due at start;
* after a successful run, the next is the next scheduled time;
* after a run whose failures are all *retryable* (source unreachable after the source's own
  retries, broker unavailable), the next run comes sooner: ``backoff`` grows with the failures
  in a row (30 s, 1 min, 2 min … capped), never later than the next scheduled time;
* after a *fatal* failure (bad credentials, missing table, message too large) retrying soon
  cannot help: the job waits for its next scheduled time, and health warns IT if that makes it
  overdue.

Between runs each job wakes at least every ``health_tick`` to check whether it is overdue. A stop
request ends a run between batches; bookmarks stay at the last acknowledged batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .base import BookmarkStore, Connector, Delivery, RunReport, StreamStats, run_connector
from .health import ConnectorHealth
from .retry import RetryPolicy
from .schedule import Schedule
from .source_health import health_observation

__all__ = ["ConnectorJob", "Runner", "DEFAULT_BACKOFF"]

log = logging.getLogger("zhengai.connectors")

# Delays between whole runs after retryable failures (the sources retry quickly on their own).
DEFAULT_BACKOFF = RetryPolicy(attempts=1, base_delay=30.0, factor=2.0, max_delay=900.0)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ConnectorJob:
    connector: Connector
    schedule: Schedule
    health: ConnectorHealth
    batch_size: int = 1000
    backoff: RetryPolicy = DEFAULT_BACKOFF
    # A broker outage shorter than this is waited out within the run (the run then goes on).
    delivery_patience: float = 0.0
    next_due: datetime | None = None
    reports: list[RunReport] = field(default_factory=list, repr=False)

    @property
    def name(self) -> str:
        return self.connector.name

    def run(
        self,
        delivery: Delivery,
        bookmarks: BookmarkStore,
        now: Callable[[], datetime],
        should_stop: Callable[[], bool] | None = None,
    ) -> RunReport:
        """One run of every stream; health accounts for it. Never raises."""
        started = now()
        try:
            report = run_connector(
                self.connector,
                delivery,
                bookmarks,
                batch_size=self.batch_size,
                now=now,
                should_stop=should_stop,
                delivery_patience=self.delivery_patience,
            )
        except Exception as exc:  # noqa: BLE001 — e.g. the bookmark store is unreachable
            log.exception("connector %s: run failed", self.name)
            report = RunReport(connector=self.name, started=started, finished=now())
            report.streams["(run)"] = StreamStats(error=f"{type(exc).__name__}: {exc}", error_kind="retryable")
        self.health.record(report, self.connector, now())
        self.reports[:] = [report]  # the latest only: a long-running loop must not grow
        return report

    def plan_next(self, report: RunReport, now: datetime) -> datetime:
        """When to run again after ``report``."""
        tick = self.schedule.next_after(now)
        if report.ok or not report.retryable:
            return tick
        retry = now + timedelta(seconds=self.backoff.delay(self.health.consecutive_failures))
        log.info(
            "connector %s: retryable failure %d in a row; next run at %s",
            self.name,
            self.health.consecutive_failures,
            min(tick, retry).isoformat(),
        )
        return min(tick, retry)


class Runner:
    """Runs jobs against one delivery and one bookmark store (both thread-safe)."""

    def __init__(
        self,
        jobs: Sequence[ConnectorJob],
        delivery: Delivery,
        bookmarks: BookmarkStore,
        *,
        clock: Callable[[], datetime] = _utcnow,
        health_tick: timedelta = timedelta(seconds=30),
        school_id: str | None = None,
    ) -> None:
        names = [j.name for j in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"a connector is listed twice: {', '.join(names)}")
        self.jobs = list(jobs)
        self.delivery, self.bookmarks = delivery, bookmarks
        self.clock, self.health_tick = clock, health_tick
        # Given the school, each connector's health goes on the wire after every run and when it
        # falls overdue (connectors/source_health.py → one warning to 信息中心).
        self.school_id = school_id

    def _report_health(self, job: ConnectorJob, now: datetime) -> None:
        if self.school_id is None:
            return
        try:
            self.delivery.deliver([health_observation(job.name, job.health.overdue, now, self.school_id)])
        except Exception:  # noqa: BLE001 — the broker is down: the next report says it again
            log.warning("connector %s: health report not delivered", job.name)

    def run_job(self, job: ConnectorJob, stop: threading.Event | None = None) -> RunReport:
        report = job.run(self.delivery, self.bookmarks, self.clock, stop.is_set if stop is not None else None)
        self._report_health(job, self.clock())
        return report

    def check_health(self, job: ConnectorJob, now: datetime) -> bool:
        """Check whether ``job`` fell overdue; True (and a health report) when it just did."""
        warned = job.health.check(now)
        if warned:
            self._report_health(job, now)
        return warned

    def run_once(self, stop: threading.Event | None = None) -> dict[str, RunReport]:
        """Every job once, one after the other."""
        reports: dict[str, RunReport] = {}
        for job in self.jobs:
            if stop is not None and stop.is_set():
                break
            reports[job.name] = self.run_job(job, stop)
        return reports

    def run_forever(self, stop: threading.Event) -> None:
        """Run every job on its schedule, one thread per job, until ``stop`` is set."""
        threads = [
            threading.Thread(target=self._loop, args=(job, stop), name=f"connector-{job.name}", daemon=True)
            for job in self.jobs
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _loop(self, job: ConnectorJob, stop: threading.Event) -> None:
        if job.next_due is None:
            job.next_due = self.clock()
        while not stop.is_set():
            now = self.clock()
            if now >= job.next_due:
                report = self.run_job(job, stop)
                now = self.clock()
                job.next_due = job.plan_next(report, now)
            self.check_health(job, now)
            wait = min(job.next_due - now, self.health_tick).total_seconds()
            stop.wait(max(wait, 0.001))
