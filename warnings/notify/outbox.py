"""Persistence of the notification pipeline over the warning store (all of its SQL is here).

Reads the outbox rows the warning service wrote (with their warning event and warning) and keeps
the pipeline's own state in ``notify_*`` tables (``notify_schema.py``). The outbox row's
``status`` stays the contract with the rest of the system: ``pending`` until the pipeline has
sent it (``sent``), given up on it (``failed``, fatal error) or suppressed it (``suppressed``,
inhibited and the warning is over). Each send is recorded in one transaction after the sink
returned, so delivery is at least once: a crash between the send and the commit re-sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from zhengai.ingest.privacy import mask_text
from zhengai.ingest.records import period_kind, period_sort_key
from zhengai.warnings.notify.base import Contact
from zhengai.warnings.notify.config import RoutePolicy
from zhengai.warnings.notify.grouping import group_key, next_digest, wants_digest
from zhengai.warnings.notify.inhibit import Source
from zhengai.warnings.notify.pending import OPEN_STATES, Pending
from zhengai.warnings.notify.ratelimit import RateLimit, SlidingWindow
from zhengai.warnings.notify_schema import (
    AttemptRow,
    BucketRow,
    DeliveryRow,
    GroupRow,
    MessageRow,
    NotifyLogRow,
)
from zhengai.warnings.schema import OutboxRow, PersonRow, VerdictRow, WarningEventRow, WarningRow

__all__ = [
    "admit",
    "load_pending",
    "inhibition_sources",
    "announced",
    "earlier_inhibited",
    "save_states",
    "last_flushes",
    "rate_window",
    "contacts",
    "trends",
    "record_sent",
    "record_failure",
    "requeue_failed",
    "last_announced",
    "open_deliveries",
    "defer",
    "active_warnings",
    "enqueue_followup",
]

_CHUNK = 500
NOT_ROUTED = "not routed to this channel (route.match)"


def _chunks(items: Sequence, n: int = _CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def admit(s: Session, routes: Mapping[str, RoutePolicy], now: datetime, tz: ZoneInfo) -> int:
    """Take new pending outbox rows of our channels into the pipeline. A row the channel's route
    does not match is suppressed there; digest notices get the next digest hour as their
    earliest time."""
    q = (
        select(
            OutboxRow.id,
            OutboxRow.channel,
            OutboxRow.recipient_id,
            WarningEventRow.warning_id,
            WarningEventRow.kind,
            WarningEventRow.to_band,
            WarningRow.level,
        )
        .join(WarningEventRow, WarningEventRow.id == OutboxRow.event_id)
        .join(WarningRow, WarningRow.id == WarningEventRow.warning_id)
        .outerjoin(DeliveryRow, DeliveryRow.outbox_id == OutboxRow.id)
        .where(OutboxRow.status == "pending", OutboxRow.channel.in_(list(routes)), DeliveryRow.outbox_id.is_(None))
        .order_by(OutboxRow.id)
    )
    n, unrouted = 0, []
    for oid, channel, recipient, warning_id, kind, band, level in s.execute(q).all():
        route = routes[channel]
        routed = route.match is None or route.match.accepts(band=band, level=level, kind=kind)
        digest = routed and wants_digest(route, band=band, kind=kind)
        s.add(
            DeliveryRow(
                outbox_id=oid,
                channel=channel,
                recipient_id=recipient,
                warning_id=warning_id,
                group_key=group_key(channel, recipient, digest),
                digest=digest,
                state="queued" if routed else "suppressed",
                reason=None if routed else NOT_ROUTED,
                admitted_at=now,
                finished_at=None if routed else now,
                next_attempt_at=next_digest(now, route.digest.at, tz) if digest and route.digest else None,
                attempts=0,
            )
        )
        if not routed:
            unrouted.append(oid)
        n += 1
    for chunk in _chunks(unrouted):
        s.execute(update(OutboxRow).where(OutboxRow.id.in_(chunk)).values(status="suppressed", last_error=NOT_ROUTED))
    return n


def load_pending(s: Session, channels: Iterable[str], now: datetime, active: frozenset[str]) -> list[Pending]:
    """Every open delivery of these channels that is due at ``now`` (held ones always are)."""
    q = (
        select(DeliveryRow, OutboxRow, WarningEventRow, WarningRow)
        .join(OutboxRow, OutboxRow.id == DeliveryRow.outbox_id)
        .join(WarningEventRow, WarningEventRow.id == OutboxRow.event_id)
        .join(WarningRow, WarningRow.id == WarningEventRow.warning_id)
        .where(
            DeliveryRow.state.in_(OPEN_STATES),
            DeliveryRow.channel.in_(list(channels)),
            OutboxRow.status == "pending",
            (DeliveryRow.next_attempt_at.is_(None)) | (DeliveryRow.next_attempt_at <= now),
        )
        .order_by(DeliveryRow.admitted_at, DeliveryRow.outbox_id)
    )
    out = []
    for d, o, e, w in s.execute(q).all():
        out.append(
            Pending(
                outbox_id=o.id,
                channel=o.channel,
                recipient_id=o.recipient_id,
                subject=o.subject,
                body=o.body,
                warning_id=w.id,
                rule_id=w.rule_id,
                entity_id=w.entity_id,
                level=w.level,
                metric=w.metric,
                period=e.period,
                kind=e.kind,
                band=e.to_band,
                closing=e.to_status not in active,
                warning_active=w.status in active,
                state=d.state,
                group_key=d.group_key,
                digest=d.digest,
                admitted_at=d.admitted_at,
                next_attempt_at=d.next_attempt_at,
                attempts=d.attempts,
                inhibited_by=d.inhibited_by,
            )
        )
    return out


def inhibition_sources(s: Session, rule_ids: Sequence[str] | None, active: frozenset[str]) -> list[Source]:
    """Active warnings that could inhibit (of these rules; None: any rule)."""
    q = select(
        WarningRow.id, WarningRow.rule_id, WarningRow.entity_id, WarningRow.level, WarningRow.metric, WarningRow.band
    ).where(WarningRow.status.in_(list(active)))
    if rule_ids is not None:
        q = q.where(WarningRow.rule_id.in_(list(rule_ids)))
    return [Source(*row) for row in s.execute(q).all()]


def announced(s: Session, keys: Iterable[tuple[int, str, str | None]]) -> set[tuple[int, str, str]]:
    """Which (warning, channel, recipient) were sent at least once (recipient None → "")."""
    wanted = {(w, c, r or "") for w, c, r in keys}
    found: set[tuple[int, str, str]] = set()
    ids = sorted({w for w, _, _ in wanted})
    for chunk in _chunks(ids):
        for row in s.execute(
            select(NotifyLogRow.warning_id, NotifyLogRow.channel, NotifyLogRow.recipient_id).where(
                NotifyLogRow.warning_id.in_(chunk)
            )
        ):
            if tuple(row) in wanted:
                found.add(tuple(row))
    return found


def earlier_inhibited(s: Session, keys: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which (warning, channel) had a notice held by inhibition that never went out."""
    wanted = set(keys)
    ids = sorted({w for w, _ in wanted})
    found: set[tuple[int, str]] = set()
    for chunk in _chunks(ids):
        q = select(DeliveryRow.warning_id, DeliveryRow.channel).where(
            DeliveryRow.warning_id.in_(chunk), DeliveryRow.inhibited_by.is_not(None), DeliveryRow.state != "sent"
        )
        found.update((w, c) for w, c in s.execute(q).all() if (w, c) in wanted)
    return found


