"""Warning volume people can act on: notification budgets and flood flags (a pipeline stage).

    … silence ─▶ calendar ─▶ **budget** ─▶ group ─▶ rate limit ─▶ send

Only notices that announce a warning (``opened``, ``relapsed``) count. Per channel, rule and
responsible person, at most ``per_owner`` of them go out individually in one ``period`` (a day or
an ISO week on the campus clock, counted from what was sent); the rest are *summarized*: their
deliveries end as ``suppressed`` with the reason, the warnings stay stored, open and visible (我的
预警, the web, reports), and the person gets one summary per pass — "信息工程学院另有 37 条「学生到课率」
预警" — as a warning event (kind ``summarized``) with an outbox row, so it is delivered, retried and
logged like any other notification.

**Floods.** A rule whose openings in the current period reach ``flood_min`` and ``flood_factor``
times its usual number (the mean of the ``flood_history`` periods before) is probably a rule or
data error (one faulty rule elsewhere raised 30,000 alerts). The quality office is told first —
a ``flood_flagged`` event on the rule's first warning, once per rule and period, with outbox rows
written before any summary so they go out first — and none of the rule's announcements go out
one by one in that period: each owner gets a single summary that says the quality office is
checking.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhengai.ingest.records import EntityKind
from zhengai.warnings.notify.pending import Pending
from zhengai.warnings.routing import quality_office
from zhengai.warnings.schema import WarningEventRow, WarningRow

if TYPE_CHECKING:
    from zhengai.warnings.notify.pipeline import NotifyPipeline, RunReport

__all__ = ["BudgetPolicy", "apply_budgets", "OPENING"]

OPENING = frozenset({"opened", "relapsed"})
_PERIOD_ZH = {"day": "今日", "week": "本周"}


class BudgetPolicy(BaseModel):
    """``budgets:`` of notify.yaml. ``per_owner: null`` switches budgets (and flood flags) off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_owner: int | None = Field(default=20, ge=1, le=10_000)
    period: Literal["day", "week"] = "week"
    flood_factor: float = Field(default=5.0, gt=1, le=1000)
    flood_min: int = Field(default=50, ge=1)
    flood_history: int = Field(default=4, ge=1, le=52)


def _period_start(now: datetime, period: str, tz) -> datetime:
    local = now.astimezone(tz)
    day = local.date() - (timedelta(days=local.weekday()) if period == "week" else timedelta(0))
    return datetime.combine(day, time(0), tz)


def _openings(s: Session, rules: set[str], since: datetime, until: datetime | None = None) -> Counter:
    q = (
        select(WarningRow.rule_id, func.count())
        .join(WarningEventRow, WarningEventRow.warning_id == WarningRow.id)
        .where(
            WarningRow.rule_id.in_(sorted(rules)),
            WarningEventRow.kind.in_(sorted(OPENING)),
            WarningEventRow.at >= since,
        )
    )
    if until is not None:
        q = q.where(WarningEventRow.at < until)
    return Counter({rule: n for rule, n in s.execute(q.group_by(WarningRow.rule_id)).all()})


def _sent(s: Session, rules: set[str], since: datetime) -> Counter:
    """Announcements already sent this period, per (channel, rule, recipient)."""
    from zhengai.warnings.notify_schema import DeliveryRow
    from zhengai.warnings.schema import OutboxRow

    q = (
        select(DeliveryRow.channel, WarningRow.rule_id, DeliveryRow.recipient_id, func.count())
        .join(OutboxRow, OutboxRow.id == DeliveryRow.outbox_id)
        .join(WarningEventRow, WarningEventRow.id == OutboxRow.event_id)
        .join(WarningRow, WarningRow.id == WarningEventRow.warning_id)
        .where(
            DeliveryRow.state == "sent",
            DeliveryRow.finished_at >= since,
            WarningRow.rule_id.in_(sorted(rules)),
            WarningEventRow.kind.in_(sorted(OPENING)),
        )
        .group_by(DeliveryRow.channel, WarningRow.rule_id, DeliveryRow.recipient_id)
    )
    return Counter({(c, r, p): n for c, r, p, n in s.execute(q).all()})


