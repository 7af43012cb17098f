"""Connector read speed on the demo college's 教务 database, against the expanded keyset predicate.

    python bench/bench_connectors.py [--size default] [--page-size 1000]

Generates the demo college's sources once, then in the same run:

* reads ``jiaowu.attendance`` (350,096 rows on the default college) with the stream's keyset
  predicate — the row value ``(updated_at, id) > (?, ?)`` — and, as the baseline, with the
  expanded ``updated_at > ? OR (updated_at = ? AND id > ?)`` it replaced (pages per second and
  seconds for the whole read, plus the slowest page of each);
* runs the whole 教务 connector (every stream: read, map, batch, bookmark) into a delivery that
  only counts, with the same baseline predicate and per-row cursors for comparison.

Prints figures; asserts nothing about time (only that both reads return the same rows).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import and_, or_

from zhengai.connectors.base import MemoryBookmarks, run_connector
from zhengai.connectors.jiaowu import Attendance, JiaowuConnector
from zhengai.connectors.sql import SqlSource
from zhengai.demo.college import SIZES, generate


def _expanded(self, ts, ident, last_ts, last_id):
    return or_(ts > last_ts, and_(ts == last_ts, ident > last_id))


class _Count:
    def __init__(self) -> None:
        self.n = 0

    def deliver(self, records) -> None:
        self.n += len(records)


def _read(db: SqlSource, page_size: int, baseline: bool) -> tuple[float, int, float, int]:
    stream = Attendance(db)
    if baseline:
        stream.after = _expanded.__get__(stream)
    stream.page_size = page_size
    fetch, slowest = db.fetch, [0.0]

    def timed(stmt, *, what):
        t = time.perf_counter()
        try:
            return fetch(stmt, what=what)
        finally:
            slowest[0] = max(slowest[0], time.perf_counter() - t)

    db.fetch = timed
    try:
        t = time.perf_counter()
        n, last = 0, None
        for row in stream.read(None):
            n += 1
            last = row["id"]
        return time.perf_counter() - t, n, slowest[0], last
    finally:
        db.fetch = fetch


def _run(url: str, school: str, baseline: bool) -> tuple[float, int, int]:
    connector = JiaowuConnector(url, school_id=school)
    try:
        for s in connector.streams:
            if baseline and hasattr(s, "after"):
                s.after = _expanded.__get__(s)
                type(s).cursor_ordered = False  # per-row cursors, as before
        delivery = _Count()
        t = time.perf_counter()
        report = run_connector(connector, delivery, MemoryBookmarks())
        return time.perf_counter() - t, report.total("read"), delivery.n
    finally:
        for s in connector.streams:
            if "cursor_ordered" in vars(type(s)):
                del type(s).cursor_ordered
        connector.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="default", choices=sorted(SIZES))
    ap.add_argument("--page-size", type=int, default=Attendance.page_size)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        college = generate(Path(tmp) / "sources", SIZES[args.size])
        print(f"demo college ({args.size}) generated in {time.perf_counter() - t:.1f} s")
        url = f"sqlite:///{college.jiaowu_db}"
        db = SqlSource(url)
        base_s, base_n, base_page, base_last = _read(db, args.page_size, baseline=True)
        row_s, row_n, row_page, row_last = _read(db, args.page_size, baseline=False)
        db.close()
        assert (base_n, base_last) == (row_n, row_last), "both predicates must read the same rows"
        print(f"jiaowu.attendance read, {row_n} rows, page size {args.page_size}:")
        print(
            f"  baseline  updated_at > ? OR (updated_at = ? AND id > ?) : {base_s:7.2f} s "
            f" slowest page {base_page * 1000:6.1f} ms"
        )
        print(
            f"  row value (updated_at, id) > (?, ?)                    : {row_s:7.2f} s "
            f" slowest page {row_page * 1000:6.1f} ms"
        )
        print(f"  speed-up                                               : {base_s / row_s:7.1f} ×")
        base_run, read, sent = _run(url, college.school_id, baseline=True)
        new_run, read2, sent2 = _run(url, college.school_id, baseline=False)
        assert (read, sent) == (read2, sent2), "both runs must deliver the same records"
        print(f"whole 教务 connector run ({read} rows → {sent} records, delivery only counts):")
        print(f"  baseline (expanded predicate, cursor per row) : {base_run:7.2f} s")
        print(f"  now (row value, cursor per batch)             : {new_run:7.2f} s")
        print(f"  speed-up                                      : {base_run / new_run:7.2f} ×")


if __name__ == "__main__":
    main()
