"""What the rule kinds add to a judge batch, against the plain threshold evaluation in the same run.

    python bench/bench_kinds.py [--batch 2000]

The 1,000-student college of ``bench_evaluator.py``, ten weeks of student attendance, judged in
batches of ``--batch`` observations in week order. Baseline: ``evaluate_batch`` alone (the
threshold rules). Measured: the same plus ``KindJudge.judge`` (history read, kinds evaluated,
history written; SQLite file store) — with the shipped rulebook (no kind rule watches student
attendance: the plain hot path) and with the student composite enabled (every observation
triggers it and is kept as history). Prints µs per observation; no assertions.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_evaluator import college  # noqa: E402

from zhengai.demo.kinds import demo_rulebook  # noqa: E402
from zhengai.rules.engine import evaluate_batch  # noqa: E402
from zhengai.rules.loader import load_rulebook  # noqa: E402
from zhengai.warnings.history import KindJudge  # noqa: E402


def run(rules, directory, observations, batch: int, kinds: bool, now: datetime) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/h.sqlite")
        judge = KindJudge(engine)
        started = time.perf_counter()
        for i in range(0, len(observations), batch):
            chunk = observations[i : i + batch]
            evaluate_batch(rules, chunk, directory, now)
            if kinds:
                judge.judge(rules, chunk, directory, now)
        spent = time.perf_counter() - started
        engine.dispose()
    return 1e6 * spent / len(observations)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2000)
    args = ap.parse_args()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    directory, observations = college(random.Random(3), now)
    shipped, composite = load_rulebook(), demo_rulebook()
    rows = [
        ("threshold rules only (baseline)", shipped, False),
        ("+ kinds, shipped rulebook", shipped, True),
        ("+ kinds, student composite on", composite, True),
    ]
    print(f"{len(observations)} observations in batches of {args.batch}")
    for label, rules, kinds in rows:
        runs = sorted(run(rules, directory, observations, args.batch, kinds, now) for _ in range(3))
        print(f"{label:34s}: {runs[0]:6.1f}–{runs[-1]:6.1f} µs per observation over 3 runs")


if __name__ == "__main__":
    main()
