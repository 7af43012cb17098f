"""The warning lifecycle as a pure state machine.

::

    pending ─(N periods)─▶ open(yellow|red) ─▶ acknowledged ─▶ improving(改进措施, due date)
       │                      │  ▲ severity up/down            │
       └─ cleared             └──┴── recovered (hold M periods past the recovery line) ─▶ closed (复评)
    open/acknowledged/improving past due ─▶ escalated (next level, again every k days)
    any live status ─▶ closed as 误报 (false positive, with a reason)
    no data within the freshness window ─▶ stale (a flag; fresh data clears it)

One warning per (rule, entity, episode). ``step(state, command)`` returns the next state and the
transitions it caused; it reads no clock and no database (``Tick`` carries ``now``), so replays,
races resolved by the store, and backtests all give the same answer. Every transition becomes a
warning event in the store.

Rules of thumb encoded here:
- stale verdicts change nothing: absence of data is not recovery (``Tick`` marks staleness);
- a verdict for an older period than the warning last saw changes nothing; the same period with
  the same value is a no-op (idempotent replay); a corrected value for the same period is applied;
- while a warning is active its band is its severity (yellow/red): good periods count towards
  recovery but do not lower the severity;
- recovery needs ``recovery_periods`` consecutive periods at or past the recovery line
  (hysteresis; the rule's cycle sets the default, ``LifecyclePolicy.for_cycle``); a recovered
  warning that breaches again before review relapses to open;
- the loop closes on people, not on data: 复评 closes a recovered warning only when it was
  acknowledged and at least one 改进措施 was recorded, or 质量办 waived the measure with a reason
  (``Waive``); measures and evidence may still be added while it waits for review; a due date is
  bounded by the rule's ``max_due_days``;
- escalation goes one level per step: a late tick emits every level it skipped, in order, so
  each person on the way is told once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

from zhengai.ingest.records import Band, Verdict, period_kind
from zhengai.rules.evaluator import meets_recovery
from zhengai.rules.model import LifecyclePolicy

__all__ = [
    "Status",
    "TransitionKind",
    "Resolution",
    "WarningState",
    "Transition",
    "LifecycleError",
    "Observe",
    "Acknowledge",
    "StartImprovement",
    "Review",
    "Waive",
    "MarkFalsePositive",
    "Tick",
    "Command",
    "step",
    "ACTIVE",
    "LIVE",
    "MAX_ESCALATION",
]

_CHINA = ZoneInfo("Asia/Shanghai")
MAX_ESCALATION = 4  # 任课教师 → 课程负责人 → 专业负责人 → 二级学院 → 质量办


class Status(str, Enum):  # noqa: UP042 — StrEnum would change str()/format() of members (audit first)
    pending = "pending"
    open = "open"
    acknowledged = "acknowledged"
    improving = "improving"
    escalated = "escalated"
    recovered = "recovered"
    closed = "closed"

    @property
    def zh(self) -> str:
        return _STATUS_ZH[self]


_STATUS_ZH = {
    Status.pending: "待确认",
    Status.open: "预警中",
    Status.acknowledged: "已确认",
    Status.improving: "改进中",
    Status.escalated: "已升级督办",
    Status.recovered: "已恢复待复评",
    Status.closed: "已关闭",
}
ACTIVE = frozenset({Status.open, Status.acknowledged, Status.improving, Status.escalated})
LIVE = ACTIVE | {Status.pending, Status.recovered}


class Resolution(str, Enum):  # noqa: UP042 — StrEnum would change str()/format() of members (audit first)
    reviewed = "reviewed"  # 复评 closed a recovered warning
    false_positive = "false_positive"  # 误报
    cleared = "cleared"  # a pending breach that never held for N periods


class TransitionKind(str, Enum):  # noqa: UP042 — StrEnum would change str()/format() of members (audit first)
    pending = "pending"
    opened = "opened"
    severity_up = "severity_up"
    severity_down = "severity_down"
    acknowledged = "acknowledged"
    improvement_started = "improvement_started"
    measure_added = "measure_added"  # a further 改进措施 (improving or recovered): a new row
    waived = "waived"  # 质量办 waived the measure requirement, with a reason
    escalated = "escalated"
    recovered = "recovered"
    relapsed = "relapsed"
    reviewed = "reviewed"
    false_positive = "false_positive"
    cleared = "cleared"
    stale = "stale"
    data_resumed = "data_resumed"

    @property
    def zh(self) -> str:
        return _KIND_ZH[self]


_KIND_ZH = {
    TransitionKind.pending: "待确认",
    TransitionKind.opened: "新预警",
    TransitionKind.severity_up: "预警升级",
    TransitionKind.severity_down: "预警降级",
    TransitionKind.acknowledged: "已确认",
    TransitionKind.improvement_started: "开始改进",
    TransitionKind.measure_added: "追加改进措施",
    TransitionKind.waived: "免于登记改进措施",
    TransitionKind.escalated: "逾期升级督办",
    TransitionKind.recovered: "指标恢复",
    TransitionKind.relapsed: "再次预警",
    TransitionKind.reviewed: "复评关闭",
    TransitionKind.false_positive: "误报关闭",
    TransitionKind.cleared: "未确认即恢复",
    TransitionKind.stale: "数据中断",
    TransitionKind.data_resumed: "数据恢复",
}


class LifecycleError(ValueError):
    """A command that is not allowed in the warning's current status (e.g. 复评 before recovery)."""


