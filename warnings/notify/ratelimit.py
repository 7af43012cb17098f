"""Per-channel rate limiting: a sliding window over the times we called the channel.

DingTalk and WeCom robots accept 20 messages a minute; past that DingTalk answers errcode 130101
and throttles the robot for ten minutes. So the pipeline asks the window *before* sending and
queues what does not fit; it never finds out from the error. The window is pure — the attempts
it counts are persisted by the pipeline (``notify_attempts``), so a restart inside a minute still
knows what it sent — and time only enters as ``now``, so a test can fast-forward it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["RateLimit", "SlidingWindow"]


@dataclass(frozen=True)
class RateLimit:
    messages: int
    per: timedelta

    def __post_init__(self) -> None:
        if self.messages < 1 or self.per <= timedelta(0):
            raise ValueError("a rate limit needs messages ≥ 1 and a positive period")


class SlidingWindow:
    """At most ``limit.messages`` calls in any half-open window ``(t - per, t]``.

    ``recent`` are earlier call times (any order; older ones are ignored). ``blocked_until`` is a
    cool-down the channel itself asked for (e.g. after a 130101)."""

    def __init__(self, limit: RateLimit, recent: Sequence[datetime] = (), blocked_until: datetime | None = None):
        self.limit = limit
        self.calls = sorted(recent)
        self.blocked_until = blocked_until

    def next_free(self, now: datetime) -> datetime:
        """``now`` if a call may be made now, else the earliest time one may."""
        earliest = now
        if self.blocked_until is not None and self.blocked_until > earliest:
            earliest = self.blocked_until
        # calls inside (earliest - per, earliest]
        start = bisect_right(self.calls, earliest - self.limit.per)
        inside = self.calls[start:]
        if len(inside) < self.limit.messages:
            return earliest
        # the window frees when the oldest call that keeps it full drops out
        return inside[len(inside) - self.limit.messages] + self.limit.per

    def record(self, at: datetime) -> None:
        self.calls.insert(bisect_right(self.calls, at), at)

    def copy(self) -> SlidingWindow:
        return SlidingWindow(self.limit, list(self.calls), self.blocked_until)

    def block(self, until: datetime) -> None:
        if self.blocked_until is None or until > self.blocked_until:
            self.blocked_until = until
