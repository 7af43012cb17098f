"""Warning lifecycle as a pure state machine (first version).

One warning per (rule, entity, episode). ``step(state, verdict)`` returns the next state and the
transitions it caused; it never reads a clock or a database, so replays and backtests give the
same answer. This version knows ``open`` (yellow or red, with severity changes) and ``resolved``
(the metric is back to normal). The store issue extends it with pending periods, acknowledgement,
improvement with a due date, escalation, hysteresis on recovery, closure on review or as a false
positive, and staleness — new statuses and transition kinds slot into the same two types.

Rules of this version:
- a breach (yellow/red) with no open warning opens a new episode;
- a breach of another colour on an open warning changes its severity;
- normal/excellent on an open warning resolves it;
- a stale verdict changes nothing (absence of data is not recovery);
- a verdict for an older period than the warning last saw changes nothing (late data does not
  rewrite the present), and the same period with the same band is a no-op (idempotent replay).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

from zhengai.ingest.records import Band, Verdict, period_kind

__all__ = ["Status", "TransitionKind", "WarningState", "Transition", "step"]


class Status(str, Enum):
    open = "open"
    resolved = "resolved"

    @property
    def zh(self) -> str:
        return {"open": "预警中", "resolved": "已恢复"}[self.value]


class TransitionKind(str, Enum):
    opened = "opened"
    severity_up = "severity_up"
    severity_down = "severity_down"
    resolved = "resolved"

    @property
    def zh(self) -> str:
        return {
            "opened": "新预警",
            "severity_up": "预警升级",
            "severity_down": "预警降级",
            "resolved": "指标恢复",
        }[self.value]


@dataclass(frozen=True)
class WarningState:
    rule_id: str
    entity_id: str
    episode: int
    status: Status
    band: Band
    opened_period: str
    last_period: str
    value: float | bool | None
    reason: str
    opened_at: datetime
    updated_at: datetime


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
    verdict_key: str
    at: datetime


def _older(period: str, than: str) -> bool:
    """Is ``period`` older than ``than``? Periods of different kinds are not comparable: treat
    them as current (the rule's cycle changed)."""
    if period_kind(period) != period_kind(than):
        return False
    return period < than


def step(state: WarningState | None, verdict: Verdict) -> tuple[WarningState | None, list[Transition]]:
    band = verdict.band
    if band is Band.stale:
        return state, []
    if state is not None and state.status is Status.open:
        if _older(verdict.period, state.last_period):
            return state, []
        if verdict.period == state.last_period and band is state.band:
            return state, []
    now = verdict.evaluated_at

    def transition(kind: TransitionKind, to_status: Status, episode: int) -> Transition:
        return Transition(
            kind=kind,
            episode=episode,
            from_status=state.status if state else None,
            to_status=to_status,
            from_band=state.band if state else None,
            to_band=band,
            period=verdict.period,
            value=verdict.value,
            reason=verdict.reason,
            verdict_key=verdict.key,
            at=now,
        )

    if band.is_breach:
        if state is None or state.status is Status.resolved:
            if state is not None and _older(verdict.period, state.last_period):
                # A breach older than the last recovery is history, not a new episode.
                return state, []
            episode = state.episode + 1 if state else 1
            new = WarningState(
                rule_id=verdict.rule_id,
                entity_id=verdict.entity_id,
                episode=episode,
                status=Status.open,
                band=band,
                opened_period=verdict.period,
                last_period=verdict.period,
                value=verdict.value,
                reason=verdict.reason,
                opened_at=now,
                updated_at=now,
            )
            return new, [transition(TransitionKind.opened, Status.open, episode)]
        moved = replace(state, last_period=verdict.period, value=verdict.value, reason=verdict.reason, updated_at=now)
        if band is state.band:
            return moved, []
        kind = TransitionKind.severity_up if band is Band.red else TransitionKind.severity_down
        return replace(moved, band=band), [transition(kind, Status.open, state.episode)]

    # normal or excellent
    if state is None or state.status is Status.resolved:
        return state, []
    new = replace(state, status=Status.resolved, band=band, last_period=verdict.period, value=verdict.value, reason=verdict.reason, updated_at=now)
    return new, [transition(TransitionKind.resolved, Status.resolved, state.episode)]
