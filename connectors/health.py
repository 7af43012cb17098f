"""Health of a connector: last success, lag, rows, and the warning to IT when it falls silent.

A connector is *overdue* when it has not completed a successful run (every stream read and
acknowledged, even if nothing was new) within its expected window, counted from its last
success — or from when monitoring started, if it never succeeded since. Entering that state
logs one structured warning line (``event=connector_overdue …``, logger
``zhengai.connectors.health``), sets the ``zhengai_connector_overdue`` gauge to 1 and counts
``zhengai_connector_overdue_warnings_total``; the next success logs ``event=connector_recovered``
and sets the gauge back to 0. Lag is per incremental stream: now minus the source time of the
newest row delivered (a stalled feed shows here even while runs succeed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import _metrics
from .base import Connector, RunReport

__all__ = ["ConnectorHealth"]

log = logging.getLogger("zhengai.connectors.health")


def _logfmt(**fields: object) -> str:
    parts = []
    for key, value in fields.items():
        text = "" if value is None else str(value)
        if not text or any(c in text for c in ' ="'):
            text = '"' + text.replace('"', "'") + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


@dataclass
class ConnectorHealth:
    connector: str
    expect_within: timedelta
    started: datetime
    last_run: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    read: int = 0
    sent: int = 0
    rejected: int = 0
    lag: dict[str, timedelta] = field(default_factory=dict)
    overdue: bool = False

    def __post_init__(self) -> None:
        _metrics.OVERDUE.labels(self.connector).set(0)
        _metrics.CONSECUTIVE_FAILURES.labels(self.connector).set(0)

    def record(self, report: RunReport, connector: Connector, now: datetime) -> None:
        """Account for one finished run."""
        self.last_run = now
        self.read += report.total("read")
        self.sent += report.total("sent")
        self.rejected += report.total("rejected")
        _metrics.LAST_RUN.labels(self.connector).set(now.timestamp())
        for stream in connector.streams:
            stats = report.streams.get(stream.name)
            if stats is None or stats.bookmark is None:
                continue
            try:
                at = stream.cursor_time(stats.bookmark)
            except Exception:  # noqa: BLE001 — a bookmark the stream cannot read has no lag
                at = None
            if at is not None:
                self.lag[stream.name] = max(timedelta(0), now - at)
                _metrics.LAG.labels(self.connector, stream.name).set(self.lag[stream.name].total_seconds())
        if report.ok:
            self.last_success, self.last_error, self.consecutive_failures = now, None, 0
            _metrics.LAST_SUCCESS.labels(self.connector).set(now.timestamp())
            if self.overdue:
                self.overdue = False
                _metrics.OVERDUE.labels(self.connector).set(0)
                log.info(
                    _logfmt(event="connector_recovered", connector=self.connector, last_success=now.isoformat()),
                    extra={"event": "connector_recovered", "connector": self.connector},
                )
        else:
            self.consecutive_failures += 1
            name, error = next(iter(report.errors.items()))
            self.last_error = f"{name}: {error}"
        _metrics.CONSECUTIVE_FAILURES.labels(self.connector).set(self.consecutive_failures)

    def silent_for(self, now: datetime) -> timedelta:
        return now - (self.last_success or self.started)

    def check(self, now: datetime) -> bool:
        """Enter the overdue state if the window has passed; True when this call warned."""
        if self.overdue or self.silent_for(now) <= self.expect_within:
            return False
        self.overdue = True
        _metrics.OVERDUE.labels(self.connector).set(1)
        _metrics.OVERDUE_WARNINGS.labels(self.connector).inc()
        fields = {
            "event": "connector_overdue",
            "connector": self.connector,
            "silent_s": int(self.silent_for(now).total_seconds()),
            "expected_within_s": int(self.expect_within.total_seconds()),
            "last_success": self.last_success.isoformat() if self.last_success else "never",
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error or "",
        }
        log.warning(_logfmt(**fields), extra=fields)
        return True

    def summary(self) -> dict[str, object]:
        """A plain dict for the command line (no personal data: counts and times only)."""
        return {
            "connector": self.connector,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_error": self.last_error,
            "read": self.read,
            "sent": self.sent,
            "rejected": self.rejected,
            "lag_s": {k: int(v.total_seconds()) for k, v in self.lag.items()},
            "overdue": self.overdue,
        }