@dataclass(frozen=True)
class WarningState:
    rule_id: str
    entity_id: str
    episode: int
    status: Status
    band: Band  # the latest band seen
    worst_band: Band
    opened_period: str  # first breaching period of the episode
    last_period: str
    value: float | bool | None
    reason: str
    opened_at: datetime
    updated_at: datetime
    pending_count: int = 0
    recovery_count: int = 0
    escalation_level: int = 0
    due_date: datetime | None = None
    next_escalation_at: datetime | None = None
    stale: bool = False
    last_data_at: datetime | None = None
    acknowledged_at: datetime | None = None
    recovered_at: datetime | None = None
    closed_at: datetime | None = None
    resolution: Resolution | None = None
    close_reason: str | None = None


@dataclass(frozen=True)
class Transition:
    kind: TransitionKind
    episode: int
    from_status: Status | None
    to_status: Status
    from_band: Band | None
    to_band: Band
    period: str
    value: float | bool | None
    reason: str
    cause: str  # the verdict key, or "<actor>:<kind>" for people's actions, or "tick:<kind>:<level>"
    at: datetime
    actor: str | None = None
    escalation_level: int | None = None  # for escalated: the level this step reached


# --- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observe:
    verdict: Verdict
    policy: LifecyclePolicy = LifecyclePolicy()


@dataclass(frozen=True)
class Acknowledge:
    actor: str
    at: datetime
    note: str = ""


@dataclass(frozen=True)
class StartImprovement:
    """A 改进措施. On an open/acknowledged/escalated warning it starts the improvement (status
    improving, the due date moves); on an improving or recovered one it adds a further measure
    (a new row; the status stays). ``max_due`` bounds the due date (the rule's max_due_days)."""

    actor: str
    at: datetime
    due: datetime  # 限期改进
    text: str
    max_due: datetime | None = None


@dataclass(frozen=True)
class Review:
    """复评 by the assessing body. ``measures`` (改进措施 recorded) and ``waived`` (质量办 waived
    them) are facts the store reads before stepping; ``require_measure`` is the rule's policy."""

    actor: str
    at: datetime
    note: str = ""
    measures: int = 0
    waived: bool = False
    require_measure: bool = True


@dataclass(frozen=True)
class Waive:
    """质量办 waives the 改进措施 a review would need (e.g. the cause lay outside the owner's
    reach), with a recorded reason. The status does not change."""

    actor: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class MarkFalsePositive:
    actor: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class Tick:
    at: datetime
    policy: LifecyclePolicy
    freshness: timedelta


Command = Observe | Acknowledge | StartImprovement | Review | Waive | MarkFalsePositive | Tick


def _older(period: str, than: str) -> bool:
    """Periods of different kinds are not comparable: treat them as current (the cycle changed)."""
    if period_kind(period) != period_kind(than):
        return False
    return period < than


def _severity(band: Band) -> int:
    return {Band.red: 2, Band.yellow: 1}.get(band, 0)


