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

**Logs people can search.** With ``ZHENGAI_LOG_FORMAT=json`` (or ``zhengai --log-format json``)
every handler writes one JSON object a line (:class:`JsonFormatter`)::

    {"ts": "2026-11-30T11:02:03.456+00:00", "level": "WARNING", "logger": "zhengai.connectors.health",
     "message": "event=connector_overdue connector=jiaowu …", "connector": "jiaowu", "event": "connector_overdue"}

The fields ``rule``, ``connector``, ``warning``, ``stream``, ``topic``, ``channel`` and ``event``
say what the line concerns: from ``extra={...}`` on the call, else from the surrounding
:func:`log_context` block (a connector run sets ``connector``). The masking above applies: the
message is masked when the record is made, and every string field is masked again on output.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from zhengai.ingest.privacy import install_log_masking, mask_text

__all__ = [
    "ClientLogLimiter",
    "install_log_policy",
    "CLIENT_LOGGERS",
    "CONTEXT_FIELDS",
    "JsonFormatter",
    "LOG_FORMATS",
    "log_context",
    "log_format",
]

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
        record._zhengai_limited = passed
        return passed


_LIMITER = ClientLogLimiter()

# --- searchable logs ------------------------------------------------------------------------------

LOG_FORMATS = ("text", "json")
CONTEXT_FIELDS = ("rule", "connector", "warning", "stream", "topic", "channel", "event")
_CONTEXT: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar("zhengai_log_context", default=None)


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Lines logged inside the block (same thread or task) carry these fields in JSON format,
    e.g. ``with log_context(connector="jiaowu"): ...``. Only :data:`CONTEXT_FIELDS`."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"unknown log context field(s) {sorted(unknown)}; known: {CONTEXT_FIELDS}")
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def _masked(value: object) -> object:
    return mask_text(value) if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the
    context fields the line concerns, ``exception`` (masked traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_text(record.getMessage()),
        }
        context = _CONTEXT.get() or {}
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = context.get(name)
            if value is not None:
                out[name] = _masked(value if isinstance(value, (int, float, bool)) else str(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = mask_text(record.exc_text)
        return json.dumps(out, ensure_ascii=False)


def log_format(value: str | None = None) -> str:
    """The log format: ``value`` if given, else ``$ZHENGAI_LOG_FORMAT``, else text."""
    chosen = (value or os.environ.get("ZHENGAI_LOG_FORMAT") or "text").strip().lower()
    if chosen not in LOG_FORMATS:
        raise ValueError(f"日志格式无效 (log format) {chosen!r}: 可选 {', '.join(LOG_FORMATS)}")
    return chosen


def install_log_policy(logger: logging.Logger | None = None, fmt: str | None = None) -> ClientLogLimiter:
    """Mask personal data in every record, and limit Kafka client lines at every handler of
    ``logger`` (default: the root logger); with the JSON format (``fmt`` or
    ``$ZHENGAI_LOG_FORMAT``) every such handler writes JSON lines. Idempotent; returns the
    process's limiter."""
    install_log_masking()
    logger = logger or logging.getLogger()
    json_lines = log_format(fmt) == "json"
    for handler in logger.handlers:
        if _LIMITER not in handler.filters:
            handler.addFilter(_LIMITER)
        if json_lines and not isinstance(handler.formatter, JsonFormatter):
            handler.setFormatter(JsonFormatter())
    return _LIMITER