def apply_budgets(
    pipeline: NotifyPipeline, s: Session, passing: list[Pending], now: datetime, report: RunReport
) -> list[Pending]:
    """The stage: returns the notices that go on; summarizes the rest (see the module docstring)."""
    policy: BudgetPolicy = getattr(pipeline.config, "budgets", None) or BudgetPolicy()
    opening = [p for p in passing if p.kind in OPENING and p.rule_id and p.warning_id is not None]
    if policy.per_owner is None or not opening:
        return passing
    tz = pipeline.config.tz
    start = _period_start(now, policy.period, tz)
    rules = {p.rule_id for p in opening if p.rule_id}
    span = start - _period_start(start - timedelta(seconds=1), policy.period, tz)
    current = _openings(s, rules, start)
    before = _openings(s, rules, start - policy.flood_history * span, start)
    floods = {
        r: (current[r], before[r] / policy.flood_history)
        for r in rules
        if current[r] >= policy.flood_min
        and current[r] >= policy.flood_factor * max(before[r] / policy.flood_history, 1)
    }
    sent = _sent(s, rules, start)
    keep: list[Pending] = []
    over: dict[tuple[str, str, str | None], list[Pending]] = defaultdict(list)
    for p in passing:
        if p.kind not in OPENING or not p.rule_id or p.warning_id is None:
            keep.append(p)
            continue
        k = (p.channel, p.rule_id, p.recipient_id)
        if p.rule_id in floods or sent[k] >= policy.per_owner:
            over[k].append(p)
        else:
            sent[k] += 1
            keep.append(p)
    if not over:
        return keep
    for rule_id in sorted(floods):  # the quality office first: these outbox rows get the lower ids
        _flag_flood(
            pipeline,
            s,
            rule_id,
            floods[rule_id],
            [p for k, ps in over.items() if k[1] == rule_id for p in ps],
            start,
            policy,
            now,
        )
    summarized: list[Pending] = []
    reasons: dict[int, str | None] = {}
    for (channel, rule_id, recipient), items in sorted(
        over.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")
    ):
        for p in items:
            p.state, p.next_attempt_at = "suppressed", None
            reasons[p.outbox_id] = (
                f"budget: summarized ({'flood of ' + rule_id if rule_id in floods else 'over '}"
                f"{'' if rule_id in floods else str(policy.per_owner) + ' per ' + policy.period})"
            )
            report.of(channel).suppressed += 1
        summarized += items
        _summary(pipeline, s, channel, rule_id, recipient, items, floods.get(rule_id), policy, start, now)
    from zhengai.warnings.notify import outbox  # late: outbox → config → this module

    outbox.save_states(s, summarized, reasons, now)
    s.flush()
    # The new rows (quality office, summaries) go out in this pass, behind nothing of the rule.
    routes = {name: c.route for name, c in pipeline.channels.items()}
    outbox.admit(s, routes, now, tz)
    s.flush()
    new = [
        p
        for p in outbox.load_pending(s, routes, now, pipeline.config.active_statuses)
        if p.kind in ("summarized", "flood_flagged") and p.admitted_at == now
    ]
    return keep + new


def _rule_name(pipeline: NotifyPipeline, rule_id: str) -> str:
    rules = pipeline._rules() if pipeline._rules else None
    rule = rules.rules.get(rule_id) if rules else None
    return rule.name if rule else rule_id


def _units(pipeline: NotifyPipeline, entity_ids: Sequence[str | None]) -> str:
    """The 二级学院 the warnings are in (one name, or the first and how many)."""
    directory = pipeline.directory()
    names: list[str] = []
    for e in entity_ids:
        if directory is None or e is None:
            continue
        for a in directory.lineage(e):
            ent = directory.get(a)
            if ent is not None and ent.kind is EntityKind.department and ent.name not in names:
                names.append(ent.name)
    if not names:
        return "全校"
    return names[0] if len(names) == 1 else f"{names[0]}等 {len(names)} 个二级学院"