def _t(
    state: WarningState | None,
    new: WarningState,
    kind: TransitionKind,
    cause: str,
    at: datetime,
    actor: str | None = None,
    reason: str | None = None,
    level: int | None = None,
) -> Transition:
    return Transition(
        kind=kind,
        episode=new.episode,
        from_status=state.status if state else None,
        to_status=new.status,
        from_band=state.band if state else None,
        to_band=new.band,
        period=new.last_period,
        value=new.value,
        reason=reason if reason is not None else new.reason,
        cause=cause,
        at=at,
        actor=actor,
        escalation_level=level,
    )


def step(state: WarningState | None, command: Command) -> tuple[WarningState | None, list[Transition]]:
    if isinstance(command, Observe):
        return _observe(state, command.verdict, command.policy)
    if isinstance(command, Tick):
        return _tick(state, command)
    return _act(state, command)


def _open_fields(verdict: Verdict, policy: LifecyclePolicy) -> dict:
    days = policy.due_days.red if verdict.band is Band.red else policy.due_days.yellow
    due = verdict.evaluated_at + timedelta(days=days)
    return dict(status=Status.open, due_date=due, next_escalation_at=due)


def _observe(
    state: WarningState | None, v: Verdict, policy: LifecyclePolicy
) -> tuple[WarningState | None, list[Transition]]:
    band, at = v.band, v.evaluated_at
    if band is Band.stale:
        return state, []
    live = state is not None and state.status in LIVE
    if state is not None and live:
        if _older(v.period, state.last_period):
            return state, []
        if v.period == state.last_period and v.value == state.value:
            return state, []  # replay of what this warning already saw
    transitions: list[Transition] = []
    if state is not None and live and state.stale:
        resumed = replace(state, stale=False, last_data_at=v.observed_at or at, updated_at=at)
        transitions.append(_t(state, resumed, TransitionKind.data_resumed, v.key, at, reason="数据恢复采集"))
        state = resumed

    if not live:  # nothing open: only a breach starts an episode
        if not band.is_breach:
            return state, transitions
        if state is not None and _older(v.period, state.last_period):
            return state, []  # a late breach from before the last episode closed is history
        new = WarningState(
            rule_id=v.rule_id,
            entity_id=v.entity_id,
            episode=(state.episode + 1 if state else 1),
            status=Status.pending,
            band=band,
            worst_band=band,
            opened_period=v.period,
            last_period=v.period,
            value=v.value,
            reason=v.reason,
            opened_at=at,
            updated_at=at,
            pending_count=1,
            last_data_at=v.observed_at or at,
        )
        if policy.pending_periods <= 1:
            new = replace(new, **_open_fields(v, policy))
            return new, transitions + [_t(None, new, TransitionKind.opened, v.key, at)]
        return new, transitions + [_t(None, new, TransitionKind.pending, v.key, at)]

    assert state is not None  # live: a warning is open
    same_period = v.period == state.last_period
    moved = replace(
        state,
        band=band,
        last_period=v.period,
        value=v.value,
        reason=v.reason,
        updated_at=at,
        last_data_at=v.observed_at or at,
        worst_band=band if _severity(band) > _severity(state.worst_band) else state.worst_band,
    )

    if state.status is Status.pending:
        if not band.is_breach:
            closed = replace(moved, status=Status.closed, closed_at=at, resolution=Resolution.cleared)
            return closed, transitions + [_t(state, closed, TransitionKind.cleared, v.key, at)]
        count = state.pending_count if same_period else state.pending_count + 1
        moved = replace(moved, pending_count=count)
        if count >= policy.pending_periods:
            opened = replace(moved, **_open_fields(v, policy))
            return opened, transitions + [_t(state, opened, TransitionKind.opened, v.key, at)]
        return moved, transitions

    if state.status is Status.recovered:
        if band.is_breach:
            relapsed = replace(moved, status=Status.open, recovery_count=0, recovered_at=None)
            return relapsed, transitions + [_t(state, relapsed, TransitionKind.relapsed, v.key, at)]
        return moved, transitions

    # active: open, acknowledged, improving, escalated
    if band.is_breach:
        moved = replace(moved, recovery_count=0)
        if _severity(band) != _severity(state.band):
            kind = (
                TransitionKind.severity_up if _severity(band) > _severity(state.band) else TransitionKind.severity_down
            )
            return moved, transitions + [_t(state, moved, kind, v.key, at)]
        return moved, transitions
    if meets_recovery(v.value, v.thresholds, policy.recovery_margin):
        count = state.recovery_count if same_period else state.recovery_count + 1
    else:
        count = 0  # normal but short of the recovery line: the hold starts again
    # While active, `band` is the warning's severity: a good period does not lower it (only
    # recovery does), so a value hovering at the line cannot flap severity either.
    moved = replace(moved, recovery_count=count, band=state.band)
    if count >= policy.recovery_needed:
        recovered = replace(moved, status=Status.recovered, recovered_at=at, band=band)
        return recovered, transitions + [_t(state, recovered, TransitionKind.recovered, v.key, at)]
    return moved, transitions


