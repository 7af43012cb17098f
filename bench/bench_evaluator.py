"""Throughput of the pure evaluator against a bare comparison loop on the same values.

    python bench/bench_evaluator.py [--n 200000]

Baseline: the cheapest possible band decision (two float comparisons per value, no thresholds
object, no reason text). Measured: ``evaluate`` as the pipelines call it — the band, the Chinese
reason and a typed Verdict per value — and ``evaluate_batch``, the loop both runtimes run, per
observation of a 1,000-student college over ten weeks (directory lookups, override resolution,
sorting the series). Prints values/s, µs per observation and the ratios; no assertions.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

from zhengai.ingest.directory import Directory
from zhengai.ingest.records import Entity, EntityKind, Level, Observation
from zhengai.rules.engine import evaluate_batch
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
    now = datetime(2026, 11, 1, tzinfo=UTC)

    t = time.perf_counter()
    inner, outer = max(th.standard, th.warning), min(th.standard, th.warning)
    bands = [2 if v < outer else 1 if v < inner else 0 for v in values]
    base_s = time.perf_counter() - t

    t = time.perf_counter()
    verdicts = [
        evaluate(rule, th, value=v, entity_id="S1", period="2026-W44", observed_at=now, now=now, observation_key=str(i))
        for i, v in enumerate(values)
    ]
    eval_s = time.perf_counter() - t

    breaches = sum(v.band.is_breach for v in verdicts)
    assert breaches == sum(1 for b in bands if b), (
        "the evaluator and the baseline disagree"
    )  # a sanity check, not a timing
    n = len(values)
    print(f"values: {n} ({breaches} breaching)")
    print(f"baseline bare comparisons : {n / base_s:12.0f} values/s")
    print(f"evaluate → Verdict        : {n / eval_s:12.0f} values/s")
    print(f"ratio evaluate / baseline : {base_s / eval_s:12.4f}")

    directory, observations = college(rng, now)
    rules = load_rulebook()
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        result = evaluate_batch(rules, observations, directory, now)
        runs.append(time.perf_counter() - t)
    assert len(result.verdicts) == len(observations)  # a sanity check, not a timing
    per = sorted(1e6 * r / len(observations) for r in runs)
    print(
        f"evaluate_batch            : {len(observations)} observations, {per[0]:.1f}–{per[-1]:.1f} µs per observation "
        f"over {len(runs)} runs ({per[0] * 1e-6 * n / base_s:.0f}× the baseline's cost per value)"
    )


def college(rng: random.Random, now: datetime) -> tuple[Directory, list[Observation]]:
    """One school, 4 departments, 20 classes of 50 students; ten weeks of attendance each."""
    records = [Entity(id="SCH", kind=EntityKind.school, name="学校")]
    for d in range(4):
        records.append(Entity(id=f"D{d}", kind=EntityKind.department, name="学院", parent_id="SCH"))
        records.append(Entity(id=f"M{d}", kind=EntityKind.major, name="专业", parent_id=f"D{d}"))
        for k in range(5):
            records.append(Entity(id=f"K{d}{k}", kind=EntityKind.class_, name="班级", parent_id=f"M{d}"))
            records += [
                Entity(id=f"S{d}{k}{s:03d}", kind=EntityKind.student, name="学生", parent_id=f"K{d}{k}")
                for s in range(50)
            ]
    students = [r.id for r in records if r.kind is EntityKind.student]
    observations = [
        Observation(
            level=Level.student,
            entity_id=s,
            metric="student.attendance_rate",
            value=round(rng.gauss(94, 4), 2),
            period=f"2026-W{w}",
            observed_at=now - timedelta(days=3),
            source="bench",
        )
        for w in range(36, 46)
        for s in students
    ]
    return Directory(records), observations


if __name__ == "__main__":
    main()
