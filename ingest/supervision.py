"""Stoppages made visible: a crashed agent ends the worker process; a stalled stream is a metric.

**Crashed agents.** Every agent here catches what a record can do to it, so an agent that
crashes anyway has met a bug or a broken dependency, and Faust's default supervisor would
restart it in place: the restarted agent resumes after a gap of unacknowledged offsets (faust
issue 606, see ``zhengai.ingest.stream``) or crashes again on the same batch, and the process
stays alive, idle and green to a process supervisor — the issue-9 campaign saw lag frozen for
six minutes with no alarm. ``ExitOnCrashSupervisor`` (the app's ``agent_supervisor``) instead
stops the worker gracefully (nothing unacknowledged is committed) and the process exits with
``EXIT_AGENT_CRASHED`` (70, EX_SOFTWARE), so systemd / Kubernetes / compose restart it and the
restart is counted where operators look. An actor cancelled by a rebalance is restarted as
before: that is not a crash.

**Stalled streams.** ``StallWatch`` turns two series the worker already has — consumer lag
(``zhengai_consumer_lag``) and messages taken (``zhengai_records_in``) — into
``zhengai_consumer_stalled_seconds{topic}``: how long messages have waited on a topic while this
worker took none of them. deploy/prometheus/alerts.yml warns 信息中心 when it passes 5 minutes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

from mode import OneForOneSupervisor
from prometheus_client import Counter, Gauge

__all__ = [
    "ExitOnCrashSupervisor",
    "EXIT_AGENT_CRASHED",
    "crash_reason",
    "StallWatch",
    "STALLED_SECONDS",
    "AGENT_CRASHES",
]

log = logging.getLogger("zhengai.supervision")

EXIT_AGENT_CRASHED = 70  # EX_SOFTWARE
FORCED_EXIT_AFTER = 60.0  # seconds a graceful stop may take before the process is ended anyway

AGENT_CRASHES = Counter(
    "zhengai_agent_crashes", "Agents that crashed (the worker then exits non-zero to be restarted)."
)
STALLED_SECONDS = Gauge(
    "zhengai_consumer_stalled_seconds",
    "Seconds messages have been waiting on a topic (lag > 0) while this worker took none of them;"
    " 0 when moving or idle.",
    ["topic"],
)

_crash: BaseException | None = None


def crash_reason() -> BaseException | None:
    """The agent crash that is stopping this worker, if any (``zhengai.worker`` turns it into the exit status)."""
    return _crash


def _stop_process(reason: BaseException) -> None:
    """Stop the worker the way SIGTERM does (Faust's handler: stop agents, commit only what was
    acknowledged), and end the process if that does not finish."""
    global _crash
    if _crash is not None:
        return
    _crash = reason
    AGENT_CRASHES.inc()

    def force() -> None:
        time.sleep(FORCED_EXIT_AFTER)
        log.critical("graceful stop after an agent crash took over %.0f s; exiting now", FORCED_EXIT_AFTER)
        logging.shutdown()
        os._exit(EXIT_AGENT_CRASHED)

    threading.Thread(target=force, name="zhengai-exit-on-crash", daemon=True).start()
    os.kill(os.getpid(), signal.SIGTERM)


class ExitOnCrashSupervisor(OneForOneSupervisor):
    """Restart actors cancelled by a rebalance; for any other crash, stop the worker (see module doc)."""

    async def restart_service(self, service: Any) -> None:
        reason = service.crash_reason
        if reason is None or isinstance(reason, asyncio.CancelledError):
            await super().restart_service(service)
            return
        log.critical(
            "agent %s crashed (%s: %s); the worker stops and exits with status %d so that it is restarted",
            getattr(service, "agent", service),
            type(reason).__name__,
            str(reason)[:200],
            EXIT_AGENT_CRASHED,
        )
        _stop_process(reason)


class StallWatch:
    """Per topic: seconds since messages were last taken while some were waiting. Pure: feed it
    the lag and the taken-count per topic with the time; it returns and publishes the stall."""

    def __init__(self) -> None:
        self._taken: dict[str, float] = {}
        self._since: dict[str, float] = {}
        self._waiting: dict[str, bool] = {}

    def observe(self, now: float, lag: Mapping[str, float], taken: Mapping[str, float]) -> dict[str, float]:
        out = {}
        for topic in set(lag) | set(self._since):
            waiting = lag.get(topic, 0) > 0
            moved = taken.get(topic, 0) != self._taken.get(topic)
            if moved or not waiting or not self._waiting.get(topic):  # the clock starts when messages wait
                self._since[topic] = now
            self._waiting[topic] = waiting
            out[topic] = now - self._since[topic] if waiting else 0.0
            self._taken[topic] = taken.get(topic, 0)
        for topic, seconds in out.items():
            STALLED_SECONDS.labels(topic=topic).set(seconds)
        return out

    def sample(self, now: float | None = None) -> dict[str, float]:
        """Read the worker's own lag gauge and records-in counter (the default registry)."""
        from zhengai.ingest import metrics

        lag: dict[str, float] = {}
        for family in metrics.CONSUMER_LAG.collect():
            for s in family.samples:
                lag[s.labels["topic"]] = lag.get(s.labels["topic"], 0) + s.value
        taken: dict[str, float] = {}
        for family in metrics.RECORDS_IN.collect():
            for s in family.samples:
                if s.name.endswith("_total"):
                    taken[s.labels["topic"]] = taken.get(s.labels["topic"], 0) + s.value
        return self.observe(time.monotonic() if now is None else now, lag, taken)