def _tick(state: WarningState | None, tick: Tick) -> tuple[WarningState | None, list[Transition]]:
    if state is None or state.status not in LIVE:
        return state, []
    now, transitions = tick.at, []
    # A recovered warning waits for review (复评), not for data: telling its owner the feed stopped
    # is noise, so staleness applies to pending and active warnings only.
    if (
        state.status is not Status.recovered
        and not state.stale
        and state.last_data_at is not None
        and now - state.last_data_at > tick.freshness
    ):
        stale = replace(state, stale=True, updated_at=now)
        reason = f"超过 {tick.freshness.days} 天无新数据（最近一次 {state.last_data_at:%Y-%m-%d}）"
        transitions.append(
            _t(state, stale, TransitionKind.stale, f"tick:stale:{state.last_data_at.isoformat()}", now, reason=reason)
        )
        state = stale
    if (
        state.status in ACTIVE
        and state.next_escalation_at is not None
        and now >= state.next_escalation_at
        and state.escalation_level < MAX_ESCALATION
    ):
        # After downtime several steps may be due at once: every level the schedule has reached is
        # a transition of its own, in order, so each person on the way is told once (none skipped).
        step_len = timedelta(days=tick.policy.escalate_every_days)
        steps = 1 + int((now - state.next_escalation_at) / step_len)
        target = min(MAX_ESCALATION, state.escalation_level + steps)
        next_at = state.next_escalation_at + step_len * steps
        for level in range(state.escalation_level + 1, target + 1):
            escalated = replace(
                state, status=Status.escalated, escalation_level=level, updated_at=now, next_escalation_at=next_at
            )
            reason = (
                f"改进期限 {state.due_date:%Y-%m-%d} 已过，升级至第 {level} 级督办"
                if state.due_date
                else f"升级至第 {level} 级督办"
            )
            transitions.append(
                _t(
                    state,
                    escalated,
                    TransitionKind.escalated,
                    f"tick:escalated:{level}",
                    now,
                    reason=reason,
                    level=level,
                )
            )
            state = escalated
    return state, transitions


