"""How long a backtest of the default demo college's term takes (``zhengai rules backtest``).

    python bench/bench_backtest.py [--size default] [--out /tmp/zhengai-bench-backtest]

Runs the demo once (its SQLite store holds the term's observations), then times, on that store:
the baseline — reading the term's observations from the store and nothing else — and the
backtests the quality office runs while editing: one changed value (only that rule is replayed),
and the whole current rulebook (every enabled rule replayed). Prints seconds and the ratio to the
baseline; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from zhengai.commands.rulebook.backtest import run_backtest
from zhengai.demo.run import run_demo
from zhengai.rules.candidate import apply_changes
from zhengai.rules.loader import load_rulebook
from zhengai.warnings.backtest import stored_history
from zhengai.warnings.schema import ObservationRow
from zhengai.warnings.store import WarningStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="default", choices=["small", "default"])
    ap.add_argument("--out", default="/tmp/zhengai-bench-backtest")
    args = ap.parse_args()
    t = time.perf_counter()
    run_demo(Path(args.out), args.size, out=io.StringIO(), progress=False)
    print(f"demo ({args.size}) run in {time.perf_counter() - t:.1f} s")
    url = f"sqlite:///{Path(args.out) / 'zhengai.sqlite'}"
    store = WarningStore(url)
    with store.session() as s:
        start, last = s.execute(
            select(func.min(ObservationRow.period_start), func.max(ObservationRow.period_start))
        ).one()
    end = last + timedelta(days=1)

    t = time.perf_counter()
    n = len(stored_history(store.session, start, end))
    base = time.perf_counter() - t
    print(f"baseline: read {n:,} observations ({start:%Y-%m-%d} – {end:%Y-%m-%d}) in {base:.2f} s")

    current = load_rulebook()
    for label, candidate in (
        (
            "one changed value (student.attendance_rate.standard=88)",
            apply_changes(current, ["student.attendance_rate.standard=88"]),
        ),
        (
            "one changed value (course.attendance_rate.warning=97)",
            apply_changes(current, ["course.attendance_rate.warning=97"]),
        ),
        ("whole current rulebook (no candidate)", None),
    ):
        t = time.perf_counter()
        run = run_backtest(url, current, candidate, start, end)
        took = time.perf_counter() - t
        c = run.comparison
        print(
            f"{label}: {took:.2f} s ({took / base:.1f}× baseline; read {run.seconds['read']} s, replay "
            f"{run.seconds['replay']} s), {c.current.verdicts:,} verdicts, "
            f"{len(c.more)} more / {len(c.fewer)} fewer warnings"
        )


if __name__ == "__main__":
    main()