def save_states(s: Session, items: Sequence[Pending], reasons: Mapping[int, str | None], now: datetime) -> None:
    """Persist state, timing and reason of these deliveries; a suppressed one also closes its
    outbox row."""
    for p in items:
        values = dict(
            state=p.state,
            next_attempt_at=p.next_attempt_at,
            inhibited_by=p.inhibited_by,
            reason=reasons.get(p.outbox_id),
        )
        if p.state == "suppressed":
            values["finished_at"] = now
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id == p.outbox_id)
                .values(status="suppressed", last_error=reasons.get(p.outbox_id))
            )
        s.execute(update(DeliveryRow).where(DeliveryRow.outbox_id == p.outbox_id).values(**values))


def last_flushes(s: Session, keys: Iterable[str]) -> dict[str, datetime]:
    keys = sorted(set(keys))
    out: dict[str, datetime] = {}
    for chunk in _chunks(keys):
        out.update(
            {k: t for k, t in s.execute(select(GroupRow.key, GroupRow.last_flush_at).where(GroupRow.key.in_(chunk)))}
        )
    return out


def rate_window(s: Session, bucket: str, limit: RateLimit, now: datetime) -> SlidingWindow:
    since = now - limit.per
    calls = list(s.scalars(select(AttemptRow.at).where(AttemptRow.bucket == bucket, AttemptRow.at > since)))
    blocked = s.get(BucketRow, bucket)
    return SlidingWindow(limit, calls, blocked.blocked_until if blocked else None)