def _warning(s: Session, warning_id: int | None) -> WarningRow:
    row = s.get(WarningRow, warning_id)
    assert row is not None
    return row


def _summary(
    pipeline: NotifyPipeline,
    s: Session,
    channel: str,
    rule_id: str,
    recipient: str | None,
    items: list[Pending],
    flood: tuple[int, float] | None,
    policy: BudgetPolicy,
    start: datetime,
    now: datetime,
) -> None:
    name, n = _rule_name(pipeline, rule_id), len(items)
    unit = _units(pipeline, [p.entity_id for p in items])
    bands = Counter(p.band for p in items)
    by_band = " · ".join(f"{zh} {bands[b]}" for b, zh in (("red", "红色"), ("yellow", "黄色")) if bands[b])
    when = _PERIOD_ZH[policy.period]
    subject = f"【预警汇总】{unit}另有 {n} 条「{name}」预警"
    if flood is not None:
        why = (
            f"该规则{when}预警数异常（{flood[0]} 条，通常约 {flood[1]:.0f} 条），已提请质量办核查是否为规则或数据错误，"
            "因此不逐条发送。"
        )
    else:
        why = f"{when}「{name}」预警已超过每人 {policy.per_owner} 条的逐条通知额度。"
    body = (
        f"【预警汇总】{unit}另有 {n} 条「{name}」预警未逐条发送（{by_band}）\n"
        f"- 说明：{why}这些预警均已记录、仍在处理中，请在「我的预警」中查看并处理。\n"
        f"- 要求：请按轻重缓急逐条确认，需要时登记改进措施。"
    )
    from zhengai.warnings.notify import outbox

    first = min(items, key=lambda p: p.outbox_id)
    outbox.enqueue_followup(
        s,
        _warning(s, first.warning_id),
        kind="summarized",
        cause=f"budget:{channel}:{recipient}:{start:%Y%m%d}:{first.outbox_id}",
        reason=subject,
        subject=subject,
        body=body,
        recipient_id=recipient,
        channels=[channel],
        now=now,
    )


def _flag_flood(
    pipeline: NotifyPipeline,
    s: Session,
    rule_id: str,
    flood: tuple[int, float],
    items: list[Pending],
    start: datetime,
    policy: BudgetPolicy,
    now: datetime,
) -> None:
    if not items:
        return
    first = _warning(s, min(items, key=lambda p: p.outbox_id).warning_id)
    cause = f"flood:{rule_id}:{start:%Y%m%d}"
    done = s.scalar(
        select(func.count())
        .select_from(WarningEventRow)
        .join(WarningRow, WarningRow.id == WarningEventRow.warning_id)
        .where(WarningRow.rule_id == rule_id, WarningEventRow.kind == "flood_flagged", WarningEventRow.cause == cause)
    )
    directory = pipeline.directory()
    qo = quality_office(directory) if directory is not None else None
    if done or qo is None:
        return
    name, (count, usual) = _rule_name(pipeline, rule_id), flood
    when = _PERIOD_ZH[policy.period]
    subject = f"【疑似规则或数据错误】「{name}」{when}已产生 {count} 条预警（通常约 {usual:.0f} 条）"
    body = (
        f"{subject}\n"
        f"- 规则：{rule_id}（{name}）\n"
        f"- 范围：{_units(pipeline, [p.entity_id for p in items])}\n"
        f"- 判断：{when}新开预警达到平时的 {policy.flood_factor:g} 倍以上，"
        "可能是阈值设置、数据口径或数据源（连接器）出错。\n"
        "- 处理：该规则的预警已全部记录；在核查期间各负责人只收到一条汇总，不逐条通知。"
        "请核查规则与数据；确属错误时，可将这些预警按误报关闭或设置静默。"
    )
    from zhengai.warnings.notify import outbox

    outbox.enqueue_followup(
        s,
        first,
        kind="flood_flagged",
        cause=cause,
        reason=subject,
        subject=subject,
        body=body,
        recipient_id=qo.id,
        channels=list(pipeline.channels),
        now=now,
    )
