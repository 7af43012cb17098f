"""The connector framework: streams declare, the runner owns batching, bookmarks and dead letters.

A :class:`Connector` is a named set of :class:`Stream` s. A stream declares its ``name``,
``primary_key`` and ``cursor_field`` (``None`` = full refresh) and implements two hooks:

* ``read(cursor)`` — called once per run with the last *acknowledged* bookmark (or ``None``);
  yields source rows, for incremental streams in ascending cursor order.
* ``map(row)`` — called once per row; returns the records for that row (possibly none). Raising
  :class:`MappingError` or a pydantic ``ValidationError`` turns the row into a ``DeadLetter``.
* ``after_delivery(delivered)`` (optional) — called after a batch was acknowledged and its
  bookmark stored, with the batch's rows and their records (a file drop moves finished files).

:func:`run_connector` reads each stream in batches of rows, maps them, hands every batch to the
:class:`Delivery` and stores the bookmark only after ``deliver()`` returned. A failing source
or delivery stops that stream (its bookmark stays at the last acknowledged batch) and is
reported in :class:`RunReport`; the other streams still run.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import ValidationError

from zhengai.ingest.logs import log_context
from zhengai.ingest.privacy import dead_letter_raw_kept, row_json
from zhengai.ingest.records import (
    AttendanceEvent,
    DeadLetter,
    Entity,
    FinanceEvent,
    GradeEvent,
    Observation,
    Person,
)

from . import _metrics
from ._batching import NotDelivered, StreamRun
from .errors import (
    FatalSourceError,
    MappingError,
    RetryableSourceError,
    SourceError,
)
from .retry import RetryPolicy

__all__ = [
    "Record",
    "Row",
    "Delivery",
    "BookmarkStore",
    "MemoryBookmarks",
    "MappingError",
    "SourceError",
    "RetryableSourceError",
    "FatalSourceError",
    "RetryPolicy",
    "Reject",
    "Stream",
    "Connector",
    "StreamStats",
    "RunReport",
    "run_connector",
    "map_row",
    "validation_reason",
    "dump_cursor",
]

Record = Entity | Person | Observation | AttendanceEvent | GradeEvent | FinanceEvent | DeadLetter
Row = Mapping[str, Any]

log = logging.getLogger("zhengai.connectors")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def dump_cursor(value: Mapping[str, Any]) -> str:
    """Serialize a structured cursor compactly and deterministically."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


class Delivery(Protocol):
    """Where records go (Kafka producer, in-process queue, a list in tests)."""

    def deliver(self, records: Sequence[Record]) -> None:
        """Returning means acknowledged (e.g. Kafka acks=all); raising means not delivered."""
        ...


@runtime_checkable
class BookmarkStore(Protocol):
    """Persists one serialized cursor per (connector, stream)."""

    def get(self, connector: str, stream: str) -> str | None: ...

    def put(self, connector: str, stream: str, value: str) -> None: ...


class MemoryBookmarks:
    """A dict-backed BookmarkStore (embedded runner, tests)."""

    def __init__(self, initial: Mapping[tuple[str, str], str] | None = None) -> None:
        self._values: dict[tuple[str, str], str] = dict(initial or {})

    def get(self, connector: str, stream: str) -> str | None:
        return self._values.get((connector, stream))

    def put(self, connector: str, stream: str, value: str) -> None:
        self._values[(connector, stream)] = value

    def items(self) -> dict[tuple[str, str], str]:
        return dict(self._values)

    def __repr__(self) -> str:
        return f"MemoryBookmarks({len(self._values)} bookmarks)"


@dataclass(frozen=True)
class Reject:
    """Returned by ``map`` beside good records when one part of a row is bad but the rest is
    usable; the runner turns it into a DeadLetter (masked raw row, clock, source)."""

    reason: str