def contacts(s: Session, person_ids: Iterable[str]) -> dict[str, Contact]:
    ids = sorted({p for p in person_ids if p})
    out: dict[str, Contact] = {}
    for chunk in _chunks(ids):
        for r in s.scalars(select(PersonRow).where(PersonRow.id.in_(chunk))):
            out[r.id] = Contact(r.id, r.name, r.email, r.dingtalk_user_id, r.mobile)
    return out


def trends(s: Session, keys: Iterable[tuple[str, str, str]], n: int = 4) -> dict[tuple[str, str, str], list[float]]:
    """The last ``n`` values (one per period, oldest first) up to each (rule, entity, period)."""
    wanted = set(keys)
    by_rule: dict[str, set[str]] = {}
    for rule_id, entity_id, _ in wanted:
        by_rule.setdefault(rule_id, set()).add(entity_id)
    history: dict[tuple[str, str], dict[str, tuple[datetime, float]]] = {}
    for rule_id, entities in by_rule.items():
        for chunk in _chunks(sorted(entities)):
            q = select(VerdictRow.entity_id, VerdictRow.period, VerdictRow.value, VerdictRow.evaluated_at).where(
                VerdictRow.rule_id == rule_id, VerdictRow.entity_id.in_(chunk), VerdictRow.value.is_not(None)
            )
            for entity_id, period, value, at in s.execute(q).all():
                per = history.setdefault((rule_id, entity_id), {})
                if period not in per or at > per[period][0]:  # the latest verdict of a period wins
                    per[period] = (at, value)
    out = {}
    for rule_id, entity_id, period in wanted:
        per = history.get((rule_id, entity_id), {})
        try:
            kind = period_kind(period)
            periods = sorted(
                (p for p in per if period_kind(p) == kind and period_sort_key(p) <= period_sort_key(period)),
                key=period_sort_key,
            )
        except ValueError:
            periods = []
        out[(rule_id, entity_id, period)] = [per[p][1] for p in periods[-n:]]
    return out


def record_sent(
    s: Session,
    items: Sequence[Pending],
    *,
    channel: str,
    group: str,
    kind: str,
    subject: str,
    recipient_id: str | None,
    bucket: str | None,
    now: datetime,
) -> int:
    msg = MessageRow(
        channel=channel,
        recipient_id=recipient_id,
        group_key=group,
        kind=kind,
        notices=len(items),
        subject=subject[:200],
        sent_at=now,
    )
    s.add(msg)
    s.flush()
    ids = [p.outbox_id for p in items]
    for chunk in _chunks(ids):
        s.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(chunk))
            .values(status="sent", sent_at=now, attempts=OutboxRow.attempts + 1, last_error=None)
        )
        s.execute(
            update(DeliveryRow)
            .where(DeliveryRow.outbox_id.in_(chunk))
            .values(
                state="sent",
                message_id=msg.id,
                finished_at=now,
                reason=None,
                next_attempt_at=None,
                attempts=DeliveryRow.attempts + 1,
            )
        )
    for p in items:
        if p.warning_id is None:
            continue
        key = (p.warning_id, channel, p.recipient_id or "")
        log = s.get(NotifyLogRow, key)
        if log is None:
            s.add(
                NotifyLogRow(
                    warning_id=key[0],
                    channel=key[1],
                    recipient_id=key[2],
                    first_sent_at=now,
                    last_sent_at=now,
                    last_kind=p.kind,
                    sent_count=1,
                )
            )
            s.flush()
        else:
            log.last_sent_at, log.last_kind, log.sent_count = now, p.kind, log.sent_count + 1
    row = s.get(GroupRow, group)
    if row is None:
        s.add(GroupRow(key=group, last_flush_at=now))
    else:
        row.last_flush_at = now
    if bucket is not None:
        s.add(AttemptRow(bucket=bucket, at=now, ok=True))
    return msg.id


def record_failure(
    s: Session,
    items: Sequence[Pending],
    *,
    error: str,
    retryable: bool,
    next_at: datetime | None,
    bucket: str | None,
    block_until: datetime | None,
    now: datetime,
    counted: bool = True,
) -> None:
    """A failed send (``counted``) or a send not tried because the channel just failed."""
    ids = [p.outbox_id for p in items]
    bump = 1 if counted else 0
    for chunk in _chunks(ids):
        s.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(chunk))
            .values(
                status="pending" if retryable else "failed", last_error=error[:2000], attempts=OutboxRow.attempts + bump
            )
        )
        s.execute(
            update(DeliveryRow)
            .where(DeliveryRow.outbox_id.in_(chunk))
            .values(
                state="retry" if retryable else "failed",
                reason=error[:2000],
                next_attempt_at=next_at if retryable else None,
                attempts=DeliveryRow.attempts + bump,
                finished_at=None if retryable else now,
            )
        )
    if bucket is not None and counted:
        s.add(AttemptRow(bucket=bucket, at=now, ok=False))
    if bucket is not None and block_until is not None:
        row = s.get(BucketRow, bucket)
        if row is None:
            s.add(BucketRow(bucket=bucket, blocked_until=block_until, reason=error[:500]))
        elif block_until > row.blocked_until:
            row.blocked_until, row.reason = block_until, error[:500]


