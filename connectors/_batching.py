"""One stream during one run: rows gathered into a batch, the batch delivered (a transient failure
retried within the run), and only then the bookmark stored — or, during a lookback re-send, the
bookmark marked with how far the re-send got. Used by :func:`connectors.base.run_connector`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from zhengai.ingest.records import DeadLetter
from zhengai.ingest.retrying import Backoff, retrying, stop_after_delay

from . import _metrics
from .errors import DeliveryError, is_retryable

if TYPE_CHECKING:
    from .base import BookmarkStore, Connector, Delivery, Record, Row, Stream, StreamStats

__all__ = ["StreamRun", "NotDelivered"]

log = logging.getLogger("zhengai.connectors")


def _retryable_delivery(exc: BaseException) -> bool:
    # A delivery that does not say otherwise (a broker outage, a dropped connection) is assumed
    # transient; DeliveryError subclasses say which.
    return is_retryable(exc) or not isinstance(exc, DeliveryError)


_DELIVERY_BACKOFF = Backoff(0.5, 5.0, jitter=0.1)


class NotDelivered(Exception):
    """The delivery raised: the batch was not acknowledged."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class StreamRun:
    """The state of one stream during one run: pending records and the bookmark to store."""

    def __init__(
        self,
        connector: Connector,
        stream: Stream,
        delivery: Delivery,
        bookmarks: BookmarkStore,
        stats: StreamStats,
        on_batch: Callable[[str, int], None] | None,
        patience: float = 0.0,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.connector, self.stream, self.delivery = connector, stream, delivery
        self.patience, self.should_stop = patience, should_stop
        self.bookmarks, self.stats, self.on_batch = bookmarks, stats, on_batch
        self.records: list[Record] = []
        self.pairs: list[tuple[Row, Sequence[Record]]] = []
        self.rows = 0
        self.acked = stats.bookmark
        self.pending = stats.bookmark
        self._order: Any = None  # cursor_order(pending), computed once
        self.resend: str | None = None  # cursor of the last re-sent row (at or before pending)
        labels = (connector.name, stream.name)  # metric children resolved once, not per row
        self._sent = _metrics.RECORDS_SENT.labels(*labels)
        self._rejected = _metrics.ROWS.labels(*labels, "rejected")

    def _deliver(self, records: list[Record]) -> None:
        """Deliver; a transient failure (the broker restarting) is retried within the run for up
        to ``patience`` seconds, backing off to 5 s, so the run goes on when the broker returns.
        Records carry stable keys: a batch delivered twice is harmless."""
        if self.patience <= 0:
            self.delivery.deliver(records)
            return
        stop: Any = stop_after_delay(self.patience)
        if self.should_stop is not None:
            should_stop = self.should_stop
            stop = stop | (lambda _state: should_stop())
        retrying(
            _retryable_delivery,
            _DELIVERY_BACKOFF,
            stop=stop,
            log=log,
            what=f"{self.stream.source}: delivery failed",
            level=logging.WARNING,
        )(self.delivery.deliver, records)

    def _pending_order(self) -> Any:
        if self._order is None and self.pending is not None:
            self._order = self.stream.cursor_order(self.pending)
        return self._order

    def add(self, row: Row, records: list[Record]) -> None:
        self.rows += 1
        self.records.extend(records)
        self.pairs.append((row, records))
        if not self.stream.cursor_ordered:
            self._consider(row)

    def _consider(self, row: Row) -> bool:
        """Move the pending bookmark to ``row``'s cursor if it is ahead; a row at or behind it is
        a re-sent one (its cursor is the re-send position). False if the row has no cursor."""
        try:
            cursor = self.stream.cursor_of(row)
            if cursor is None:
                return False
            order = self.stream.cursor_order(cursor)
            if self.pending is None or order > self._pending_order():
                self.pending, self._order, self.resend = cursor, order, None
            else:
                self.resend = cursor
            return True
        except (KeyError, TypeError, ValueError) as exc:
            # A row whose cursor value is unusable cannot move the bookmark; map() has already
            # dead-lettered it or kept it, and the rows around it still advance the bookmark.
            log.warning("%s: row without a usable cursor (%s)", self.stream.source, type(exc).__name__)
            return False

    def flush(self, final: bool = False) -> None:
        """Deliver the batch; only then store the bookmark (commit after delivery). ``final``: the
        read ended, so a re-send marker is cleared."""
        if self.rows == 0 and not final:
            return
        if self.stream.cursor_ordered:  # ascending: the last row with a cursor is the batch's highest
            for row, _ in reversed(self.pairs):
                if self._consider(row):
                    break
        if self.records:
            try:
                self._deliver(self.records)
            except Exception as exc:  # not acknowledged: nothing below may happen
                raise NotDelivered(f"{type(exc).__name__}: {exc}", _retryable_delivery(exc)) from exc
        if self.rows:
            rejected = sum(isinstance(r, DeadLetter) for r in self.records)
            sent = len(self.records) - rejected
            self.stats.sent += sent
            self.stats.rejected += rejected
            self.stats.batches += 1
            self._sent.inc(sent)
            self._rejected.inc(rejected)
        store = self.pending
        if store is not None and (self.resend is not None or final):
            # During a re-send the bookmark stays, marked with how far the re-send got.
            store = self.stream.resend_cursor(store, None if final else self.resend) or store
        if store is not None and store != self.acked:
            self.bookmarks.put(self.connector.name, self.stream.name, store)
            self.acked = self.stats.bookmark = store
        pairs, self.records, self.pairs, self.rows = self.pairs, [], [], 0
        if not pairs:
            return
        self.stream.after_delivery(pairs)
        if self.on_batch is not None:
            self.on_batch(self.stream.source, sum(len(r) for _, r in pairs))
