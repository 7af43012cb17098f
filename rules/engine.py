"""Evaluate a batch of observations against a RuleSet — the loop both runtimes share.

An observation that cannot be evaluated (a metric no rule knows, an entity the directory does not
know, a value of the wrong kind) becomes a dead letter with the reason; the batch goes on. A
metric whose rule is disabled is informational: stored, not judged, not an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import DeadLetter, Observation, Thresholds, Verdict, period_sort_key
from zhengai.rules.evaluator import EvaluationError, evaluate, resolve_thresholds
from zhengai.rules.loader import RuleSet

__all__ = ["BatchResult", "evaluate_batch"]


@dataclass
class BatchResult:
    verdicts: list[Verdict] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # Beside each dead letter: the observation and a reason code for metrics (unknown_metric,
    # unknown_entity, evaluation_error) — the words stay in the dead letter.
    rejected: list[tuple[Observation, str]] = field(default_factory=list)

    def _reject(self, obs: Observation, code: str, reason: str, now: datetime) -> None:
        self.dead_letters.append(_dead(obs, reason, now))
        self.rejected.append((obs, code))


def _dead(obs: Observation, reason: str, now: datetime) -> DeadLetter:
    return DeadLetter(
        source=obs.source, reason=reason, raw=json.dumps(obs.model_dump(mode="json"), ensure_ascii=False), at=now
    )


def evaluate_batch(
    rules: RuleSet, observations: Iterable[Observation], directory: Directory, now: datetime, *, replay: bool = False
) -> BatchResult:
    """Verdicts come out ordered by (rule, entity, period) so the lifecycle sees each series in
    time order.

    ``replay=True`` evaluates each observation as of the moment it was observed — what a live
    worker would have done when it arrived. Use it when a batch carries history (a first load, a
    backtest); otherwise every past week would be judged stale against today's clock."""
    result = BatchResult()
    resolved: dict[tuple[str, ...], Thresholds] = {}
    for obs in observations:
        matching = rules.for_metric(obs.metric)
        if not matching:
            if not rules.knows(obs.metric):
                result._reject(obs, "unknown_metric", f"no rule for metric {obs.metric!r}", now)
            continue  # informational metric (its rule is disabled): stored, not judged
        if obs.entity_id not in directory:
            result._reject(obs, "unknown_entity", f"entity {obs.entity_id!r} is not in the directory", now)
            continue
        lineage = directory.lineage(obs.entity_id)
        at = obs.observed_at if replay else now
        for rule in matching:
            try:
                if obs.level is not rule.level:
                    raise EvaluationError(
                        f"metric {obs.metric} is a {rule.level.value}-level metric, observation says {obs.level.value}"
                    )
                overrides = rules.overrides_for(rule.id)
                # Thresholds depend only on the overrides met down the lineage: most entities
                # share one resolution per rule, so it is made once per batch and shared.
                chain = (rule.id, *(e for e in lineage if e in overrides)) if overrides else (rule.id,)
                thresholds = resolved.get(chain)
                if thresholds is None:
                    thresholds = resolved[chain] = resolve_thresholds(rule, overrides, lineage)
                result.verdicts.append(
                    evaluate(
                        rule,
                        thresholds,
                        value=obs.value,
                        entity_id=obs.entity_id,
                        period=obs.period,
                        observed_at=obs.observed_at,
                        now=at,
                        observation_key=obs.key,
                    )
                )
            except EvaluationError as exc:
                result._reject(obs, "evaluation_error", f"rule {rule.id}: {exc}", now)
    result.verdicts.sort(key=lambda v: (v.rule_id, v.entity_id, period_sort_key(v.period)))
    return result