def _act(state: WarningState | None, cmd: Command) -> tuple[WarningState | None, list[Transition]]:
    if state is None:
        raise LifecycleError("没有这条预警 (no such warning)")
    name = type(cmd).__name__
    if isinstance(cmd, MarkFalsePositive):
        if state.status not in LIVE:
            raise LifecycleError(
                f"{state.status.zh}的预警不能再标为误报"
                f" (cannot mark a {state.status.value} warning as a false positive)"
            )
        if len(cmd.reason.strip()) < 2:
            raise LifecycleError("标为误报须写明原因 (a false positive needs a reason)")
        new = replace(
            state,
            status=Status.closed,
            closed_at=cmd.at,
            resolution=Resolution.false_positive,
            close_reason=cmd.reason.strip(),
            updated_at=cmd.at,
        )
        return new, [
            _t(
                state,
                new,
                TransitionKind.false_positive,
                f"{cmd.actor}:false_positive",
                cmd.at,
                cmd.actor,
                cmd.reason.strip(),
            )
        ]
    if isinstance(cmd, Acknowledge):
        if state.status not in (Status.open, Status.escalated, Status.recovered):
            raise LifecycleError(
                f"只能确认预警中、已升级督办或已恢复待复评的预警，当前为{state.status.zh}"
                f" ({name}: it is {state.status.value})"
            )
        if state.status is Status.recovered and state.acknowledged_at is not None:
            raise LifecycleError(f"该预警已确认过 ({name}: already acknowledged)")
        status = Status.recovered if state.status is Status.recovered else Status.acknowledged
        new = replace(state, status=status, acknowledged_at=state.acknowledged_at or cmd.at, updated_at=cmd.at)
        return new, [
            _t(
                state,
                new,
                TransitionKind.acknowledged,
                f"{cmd.actor}:acknowledged:{cmd.at.isoformat()}",
                cmd.at,
                cmd.actor,
                cmd.note or "已确认预警",
            )
        ]
    if isinstance(cmd, StartImprovement):
        if state.status not in ACTIVE and state.status is not Status.recovered:
            raise LifecycleError(
                f"只能对未关闭的预警登记改进措施，当前为{state.status.zh} ({name}: it is {state.status.value})"
            )
        if len(cmd.text.strip()) < 2:
            raise LifecycleError("请写明改进措施 (an improvement needs a text)")
        if cmd.due <= cmd.at:
            raise LifecycleError("改进期限须晚于现在 (the due date must lie in the future)")
        if cmd.max_due is not None and cmd.due > cmd.max_due:
            raise LifecycleError(
                f"改进期限不得晚于 {cmd.max_due.astimezone(_CHINA):%Y-%m-%d}（本指标最长限期） "
                f"(the due date lies past the rule's maximum)"
            )
        if state.status in (Status.improving, Status.recovered):
            # a further measure: a new row; an improving warning takes the new due date, a recovered
            # one keeps waiting for review (its due date no longer drives escalation)
            new = replace(state, updated_at=cmd.at, acknowledged_at=state.acknowledged_at or cmd.at)
            if state.status is Status.improving:
                new = replace(new, due_date=cmd.due, next_escalation_at=cmd.due)
            return new, [
                _t(
                    state,
                    new,
                    TransitionKind.measure_added,
                    f"{cmd.actor}:measure:{cmd.at.isoformat()}",
                    cmd.at,
                    cmd.actor,
                    cmd.text,
                )
            ]
        new = replace(
            state,
            status=Status.improving,
            due_date=cmd.due,
            next_escalation_at=cmd.due,
            updated_at=cmd.at,
            acknowledged_at=state.acknowledged_at or cmd.at,
        )
        return new, [
            _t(
                state,
                new,
                TransitionKind.improvement_started,
                f"{cmd.actor}:improvement:{cmd.at.isoformat()}",
                cmd.at,
                cmd.actor,
                cmd.text,
            )
        ]
    if isinstance(cmd, Waive):
        if state.status not in LIVE or state.status is Status.pending:
            raise LifecycleError(f"{state.status.zh}的预警无需免于登记改进措施 ({name}: it is {state.status.value})")
        if len(cmd.reason.strip()) < 4:
            raise LifecycleError("免于登记改进措施须写明原因 (a waiver needs a reason)")
        new = replace(state, updated_at=cmd.at)
        return new, [
            _t(
                state,
                new,
                TransitionKind.waived,
                f"{cmd.actor}:waived:{cmd.at.isoformat()}",
                cmd.at,
                cmd.actor,
                cmd.reason.strip(),
            )
        ]
    if isinstance(cmd, Review):
        if state.status is not Status.recovered:
            raise LifecycleError(
                f"复评只能关闭已恢复的预警，当前为{state.status.zh} ({name}: it is {state.status.value})"
            )
        if cmd.require_measure and not cmd.waived:
            missing = []
            if state.acknowledged_at is None:
                missing.append("确认预警")
            if cmd.measures < 1:
                missing.append("登记改进措施")
            if missing:
                raise LifecycleError(
                    f"复评未通过：负责人尚未{'、'.join(missing)}（或由质量办写明原因免于登记） "
                    f"(review needs an acknowledgement and a recorded measure, or a waiver)"
                )
        new = replace(state, status=Status.closed, closed_at=cmd.at, resolution=Resolution.reviewed, updated_at=cmd.at)
        return new, [
            _t(state, new, TransitionKind.reviewed, f"{cmd.actor}:reviewed", cmd.at, cmd.actor, cmd.note or "复评通过")
        ]
    raise TypeError(f"unknown command {cmd!r}")
