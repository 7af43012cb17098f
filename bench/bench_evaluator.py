"""Throughput of the pure evaluator against a bare comparison loop on the same values.

    python bench/bench_evaluator.py [--n 200000]

Baseline: the cheapest possible band decision (two float comparisons per value, no thresholds
object, no reason text). Measured: ``evaluate`` as the pipelines call it — override resolution
done once per entity as in a batch, then the band, the Chinese reason and a typed Verdict per
value. Prints values/s for both and the ratio; no assertions.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime, timezone

from zhengai.rules.evaluator import evaluate, resolve_thresholds
from zhengai.rules.loader import load_rulebook


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    args = ap.parse_args()
    rule = load_rulebook().rules["student.attendance_rate"]
    th = resolve_thresholds(rule, {}, ("SCH",))
    rng = random.Random(3)
    values = [min(100.0, max(0.0, rng.gauss(96, 3))) for _ in range(args.n)]
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)

    t = time.perf_counter()
    inner, outer = max(th.standard, th.warning), min(th.standard, th.warning)
    bands = [2 if v < outer else 1 if v < inner else 0 for v in values]
    base_s = time.perf_counter() - t

    t = time.perf_counter()
    verdicts = [evaluate(rule, th, value=v, entity_id="S1", period="2026-W44", observed_at=now, now=now, observation_key=str(i))
                for i, v in enumerate(values)]
    eval_s = time.perf_counter() - t

    breaches = sum(v.band.is_breach for v in verdicts)
    assert breaches == sum(1 for b in bands if b), "the evaluator and the baseline disagree"  # a sanity check, not a timing
    n = len(values)
    print(f"values: {n} ({breaches} breaching)")
    print(f"baseline bare comparisons : {n / base_s:12.0f} values/s")
    print(f"evaluate → Verdict        : {n / eval_s:12.0f} values/s")
    print(f"ratio evaluate / baseline : {base_s / eval_s:12.4f}")


if __name__ == "__main__":
    main()
