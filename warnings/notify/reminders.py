"""Reminders (督办提醒): the repeat interval, persisted.

An active warning that has been announced, with nothing sent about it for ``repeat_interval`` and
nothing on its way, is announced again to its responsible person — an Alertmanager
``repeat_interval`` that survives restarts, because the interval runs from the notification log
(``notify_log``), not from memory. Escalation past the due date is the lifecycle's (``Tick``),
routed up the chain by ``routing.escalation_route``; an escalation notice also restarts the
interval, so a warning is not reminded and escalated at once.

Each reminder is a warning event (kind ``reminded``; its ``cause`` names the last announcement it
follows, so running twice adds nothing) and one outbox row per channel, delivered by the pipeline
like any other notification.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from zhengai.ingest.privacy import mask_student_id
from zhengai.ingest.records import Band, EntityKind
from zhengai.warnings.messages import fill, format_value
from zhengai.warnings.notify import _metrics as metrics
from zhengai.warnings.notify import outbox
from zhengai.warnings.notify.compose import load
from zhengai.warnings.routing import Recipient
from zhengai.warnings.schema import WarningRow

if TYPE_CHECKING:
    from zhengai.warnings.notify.pipeline import NotifyPipeline

__all__ = ["due_reminders", "remind"]


def due_reminders(
    warnings: Sequence[WarningRow], last_sent: dict[int, datetime], busy: set[int], now: datetime, interval
) -> list[WarningRow]:
    """The warnings to remind at ``now``: announced, quiet for ``interval``, nothing on its way."""
    return [w for w in warnings if w.id in last_sent and w.id not in busy and now >= last_sent[w.id] + interval]


def _values(w: WarningRow, pipeline: NotifyPipeline, now: datetime) -> dict[str, object]:
    tz = pipeline.config.tz
    directory = pipeline.directory()
    entity = directory.get(w.entity_id) if directory is not None else None
    person = directory.person(w.responsible_person_id) if directory and w.responsible_person_id else None
    kind = entity.kind if entity else None
    band = Band(w.band) if w.band in Band._value2member_map_ else None
    if w.due_date is None:
        due_text = "请尽快分析原因、制定改进措施并登记。"
    elif now < w.due_date:
        due_text = f"请于 {w.due_date.astimezone(tz):%Y-%m-%d} 前分析原因、制定改进措施并登记（限期改进）。"
    else:
        due_text = f"改进期限 {w.due_date.astimezone(tz):%Y-%m-%d} 已过，请尽快登记改进措施并说明原因。"
    role = w.responsible_role
    return dict(
        date=f"{now.astimezone(tz):%Y-%m-%d}",  # also keeps DingTalk from dropping a same-text repeat
        entity_kind_zh=kind.zh if kind else "对象",
        entity_name=entity.name if entity else w.entity_id,
        entity_ref=mask_student_id(w.entity_id) if kind is EntityKind.student else w.entity_id,
        rule_name=w.rule_name,
        band_zh=band.zh if band else w.band,
        value=format_value(w.value, pipeline.unit_of(w.rule_id)),
        period=w.last_period,
        days=max(0, (now - w.opened_at).days),
        role_zh=Recipient(person, role, "").role_zh if person and role else "负责人",
        person_name=person.name if person else "（未配置）",
        due_text=due_text,
    )


def remind(pipeline: NotifyPipeline, now: datetime, channels: Sequence[str]) -> int:
    """Enqueue the reminders due at ``now``; one transaction. Returns how many."""
    interval = pipeline.config.reminders.repeat_interval
    if interval is None:
        return 0
    template = load("reminder.md")
    with pipeline.session() as s:
        rows = outbox.active_warnings(s, pipeline.config.active_statuses)
        ids = [w.id for w in rows]
        due = due_reminders(rows, outbox.last_announced(s, ids), outbox.open_deliveries(s, ids), now, interval)
        last = outbox.last_announced(s, [w.id for w in due])
        for w in due:
            values = _values(w, pipeline, now)
            outbox.enqueue_followup(
                s,
                w,
                kind="reminded",
                cause=f"reminder:{last[w.id].isoformat()}",
                reason="督办提醒：预警仍未恢复",
                subject=fill(template.subject, values),
                body=fill(template.body, values),
                recipient_id=w.responsible_person_id,
                channels=channels,
                now=now,
            )
            metrics.REMINDERS.inc()
        s.commit()
    return len(due)
