"""Prometheus counters of the notification pipeline. Labelled by channel, outcome, reason and
role only — never by recipient, warning or any personal data."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "zhengai_notify_messages",
    "Messages handed to a sink, by outcome (sent, retry, failed).",
    ["channel", "outcome"],
)
NOTICES = Counter(
    "zhengai_notify_notices",
    "Outbox rows that reached an end: sent, failed (fatal) or suppressed (inhibited, warning over).",
    ["channel", "outcome"],
)
HELD = Counter(
    "zhengai_notify_held",
    "Outbox rows held back by a stage in a run (inhibited, silenced, calendar, rate_limited, channel_down).",
    ["channel", "reason"],
)
SEND_SECONDS = Histogram(
    "zhengai_notify_send_seconds",
    "Time a sink took to accept or refuse one message.",
    ["channel"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ESCALATIONS = Counter(
    "zhengai_notify_escalations",
    "Escalation steps fired, by the role escalated to.",
    ["role"],
)
REMINDERS = Counter("zhengai_notify_reminders", "Reminders (督办提醒) enqueued.")
OUTBOX_DUE_AGE = Gauge(
    "zhengai_notify_outbox_due_age_seconds",
    "Age of the oldest outbox row due to be sent now, by channel (muted, inhibited and digest rows are not due).",
    ["channel"],
)