class Stream(ABC):
    """One table / endpoint / file of a source.

    Subclasses declare ``connector`` (the owning connector's name), ``name``, ``primary_key``
    and ``cursor_field``; ``personal_fields`` names extra keys to mask in dead letters (the
    usual 身份证号/mobile/phone keys are always masked).
    """

    connector: ClassVar[str]
    name: ClassVar[str]
    primary_key: ClassVar[tuple[str, ...]]
    cursor_field: ClassVar[str | None] = None
    personal_fields: ClassVar[tuple[str, ...]] = ()

    @property
    def source(self) -> str:
        """``<connector>.<stream>``: the ``source`` of every record and dead letter it emits."""
        return f"{self.connector}.{self.name}"

    @abstractmethod
    def read(self, cursor: str | None) -> Iterable[Row]:
        """Called once per run with the last acknowledged bookmark (``None`` on the first run
        and always for full refresh). Incremental streams yield rows in ascending cursor order;
        re-reading some rows (a lookback window) is fine because records carry stable keys."""

    @abstractmethod
    def map(self, row: Row) -> Sequence[Record | Reject]:
        """Called once per row. Return the records (may be empty to skip the row). Raise
        MappingError (or let a pydantic ValidationError escape) for a bad row; return a
        :class:`Reject` among the records when only part of the row is bad."""

    def cursor_of(self, row: Row) -> str | None:
        """The serialized bookmark a row advances to; ``None`` for full-refresh streams."""
        if self.cursor_field is None:
            return None
        value = row.get(self.cursor_field)
        return None if value is None else str(value)

    def cursor_order(self, cursor: str) -> Any:
        """A sort key for serialized cursors, so a re-read (lookback) never moves the bookmark
        backwards. The default compares the strings."""
        return cursor

    def cursor_time(self, cursor: str) -> datetime | None:
        """The source time a bookmark stands for, if it has one (health reports the lag
        ``now - cursor_time``). The default: none."""
        return None

    # True when ``read`` yields rows in ascending cursor order with no exceptions (a keyset
    # query): the runner then computes the cursor of each batch's last row only.
    cursor_ordered: ClassVar[bool] = False

    def resend_cursor(self, bookmark: str, position: str | None) -> str | None:
        """Called after each acknowledged batch of a re-send (rows at or before ``bookmark``, as
        a lookback window reads them) with the cursor of the batch's last row, and with ``None``
        when the read ended. Return ``bookmark`` marked with ``position`` so that a run stopped
        during a long re-send resumes it there (``None`` position: the bookmark unmarked), or
        ``None`` if this stream cannot resume a re-send (the default)."""
        return None

    def after_delivery(self, delivered: Sequence[tuple[Row, Sequence[Record]]]) -> None:  # noqa: B027 — optional hook
        """Called after a batch was acknowledged and its bookmark stored, with each source row
        of the batch and the records it became (dead letters included). Never called by
        ``connectors check``. The default does nothing."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.source}>"


class Connector(ABC):
    """A campus system: a name and its streams. ``close()`` releases clients it created."""

    name: ClassVar[str]
    streams: Sequence[Stream]

    def close(self) -> None:  # noqa: B027 — optional hook: most connectors hold nothing to release
        """Release resources (HTTP clients, database engines). Safe to call twice."""

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {', '.join(s.name for s in self.streams)}>"


@dataclass
class StreamStats:
    """What one stream did in one run. ``read`` counts source rows; ``sent`` counts acknowledged
    records other than dead letters; ``rejected`` counts acknowledged dead letters."""

    read: int = 0
    sent: int = 0
    rejected: int = 0
    batches: int = 0
    bookmark: str | None = None
    error: str | None = None
    error_kind: str | None = None  # "retryable" or "fatal" when error is set
    stopped: bool = False  # asked to stop between batches; the rest is read next run


@dataclass
class RunReport:
    connector: str
    started: datetime
    finished: datetime | None = None
    streams: dict[str, StreamStats] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(s.error is None for s in self.streams.values())

    @property
    def errors(self) -> dict[str, str]:
        return {name: s.error for name, s in self.streams.items() if s.error is not None}

    @property
    def retryable(self) -> bool:
        """Failed, and every failure may pass if tried again soon (backoff, not the next tick)."""
        kinds = {s.error_kind for s in self.streams.values() if s.error is not None}
        return bool(kinds) and kinds == {"retryable"}

    def total(self, what: str) -> int:
        """Sum of one counter (``read``, ``sent``, ``rejected``, ``batches``) over all streams."""
        return sum(getattr(s, what) for s in self.streams.values())


def validation_reason(exc: ValidationError) -> str:
    """``Entity invalid: parent_id: String should match pattern …`` — fields and why, never the
    input values (they may be personal data)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(record)"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return f"{exc.title} invalid: " + "; ".join(parts)


def _dead_letter(stream: Stream, row: Row, reason: str, now: datetime) -> DeadLetter:
    # Masked by the stream's personal field names here and by pattern in DeadLetter; the row as
    # it came only where ZHENGAI_DEAD_LETTER_RAW=1 is configured.
    raw = (
        row_json(row, stream.personal_fields)
        if not dead_letter_raw_kept()
        else json.dumps(row, ensure_ascii=False, default=str)
    )
    return DeadLetter(source=stream.source, reason=reason, raw=raw, at=now)


def map_row(stream: Stream, row: Row, now: datetime) -> list[Record]:
    """``stream.map(row)``, turning a bad row into a DeadLetter instead of an exception."""
    try:
        return [_dead_letter(stream, row, r.reason, now) if isinstance(r, Reject) else r for r in stream.map(row)]
    except MappingError as exc:
        reason = str(exc)
    except ValidationError as exc:
        reason = validation_reason(exc)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        # The row's shape does not fit the mapping (missing column, wrong type). Only the exception
        # type and the column name are kept: a ValueError message may quote personal data.
        detail = f" {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else ""
        reason = f"row does not fit the mapping ({type(exc).__name__}{detail})"
        log.warning("%s: unexpected %s while mapping a row", stream.source, type(exc).__name__)
    return [_dead_letter(stream, row, reason, now)]