def requeue_failed(s: Session, now: datetime, channel: str | None = None) -> int:
    """Give fatally failed notifications another go (after someone fixed the channel's
    configuration or the directory). Returns how many."""
    q = select(DeliveryRow.outbox_id).where(DeliveryRow.state == "failed")
    if channel is not None:
        q = q.where(DeliveryRow.channel == channel)
    ids = list(s.scalars(q))
    for chunk in _chunks(ids):
        s.execute(update(OutboxRow).where(OutboxRow.id.in_(chunk)).values(status="pending"))
        s.execute(
            update(DeliveryRow)
            .where(DeliveryRow.outbox_id.in_(chunk))
            .values(state="retry", next_attempt_at=now, finished_at=None)
        )
    return len(ids)


def last_announced(s: Session, warning_ids: Iterable[int]) -> dict[int, datetime]:
    """When anything about each warning was last sent, on any channel to anyone."""
    ids = sorted(set(warning_ids))
    out: dict[int, datetime] = {}
    for chunk in _chunks(ids):
        q = (
            select(NotifyLogRow.warning_id, func.max(NotifyLogRow.last_sent_at))
            .where(NotifyLogRow.warning_id.in_(chunk))
            .group_by(NotifyLogRow.warning_id)
        )
        out.update({w: at for w, at in s.execute(q).all()})
    return out


def open_deliveries(s: Session, warning_ids: Iterable[int]) -> set[int]:
    """Warnings that still have a notification on its way (not sent, failed or suppressed)."""
    ids = sorted(set(warning_ids))
    found: set[int] = set()
    for chunk in _chunks(ids):
        q = (
            select(WarningEventRow.warning_id)
            .join(OutboxRow, OutboxRow.event_id == WarningEventRow.id)
            .where(and_(WarningEventRow.warning_id.in_(chunk), OutboxRow.status == "pending"))
        )
        found.update(s.scalars(q))
    return found


def defer(s: Session, items: Sequence[Pending], until: datetime, reason: str) -> None:
    """Not sent this run, not a failure: try again at ``until`` (rate limit, channel just failed)."""
    ids = [p.outbox_id for p in items]
    for chunk in _chunks(ids):
        s.execute(
            update(DeliveryRow).where(DeliveryRow.outbox_id.in_(chunk)).values(next_attempt_at=until, reason=reason)
        )


# --- follow-ups: reminders -------------------------------------------------------


def active_warnings(s: Session, active: frozenset[str], *, due_before: datetime | None = None) -> list[WarningRow]:
    """Warnings that still ask for action (with a due date before ``due_before``, if given)."""
    q = select(WarningRow).where(WarningRow.status.in_(list(active))).order_by(WarningRow.id)
    if due_before is not None:
        q = q.where(WarningRow.due_date.is_not(None), WarningRow.due_date <= due_before)
    return list(s.scalars(q))


def enqueue_followup(
    s: Session,
    w: WarningRow,
    *,
    kind: str,
    cause: str,
    reason: str,
    subject: str,
    body: str,
    recipient_id: str | None,
    channels: Sequence[str],
    now: datetime,
) -> WarningEventRow:
    """A follow-up (a reminder) as a warning event — the audit trail; ``cause``
    keeps it idempotent — and one outbox row per channel. The warning's status is left as it is."""
    event = WarningEventRow(
        warning_id=w.id,
        kind=kind,
        from_status=w.status,
        to_status=w.status,
        from_band=w.band,
        to_band=w.band,
        period=w.last_period,
        value=w.value,
        reason=reason,
        cause=cause,
        at=now,
    )
    s.add(event)
    s.flush()
    for channel in channels:
        s.add(
            OutboxRow(
                event_id=event.id,
                channel=channel,
                recipient_id=recipient_id,
                subject=mask_text(subject)[:200],
                body=mask_text(body),
                status="pending",
                created_at=now,
            )
        )
    return event
