"""The notification pipeline: small stages between the outbox and the sinks.

    outbox ─admit─▶ inhibit ─▶ silence ─▶ calendar ─▶ group ─▶ rate limit ─▶ send ─▶ retry
                     hold/       delay to the end      wait/     queue for     sink   backoff via
                     suppress    of the window         interval  a free slot   says   the outbox

``run(now)`` is one pass: it admits new outbox rows, lets each due notification through the
stages, and sends what is ready, one message per group chunk, oldest first. Everything it
decides is persisted (``outbox.py``), so a restart continues where the last pass stopped and
never re-sends what was sent. ``tick(now)`` first enqueues due reminders (``reminders.py``).
Time only enters as ``now``: tests drive it with a fake clock.

A retryable failure reschedules the message's notices with backoff and pauses the channel for
the rest of the pass (one probe per backoff, not a hundred timeouts); a fatal one parks them as
failed with the error. Nothing is ever dropped for a retryable reason.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from zhengai.ingest.directory import Directory
from zhengai.rules.loader import RuleSet
from zhengai.warnings.notify import _metrics as metrics
from zhengai.warnings.notify import outbox
from zhengai.warnings.notify.base import Contact, Notice, Sink, SinkError
from zhengai.warnings.notify.budget import apply_budgets
from zhengai.warnings.notify.compose import Composer
from zhengai.warnings.notify.config import NotifyConfig, RoutePolicy
from zhengai.warnings.notify.grouping import due_now, pack
from zhengai.warnings.notify.inhibit import HOLD, SUPPRESS, decide, find_inhibitor
from zhengai.warnings.notify.pending import Pending
from zhengai.warnings.notify.ratelimit import SlidingWindow
from zhengai.warnings.notify.silence import active_silences, reason_of, silenced_until
from zhengai.warnings.notify_schema import create_notify_schema

__all__ = ["Channel", "Counts", "RunReport", "TickReport", "NotifyPipeline"]

log = logging.getLogger(__name__)
_LOCK_KEY = 0x7A67_4E54  # "zgNT": the notifier's advisory lock


@dataclass
class Channel:
    sink: Sink
    route: RoutePolicy = field(default_factory=RoutePolicy)

    @property
    def name(self) -> str:
        return self.sink.channel


@dataclass
class Counts:
    messages: int = 0  # messages the sink accepted
    sent: int = 0  # notices (outbox rows) in them
    retry_later: int = 0  # notices rescheduled after a retryable failure
    failed: int = 0  # notices parked as failed (fatal)
    held: int = 0  # inhibited, waiting for the source warning to clear
    muted: int = 0  # delayed by a silence or a calendar window
    suppressed: int = 0  # inhibited and the warning is over: never sent
    rate_limited: int = 0  # waiting for room under the channel's rate limit


@dataclass
class RunReport:
    admitted: int = 0
    channels: dict[str, Counts] = field(default_factory=dict)

    def of(self, channel: str) -> Counts:
        return self.channels.setdefault(channel, Counts())

    @property
    def total(self) -> Counts:
        out = Counts()
        for c in self.channels.values():
            for name in vars(out):
                setattr(out, name, getattr(out, name) + getattr(c, name))
        return out


@dataclass
class TickReport:
    reminders: int = 0
    run: RunReport = field(default_factory=RunReport)
    silences_ended: int = 0  # expiry notices sent to silences' authors


@dataclass
class _Batch:
    channel: Channel
    group: str
    digest: bool
    items: list[Pending]


class NotifyPipeline:
    """``store`` is the warning store (only its engine is used). ``directory`` and ``rules`` are
    read through callables, like the warning service's, for entity lineage (inhibition scope),
    contacts, names and units."""

    def __init__(
        self,
        store: Any,
        channels: Sequence[Channel],
        config: NotifyConfig | None = None,
        *,
        directory: Callable[[], Directory] | None = None,
        rules: Callable[[], RuleSet] | None = None,
        template_dir: Any = None,
    ):
        self.engine = store.engine
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        create_notify_schema(self.engine)
        self.store = store
        self.channels = {c.name: c for c in channels}
        self.config = config or NotifyConfig()
        self._directory = directory
        self._rules = rules
        self.composer = Composer(self.config.links, self.config.tz, unit_of=self.unit_of, template_dir=template_dir)

    @classmethod
    def from_config(
        cls,
        store: Any,
        config: NotifyConfig,
        *,
        directory: Callable[[], Directory] | None = None,
        rules: Callable[[], RuleSet] | None = None,
        sink_extra: Mapping[str, dict] | None = None,
    ) -> NotifyPipeline:
        """Build every configured channel's sink. ``sink_extra`` passes per-channel test seams
        (e.g. ``{"robot": {"transport": httpx.MockTransport(...)}}``)."""
        extra = sink_extra or {}
        channels = [Channel(c.build(**extra.get(name, {})), c.route) for name, c in config.channels.items()]
        return cls(store, channels, config, directory=directory, rules=rules)

    def session(self) -> Session:
        return self._session()

    def close(self) -> None:
        for c in self.channels.values():
            c.sink.close()

    def directory(self) -> Directory | None:
        return self._directory() if self._directory is not None else None

    def unit_of(self, rule_id: str) -> str:
        rule = self._rules().rules.get(rule_id) if self._rules else None
        return rule.unit if rule else ""

    # --- one pass ---------------------------------------------------------------------------
    def tick(self, now: datetime) -> TickReport:
        """Reminders due at ``now``, then a pass of the pipeline. (Escalation is the lifecycle's
        tick, ``WarningService.tick(now)``: call it first, and its notices go out in this pass.)"""
        from zhengai.warnings.notify.reminders import remind

        report = TickReport()
        with self._exclusive() as mine:
            if not mine:
                return report
            if self.config.reminders.repeat_interval is not None:
                report.reminders = remind(self, now, list(self.channels))
            report.run = self._run(now)
            from zhengai.warnings.notify.silences import expiry_notices

            report.silences_ended = expiry_notices(self, now)  # tell authors their silence ended
        return report

    def serve(
        self,
        clock: Callable[[], datetime],
        stop: threading.Event,
        *,
        every: timedelta = timedelta(seconds=15),
        before: Callable[[datetime], object] | None = None,
    ) -> None:
        """The notifier's loop: ``before(now)`` (e.g. ``WarningService.tick``: escalation and
        staleness), then ``tick(now)``, every ``every`` until ``stop`` is set. A pass that fails
        (database away) is logged and tried again next time; nothing is lost, it is all in the
        outbox."""
        while not stop.is_set():
            now = clock()
            try:
                if before is not None:
                    before(now)
                self.tick(now)
            except Exception:  # noqa: BLE001 — keep the notifier alive; the next pass retries
                log.exception("notification pass at %s failed; retrying in %s", now.isoformat(), every)
            stop.wait(every.total_seconds())

    @contextmanager
    def _exclusive(self) -> Iterator[bool]:
        """One notifier at a time: on PostgreSQL a session advisory lock, so a second replica's
        pass does nothing instead of sending the same rows twice. (SQLite: one process anyway.)"""
        if self.engine.dialect.name != "postgresql":
            yield True
            return
        with self.engine.connect() as conn:
            mine = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_KEY}).scalar())
            conn.commit()  # the lock is the session's; keep no transaction open meanwhile
            try:
                yield mine
            finally:
                if mine:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
                conn.commit()

    def run(self, now: datetime) -> RunReport:
        """One pass (see the module docstring). Returns an empty report when another notifier
        holds the lock."""
        with self._exclusive() as mine:
            return self._run(now) if mine else RunReport()

    def _run(self, now: datetime) -> RunReport:
        report = RunReport()
        routes = {name: c.route for name, c in self.channels.items()}
        with self.session() as s:
            report.admitted = outbox.admit(s, routes, now, self.config.tz)
            s.commit()
            pending = outbox.load_pending(s, routes, now, self.config.active_statuses)
            if not pending:
                return report
            passing = self._filter(s, pending, now, report)
            passing = apply_budgets(self, s, passing, now, report)  # budgets and flood flags (budget.py)
            s.commit()
            batches, notices = self._batches(s, passing, now)
            self._send(s, batches, notices, now, report)
        return report

    # --- stages: inhibit → silence → calendar --------------------------------------------------
    def _filter(self, s: Session, pending: list[Pending], now: datetime, report: RunReport) -> list[Pending]:
        cfg = self.config
        sources = []
        if cfg.inhibit:
            patterns = [r.source for r in cfg.inhibit]
            sources = [
                src
                for src in outbox.inhibition_sources(s, None, cfg.active_statuses)
                if any(fnmatchcase(src.rule_id, p) for p in patterns)
            ]
        closing = [(p.warning_id, p.channel, p.recipient_id) for p in pending if p.closing and p.warning_id is not None]
        announced = outbox.announced(s, closing) if closing else set()
        earlier = outbox.earlier_inhibited(s, [(w, c) for w, c, _ in closing]) if closing else set()
        silences = active_silences(s, now)
        directory = self.directory()
        lineage = directory.lineage if directory is not None else None
        passing: list[Pending] = []
        changed: list[Pending] = []
        reasons: dict[int, str | None] = {}
        for p in pending:
            before = (p.state, p.next_attempt_at, p.inhibited_by)
            counts = report.of(p.channel)
            inhibitor = find_inhibitor(cfg.inhibit, sources, p, lineage) if sources else None
            verdict = decide(
                p,
                inhibitor,
                announced=(p.warning_id, p.channel, p.recipient_id or "") in announced,
                earlier_inhibited=(p.warning_id, p.channel) in earlier,
            )
            reason: str | None = None
            if verdict == SUPPRESS:
                p.state, p.next_attempt_at = "suppressed", None
                reason = (
                    f"inhibited by warning {inhibitor[1].warning_id} ({inhibitor[0].name}); the warning is over"
                    if inhibitor
                    else "earlier notices were inhibited; the warning was never announced here"
                )
                counts.suppressed += 1
                metrics.NOTICES.labels(p.channel, "suppressed").inc()
            elif verdict == HOLD and inhibitor is not None:
                p.state, p.next_attempt_at, p.inhibited_by = "held", None, inhibitor[1].warning_id
                reason = f"inhibited by warning {inhibitor[1].warning_id} ({inhibitor[0].name})"
                counts.held += 1
                metrics.HELD.labels(p.channel, "inhibited").inc()
            elif (silenced := silenced_until(silences, p, now)) is not None:
                p.state, p.next_attempt_at = "muted", silenced[0]
                reason = reason_of(silenced[1].id)
                counts.muted += 1
                metrics.HELD.labels(p.channel, "silenced").inc()
            elif cfg.calendar and (
                window := cfg.calendar.mute_until(now, level=p.level, band=p.band, channel=p.channel)
            ):
                p.state, p.next_attempt_at = "muted", window[0]
                reason = f"calendar:{window[1].name}"
                counts.muted += 1
                metrics.HELD.labels(p.channel, "calendar").inc()
            else:
                if p.state in ("held", "muted"):
                    p.state = "queued"  # released; a muted one keeps its (past) time: it has waited
                passing.append(p)
            if (p.state, p.next_attempt_at, p.inhibited_by) != before:
                changed.append(p)
                reasons[p.outbox_id] = reason
        outbox.save_states(s, changed, reasons, now)
        return passing

    # --- group → pack ------------------------------------------------------------------------
    def _batches(self, s: Session, passing: list[Pending], now: datetime) -> tuple[list[_Batch], dict[int, Notice]]:
        groups: dict[str, list[Pending]] = defaultdict(list)
        for p in passing:
            groups[p.group_key].append(p)
        flushed = outbox.last_flushes(s, groups)
        due: list[tuple[str, list[Pending]]] = []
        for key, items in groups.items():
            ready = due_now(items, flushed.get(key), self.channels[items[0].channel].route, now)
            if ready:
                due.append((key, ready))
        if not due:
            return [], {}
        keys = {
            (p.rule_id, p.entity_id, p.period)
            for _, items in due
            for p in items
            if p.rule_id and p.entity_id and p.period
        }
        history = outbox.trends(s, keys)
        notices = {
            p.outbox_id: self.composer.notice(
                p,
                history.get((p.rule_id or "", p.entity_id or "", p.period or ""), ()),
                personal=self.channels[p.channel].sink.personal,
            )
            for _, items in due
            for p in items
        }
        batches = []
        for key, items in due:
            channel = self.channels[items[0].channel]
            size = lambda p: len(notices[p.outbox_id].markdown.encode("utf-8"))  # noqa: E731
            for chunk in pack(items, max_items=channel.route.max_items, max_bytes=channel.sink.max_bytes, size=size):
                batches.append(_Batch(channel, key, items[0].digest, chunk))
        batches.sort(key=lambda b: (b.items[0].admitted_at, b.items[0].outbox_id))
        return batches, notices

    # --- rate limit → send → retry -------------------------------------------------------------
    def _contacts(self, s: Session, batches: list[_Batch]) -> dict[str, Contact]:
        ids = {p.recipient_id for b in batches for p in b.items if p.recipient_id}
        found = outbox.contacts(s, ids)
        directory = self.directory()
        if directory is not None:
            for pid in ids:
                person = directory.person(pid)
                if person is not None:
                    old = found.get(pid)
                    found[pid] = Contact(
                        pid,
                        person.name or (old.name if old else None),
                        person.email or (old.email if old else None),
                        person.dingtalk_user_id or (old.dingtalk_user_id if old else None),
                        person.mobile or (old.mobile if old else None),
                    )
        return found

    def _send(
        self, s: Session, batches: list[_Batch], notices: dict[int, Notice], now: datetime, report: RunReport
    ) -> None:
        if not batches:
            return
        contacts = self._contacts(s, batches)
        windows: dict[str, SlidingWindow] = {}
        queues: dict[str, SlidingWindow] = {}  # the window as it will be once the queue ahead has gone
        down: dict[str, datetime] = {}
        for b in batches:
            sink, name = b.channel.sink, b.channel.name
            counts = report.of(name)
            if name in down:  # failed retryably in this pass: wait with it, without counting an attempt
                outbox.defer(s, b.items, down[name], "channel unavailable; waiting with the failed message")
                s.commit()
                counts.retry_later += len(b.items)
                metrics.HELD.labels(name, "channel_down").inc(len(b.items))
                continue
            bucket = sink.rate_bucket if sink.rate_limit is not None else None
            window = None
            if bucket is not None:
                window = windows.get(bucket) or outbox.rate_window(s, bucket, sink.rate_limit, now)  # type: ignore[arg-type]
                windows[bucket] = window
                if window.next_free(now) > now:
                    # queued: each waiting message gets its own slot, so later passes load only what is due
                    queue = queues.setdefault(bucket, window.copy())
                    slot = queue.next_free(now)
                    queue.record(slot)
                    outbox.defer(s, b.items, slot, "rate limit: queued for a free slot")
                    s.commit()
                    counts.rate_limited += len(b.items)
                    metrics.HELD.labels(name, "rate_limited").inc(len(b.items))
                    continue
            recipient_id = b.items[0].recipient_id
            recipient = contacts.get(recipient_id) if recipient_id else None
            if recipient_id and recipient is None:
                recipient = Contact(recipient_id)
            message = self.composer.message(
                [notices[p.outbox_id] for p in b.items],
                recipient=recipient,
                digest=b.digest,
                at=now,
                buttons=sink.renders_links,
                personal=sink.personal,
            )
            s.commit()  # hold no transaction open while a channel answers
            started = _time.perf_counter()
            try:
                sink.send(message)
            except SinkError as exc:
                self._failed(s, b, exc, exc.retryable, exc.retry_after, now, counts, window, down)
                continue
            except Exception as exc:  # a bug in a sink must not lose the notices: retry them, loudly
                log.exception("sink %s raised an unexpected %s; treating it as retryable", name, type(exc).__name__)
                self._failed(s, b, exc, True, None, now, counts, window, down)
                continue
            finally:
                metrics.SEND_SECONDS.labels(name).observe(_time.perf_counter() - started)
            outbox.record_sent(
                s,
                b.items,
                channel=name,
                group=b.group,
                kind=message.kind,
                subject=message.subject,
                recipient_id=recipient_id,
                bucket=bucket,
                now=now,
            )
            s.commit()
            if window is not None:
                window.record(now)
            counts.messages += 1
            counts.sent += len(b.items)
            metrics.MESSAGES.labels(name, "sent").inc()
            metrics.NOTICES.labels(name, "sent").inc(len(b.items))

    def _failed(
        self,
        s: Session,
        b: _Batch,
        exc: BaseException,
        retryable: bool,
        retry_after: timedelta | None,
        now: datetime,
        counts: Counts,
        window: SlidingWindow | None,
        down: dict[str, datetime],
    ) -> None:
        name = b.channel.name
        bucket = b.channel.sink.rate_bucket if b.channel.sink.rate_limit is not None else None
        attempts = max(p.attempts for p in b.items) + 1
        next_at = now + b.channel.route.retry.delay(attempts)
        block = now + retry_after if retry_after else None
        if block is not None and block > next_at:
            next_at = block
        error = f"{type(exc).__name__}: {exc}"
        outbox.record_failure(
            s, b.items, error=error, retryable=retryable, next_at=next_at, bucket=bucket, block_until=block, now=now
        )
        s.commit()
        if window is not None:
            window.record(now)
            if block is not None:
                window.block(block)
        ids = ",".join(str(p.outbox_id) for p in b.items[:10])
        if retryable:
            down[name] = next_at
            counts.retry_later += len(b.items)
            metrics.MESSAGES.labels(name, "retry").inc()
            log.warning(
                "channel %s: notifications %s failed retryably (attempt %d), next try %s: %s",
                name,
                ids,
                attempts,
                next_at.isoformat(),
                error,
            )
        else:
            counts.failed += len(b.items)
            metrics.MESSAGES.labels(name, "failed").inc()
            metrics.NOTICES.labels(name, "failed").inc(len(b.items))
            log.error("channel %s: notifications %s failed permanently: %s", name, ids, error)
