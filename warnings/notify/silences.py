"""Silences as things people manage: create (author, reason, expiry) after previewing what it would
hide, list, expire early, and tell the author when one has ended.

The matching itself is ``silence.Silence`` (the pipeline's stage); this module is the management
around it, over the ``notify_silences`` table:

- ``preview(store, silence, now)``: the live warnings whose notices it would hold, and the
  notices waiting in the pipeline right now that it would hold;
- ``create(store, silence, now)``: validated (a reason, an author, an end in the future and at
  most ``MAX_SILENCE`` away); ``list_silences``; ``expire(store, id, by, now)``;
- ``expiry_notices(pipeline, now)``: once per ended silence, a message to its author on each
  personal channel (what it held is released by the pipeline's next pass). Called from
  ``NotifyPipeline.tick``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from sqlalchemy import select, update

from zhengai.warnings.lifecycle import LIVE
from zhengai.warnings.notify.base import Contact, Message, Notice, SinkError
from zhengai.warnings.notify.silence import Silence, add_silence, expire_silence
from zhengai.warnings.notify_schema import DeliveryRow, SilenceRow
from zhengai.warnings.schema import PersonRow, WarningRow

__all__ = ["Preview", "preview", "create", "list_silences", "expire", "expiry_notices", "MAX_SILENCE"]

log = logging.getLogger(__name__)
MAX_SILENCE = timedelta(days=120)  # a silence is for a known, bounded problem; longer is a rule change


@dataclass
class Preview:
    warnings: list[WarningRow]  # live warnings whose notices it would hold
    waiting: int  # notices in the pipeline right now that it would hold

    @property
    def zh(self) -> str:
        return f"将暂缓 {len(self.warnings)} 条未关闭预警的通知（当前待发 {self.waiting} 条）"


def _matches_warning(s: Silence, w: WarningRow) -> bool:
    return (
        fnmatchcase(w.rule_id, s.rule)
        and (s.entity_id is None or s.entity_id == w.entity_id)
        and (s.level is None or s.level == w.level)
        and (s.recipient_id is None or s.recipient_id == w.responsible_person_id)
    )


def _check(silence: Silence, now: datetime) -> None:
    if not silence.created_by.strip():
        raise ValueError("静默须写明设置人 (a silence needs its author)")
    if len(silence.comment.strip()) < 4:
        raise ValueError("静默须写明原因 (a silence needs a reason)")
    if silence.ends_at <= now:
        raise ValueError("静默的结束时间须晚于现在 (a silence must end in the future)")
    if silence.ends_at - max(silence.starts_at, now) > MAX_SILENCE:
        raise ValueError(f"静默最长 {MAX_SILENCE.days} 天 (a silence lasts at most {MAX_SILENCE.days} days)")
    if silence.rule == "*" and not any((silence.entity_id, silence.level, silence.recipient_id, silence.channel)):
        raise ValueError(
            "静默须至少限定一项（规则、对象、层面、收件人或渠道），不能静默全部通知 (a silence must match something)"
        )


def preview(store, silence: Silence, now: datetime) -> Preview:
    with store.session() as s:
        live = list(
            s.scalars(
                select(WarningRow).where(WarningRow.status.in_([st.value for st in LIVE])).order_by(WarningRow.id)
            )
        )
        hit = [w for w in live if _matches_warning(silence, w)]
        ids = {w.id for w in hit}
        waiting = 0
        for d in s.scalars(select(DeliveryRow).where(DeliveryRow.state.in_(("queued", "held", "muted", "retry")))):
            if (
                d.warning_id in ids
                and (silence.channel is None or silence.channel == d.channel)
                and (silence.recipient_id is None or silence.recipient_id == d.recipient_id)
            ):
                waiting += 1
    return Preview(hit, waiting)


def create(store, silence: Silence, now: datetime) -> int:
    _check(silence, now)
    from zhengai.warnings.notify_schema import create_notify_schema

    create_notify_schema(store.engine)
    with store.session() as s, s.begin():
        return add_silence(s, silence, now)


def list_silences(store, now: datetime, *, include_ended: bool = False) -> list[SilenceRow]:
    with store.session() as s:
        q = select(SilenceRow).order_by(SilenceRow.id)
        if not include_ended:
            q = q.where(SilenceRow.ends_at > now)
        return list(s.scalars(q))


def expire(store, silence_id: int, *, by: str, now: datetime) -> None:
    """End a silence now (what it held goes out at the next pass); who ended it is recorded."""
    with store.session() as s, s.begin():
        row = s.get(SilenceRow, silence_id)
        if row is None:
            raise KeyError(f"没有 #{silence_id} 号静默 (no silence #{silence_id})")
        if row.ends_at <= now:
            raise ValueError(f"#{silence_id} 号静默已结束 (already ended)")
        row.comment = f"{row.comment}（{by} 于 {now:%Y-%m-%d %H:%M} 提前结束）"
        expire_silence(s, silence_id, now)


def expiry_notices(pipeline, now: datetime) -> int:
    """Tell each ended silence's author, once, on every personal channel. Returns messages sent."""
    sent = 0
    with pipeline.session() as s:
        ended = list(
            s.scalars(select(SilenceRow).where(SilenceRow.ends_at <= now, SilenceRow.expiry_noticed_at.is_(None)))
        )
        for row in ended:
            person = s.get(PersonRow, row.created_by)
            contact = Contact(
                row.created_by,
                person.name if person else None,
                person.email if person else None,
                person.dingtalk_user_id if person else None,
                person.mobile if person else None,
            )
            subject = f"【静默已结束】#{row.id} {row.rule}"
            body = (
                f"您设置的静默 #{row.id} 已于 {row.ends_at.astimezone(pipeline.config.tz):%Y-%m-%d %H:%M} 结束"
                f"（原因：{row.comment}）。被暂缓的通知将随后发出；如仍需静默，请重新设置。"
            )
            ok = False
            for channel in pipeline.channels.values():
                if not channel.sink.personal:
                    continue
                try:
                    channel.sink.send(
                        Message(
                            subject, body, contact, (Notice(0, None, "silence_ended", "normal", subject, body),), now
                        )
                    )
                    ok, sent = True, sent + 1
                except SinkError as exc:
                    log.warning("silence %s: expiry notice on %s failed (%s); will retry", row.id, channel.name, exc)
            if ok or not any(c.sink.personal for c in pipeline.channels.values()):
                s.execute(update(SilenceRow).where(SilenceRow.id == row.id).values(expiry_noticed_at=now))
        s.commit()
    return sent
