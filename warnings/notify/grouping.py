"""Grouping per recipient, and the daily digest.

A group is one channel × one recipient (× digest or not). Like Alertmanager: a new group waits
``group_wait`` for more notices, then sends everything it has in one message; later notices for
the same group go out together at most every ``group_interval``. Notices that already waited
(a retry after a failure, the end of a mute window, a rate-limit slot, the digest hour) go as
soon as they are due and take whatever else of their group is ready along. A group with more
than ``max_items`` ready notices, or more than the sink's byte budget, is split into several
messages. Digest notices wait for the next digest hour (local time) and go as one message.
All pure: time enters as ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from zhengai.warnings.notify.config import RoutePolicy
from zhengai.warnings.notify.pending import Pending

__all__ = ["group_key", "wants_digest", "next_digest", "ready_at", "due_now", "pack"]

T = TypeVar("T")


def group_key(channel: str, recipient_id: str | None, digest: bool) -> str:
    return f"{channel}|{recipient_id or '-'}" + ("|digest" if digest else "")


def wants_digest(route: RoutePolicy, *, band: str, kind: str) -> bool:
    d = route.digest
    if d is None:
        return False
    if d.bands is not None and band not in {b.value for b in d.bands}:
        return False
    return d.kinds is None or kind in d.kinds


def next_digest(after: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The first digest hour strictly after ``after``."""
    local = after.astimezone(tz)
    candidate = datetime.combine(local.date(), at, tzinfo=tz)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=tz)
    return candidate


def ready_at(p: Pending, route: RoutePolicy) -> datetime:
    return p.next_attempt_at if p.next_attempt_at is not None else p.admitted_at + route.group_wait


def due_now(items: Sequence[Pending], last_flush: datetime | None, route: RoutePolicy, now: datetime) -> list[Pending]:
    """The notices of one group to send at ``now`` (possibly none)."""
    ready = [p for p in items if ready_at(p, route) <= now]
    if not ready:
        return []
    waited = any(p.next_attempt_at is not None for p in ready)
    if last_flush is None or waited or now >= last_flush + route.group_interval:
        return sorted(ready, key=lambda p: (p.admitted_at, p.outbox_id))
    return []


def pack(items: Sequence[T], *, max_items: int, max_bytes: int | None, size: Callable[[T], int]) -> list[list[T]]:
    """Split into messages of at most ``max_items`` notices and about ``max_bytes`` (a single
    notice larger than the budget still goes, alone; the sink cuts it)."""
    out: list[list[T]] = []
    current: list[T] = []
    used = 0
    for item in items:
        n = size(item)
        if current and (len(current) >= max_items or (max_bytes is not None and used + n > max_bytes)):
            out.append(current)
            current, used = [], 0
        current.append(item)
        used += n
    if current:
        out.append(current)
    return out
