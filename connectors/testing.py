"""Fakes shipped with the code, for tests of connectors and of what consumes them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from zhengai.ingest.records import DeadLetter

from .base import Record

__all__ = ["ListDelivery", "DeliveryFailed"]

R = TypeVar("R")


class DeliveryFailed(ConnectionError):
    """What ListDelivery raises when told to fail (stands in for a broker outage)."""


class ListDelivery:
    """An in-memory Delivery. ``fail(call_number, records)`` → True makes that call raise
    (call numbers start at 1), e.g. ``ListDelivery(fail=lambda n, _: n == 2)``."""

    def __init__(self, fail: Callable[[int, Sequence[Record]], bool] | None = None) -> None:
        self.fail = fail
        self.calls = 0
        self.batches: list[list[Record]] = []

    def deliver(self, records: Sequence[Record]) -> None:
        self.calls += 1
        if self.fail is not None and self.fail(self.calls, records):
            raise DeliveryFailed(f"simulated delivery failure on call {self.calls}")
        self.batches.append(list(records))

    @property
    def records(self) -> list[Record]:
        return [r for batch in self.batches for r in batch]

    def of(self, kind: type[R]) -> list[R]:
        return [r for r in self.records if isinstance(r, kind)]

    @property
    def dead_letters(self) -> list[DeadLetter]:
        return self.of(DeadLetter)

    def keys(self) -> set[str]:
        """Idempotency keys of the delivered records that have one."""
        return {k for r in self.records if isinstance(k := getattr(r, "key", None), str)}
