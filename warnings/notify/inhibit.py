"""Inhibition: a school-level red mutes the warnings derived from it.

When the school's 状态数据采集及时率 is red, a hundred course warnings about missing attendance are
the same problem seen from below; the people who can fix it are the ones the school warning
already reached. "Derived" is declared, never guessed (``InhibitRule`` in ``notify.yaml``): the
target rules listed under ``targets`` (globs), and with ``same_metric`` the rules measuring the
same thing one level down (``school.X`` → ``major.X``, ``course.X`` …), for entities under the
source's entity (a school-level source covers the whole school).

What happens to an inhibited notification:
- while the source stays active it is *held* and checked again every run;
- when the source clears and the derived warning is still active, it goes out (late, not lost);
- when the derived warning is over before that, it is *suppressed* — and so is its recovery
  notice, unless the warning had been announced on that channel before the inhibition began
  (people who were told a warning opened are always told it closed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from zhengai.warnings.notify.config import InhibitRule
from zhengai.warnings.notify.pending import Pending

__all__ = ["Source", "find_inhibitor", "decide", "PASS", "HOLD", "SUPPRESS"]

PASS, HOLD, SUPPRESS = "pass", "hold", "suppress"

Lineage = Callable[[str], Sequence[str]]  # entity ids from the school down to the entity


@dataclass(frozen=True)
class Source:
    """An active warning that may inhibit others."""

    warning_id: int
    rule_id: str
    entity_id: str
    level: str
    metric: str
    band: str


def _metric_name(metric: str | None) -> str | None:
    return metric.split(".", 1)[1] if metric and "." in metric else None


def _derived(rule: InhibitRule, source: Source, p: Pending, lineage: Lineage | None) -> bool:
    if p.warning_id == source.warning_id or p.rule_id is None or p.entity_id is None:
        return False
    by_target = any(fnmatchcase(p.rule_id, t) for t in rule.targets)
    by_metric = (
        rule.same_metric
        and _metric_name(p.metric) is not None
        and _metric_name(p.metric) == _metric_name(source.metric)
    )
    if not (by_target or by_metric):
        return False
    if source.level == "school":
        return p.level != "school"  # lower-level warnings only
    if lineage is None:
        return False
    chain = lineage(p.entity_id)
    return source.entity_id in chain and source.entity_id != p.entity_id


def find_inhibitor(
    rules: Sequence[InhibitRule], sources: Sequence[Source], p: Pending, lineage: Lineage | None = None
) -> tuple[InhibitRule, Source] | None:
    for rule in rules:
        bands = {b.value for b in rule.bands}
        for source in sources:
            if fnmatchcase(source.rule_id, rule.source) and source.band in bands and _derived(rule, source, p, lineage):
                return rule, source
    return None


def decide(
    p: Pending, inhibitor: tuple[InhibitRule, Source] | None, *, announced: bool, earlier_inhibited: bool
) -> str:
    """PASS, HOLD or SUPPRESS for one notification. ``announced``: the warning was sent on this
    channel to this recipient before; ``earlier_inhibited``: an earlier notice of the warning on
    this channel was held by inhibition."""
    if p.closing:
        return SUPPRESS if (earlier_inhibited or inhibitor is not None) and not announced else PASS
    if inhibitor is None:
        return PASS
    return HOLD if p.warning_active else SUPPRESS
