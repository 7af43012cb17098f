"""The log policy every zhengai process installs: personal data masked, Kafka client noise summarised.

During a broker outage aiokafka and kafka-python log every failed connection attempt of every
connection — thousands of ERROR lines a second, which bury what matters and fill disks. The
:class:`ClientLogLimiter` lets the first client warning of an outage through unchanged, then one
summary line every ``every`` seconds while the client keeps complaining::

    WARNING aiokafka.conn: Kafka broker unreachable for 40 s, retrying (2871 client log lines
    suppressed; last: Unable connect to "127.0.0.1:19092": [Errno 111] Connect call failed)

An outage is over for the limiter when the clients have been quiet for ``quiet`` seconds; the
next complaint starts a new one. Client records below WARNING pass untouched (they are off by
default anyway).

Install with :func:`install_log_policy` after the handlers are configured (the CLI after
``basicConfig``; the worker from Faust's ``on_setup_root_logger`` hook, because Faust replaces
the root handlers when it starts).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from zhengai.ingest.privacy import install_log_masking

__all__ = ["ClientLogLimiter", "install_log_policy", "CLIENT_LOGGERS"]

CLIENT_LOGGERS = ("aiokafka", "kafka")


def _is_client(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in CLIENT_LOGGERS)


class ClientLogLimiter(logging.Filter):
    """A handler filter: Kafka client WARNING/ERROR lines rate-limited and summarised."""

    def __init__(self, every: float = 10.0, quiet: float = 30.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.every, self.quiet, self.clock = every, quiet, clock
        self._lock = threading.Lock()  # kafka-python logs from its own threads
        self._since: float | None = None  # start of the current outage
        self._last_seen = 0.0
        self._last_passed = 0.0
        self.suppressed = 0  # in the current summary interval
        self.suppressed_total = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not _is_client(record.name):
            return True
        decided = getattr(record, "_zhengai_limited", None)
        if decided is not None:  # the same record at a second handler: the same answer
            return decided
        with self._lock:
            now = self.clock()
            if self._since is None or now - self._last_seen > self.quiet:
                self._since, self._last_passed, self.suppressed = now, now, 0
                passed = True
            elif now - self._last_passed >= self.every:
                try:
                    last = record.getMessage()
                except Exception:  # noqa: BLE001
                    last = str(record.msg)
                record.msg = "Kafka broker unreachable for %d s, retrying (%d client log lines suppressed; last: %s)"
                record.args = (round(now - self._since), self.suppressed, last[:200])
                record.levelno, record.levelname = logging.WARNING, "WARNING"
                self._last_passed, self.suppressed = now, 0
                passed = True
            else:
                self.suppressed += 1
                self.suppressed_total += 1
                passed = False
            self._last_seen = now
        record._zhengai_limited = passed  # type: ignore[attr-defined]
        return passed


_LIMITER = ClientLogLimiter()


def install_log_policy(logger: logging.Logger | None = None) -> ClientLogLimiter:
    """Mask personal data in every record, and limit Kafka client lines at every handler of
    ``logger`` (default: the root logger). Idempotent; returns the process's limiter."""
    install_log_masking()
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if _LIMITER not in handler.filters:
            handler.addFilter(_LIMITER)
    return _LIMITER