def run_connector(
    connector: Connector,
    delivery: Delivery,
    bookmarks: BookmarkStore,
    *,
    batch_size: int = 1000,
    on_batch: Callable[[str, int], None] | None = None,
    now: Callable[[], datetime] = _utcnow,
    should_stop: Callable[[], bool] | None = None,
    delivery_patience: float = 0.0,
) -> RunReport:
    """Run every stream of ``connector`` once, from its stored bookmark to the end of the source.

    ``delivery_patience``: seconds a transient delivery failure (a broker outage) is retried
    within the run before the stream stops with the error (0: not retried here).

    ``batch_size`` counts source rows; the records of a batch go to ``delivery.deliver`` in one
    call. ``on_batch(source, n_records)`` is called after each acknowledged batch. A stream whose
    source or delivery fails stops there; the error is in ``report.streams[name].error`` and the
    next streams still run. ``should_stop()`` is asked after every acknowledged batch (a
    shutdown): when true, the run ends there and the rest is read next time.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = RunReport(connector=connector.name, started=now())
    for stream in connector.streams:
        if stream.connector != connector.name:
            raise ValueError(
                f"stream {stream.name!r} belongs to {stream.connector!r}, not to connector {connector.name!r}"
            )
        if should_stop is not None and should_stop():
            break
        stats = StreamStats(bookmark=bookmarks.get(connector.name, stream.name))
        report.streams[stream.name] = stats
        with log_context(connector=connector.name, stream=stream.name):  # JSON logs say what a line concerns
            _run_stream(
                connector, stream, delivery, bookmarks, stats, batch_size, on_batch, now, should_stop, delivery_patience
            )
    report.finished = now()
    log.info(
        "connector %s finished: read=%d sent=%d rejected=%d errors=%d",
        connector.name,
        report.total("read"),
        report.total("sent"),
        report.total("rejected"),
        len(report.errors),
        extra={"connector": connector.name},
    )
    return report


def _run_stream(
    connector: Connector,
    stream: Stream,
    delivery: Delivery,
    bookmarks: BookmarkStore,
    stats: StreamStats,
    batch_size: int,
    on_batch: Callable[[str, int], None] | None,
    now: Callable[[], datetime],
    should_stop: Callable[[], bool] | None = None,
    patience: float = 0.0,
) -> None:
    run = StreamRun(connector, stream, delivery, bookmarks, stats, on_batch, patience, should_stop)
    labels = (connector.name, stream.name)
    read_counter = _metrics.ROWS.labels(*labels, "read")
    rows: Iterator[Row] = iter(())
    try:
        rows = iter(stream.read(stats.bookmark))
        for row in rows:
            stats.read += 1
            run.add(row, map_row(stream, row, now()))
            if run.rows >= batch_size:
                read_counter.inc(run.rows)
                run.flush()
                if should_stop is not None and should_stop():
                    stats.stopped = True
                    break
        else:
            read_counter.inc(run.rows)
            run.flush(final=True)
    except NotDelivered as exc:
        stats.error = f"delivery failed: {exc}"
        stats.error_kind = "retryable" if exc.retryable else "fatal"
    except SourceError as exc:
        # Retryable errors arrive here only after the source's RetryPolicy gave up.
        kind = "retryable" if isinstance(exc, RetryableSourceError) else "fatal"
        stats.error = f"source failed ({kind}): {exc}"
        stats.error_kind = kind
    except Exception as exc:  # noqa: BLE001 — one broken stream must not stop the others
        stats.error = f"unexpected {type(exc).__name__}: {exc}"
        stats.error_kind = "fatal"
        log.exception("%s: unexpected error", stream.source)
    finally:
        # A generator stopped early (delivery failed) releases its cursor/connection now.
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    if stats.error is None:
        _metrics.STREAM_RUNS.labels(*labels, "stopped" if stats.stopped else "ok").inc()
        log.info(
            "%s: read=%d sent=%d rejected=%d bookmark=%s%s",
            stream.source,
            stats.read,
            stats.sent,
            stats.rejected,
            stats.bookmark,
            " (stopped on request)" if stats.stopped else "",
        )
    else:
        result = "delivery_error" if stats.error.startswith("delivery") else "source_error"
        _metrics.STREAM_RUNS.labels(*labels, result).inc()
        log.error("%s: stopped at bookmark %s: %s", stream.source, stats.bookmark, stats.error)
