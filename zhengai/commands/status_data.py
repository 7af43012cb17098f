"""`zhengai status-data export`: the yearly 状态数据 tables, derived from the store.

    zhengai status-data export --year 2026 [--out DIR] [--store URL] [--rulebook DIR] [--json]

For the academic year ``Y`` (the calendar year ``Y``, terms ``(Y-1)-Y-2`` and ``Y-(Y+1)-1``) the
latest stored observation of every enabled rule's metric for every entity goes into one table
per level (学校、专业、课程、教师、学生): a row per entity, a column per indicator (its Chinese name
and unit), written as UTF-8 CSV with BOM (Excel opens it) — the figures the college reports to the
national 状态数据 platform, from the same data the warnings are judged on. Weekly, monthly and
daily metrics are reported by their latest value in the year. Only counts and rates leave the
store: entity ids and names, no personal data beyond what the directory already holds (student
tables carry the 学号 masked).
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import click

from zhengai.commands._options import json_option, namespace, rulebook_option, store_option

__all__ = ["export_status_data", "register", "periods_of_year"]

_LEVEL_ZH = {"school": "学校", "major": "专业", "course": "课程", "teacher": "教师", "student": "学生"}


def periods_of_year(year: int, period: str) -> bool:
    """Whether ``period`` falls in the academic year reported as ``year``."""
    if period == str(year):
        return True
    if period in (f"{year - 1}-{year}-2", f"{year}-{year + 1}-1"):
        return True
    return period[:4] == str(year) and len(period) in (7, 8, 10)  # month, ISO week, day


def export_status_data(store: str, year: int, out: Path, rulebook: str | None = None) -> dict[str, int]:
    """Write the tables; return rows per level."""
    from sqlalchemy import select

    from zhengai.ingest.privacy import mask_text
    from zhengai.rules.loader import load_rulebook
    from zhengai.warnings.schema import ObservationRow
    from zhengai.warnings.store import WarningStore

    rules = [r for r in load_rulebook(rulebook).rules.values() if r.enabled]
    by_metric = {r.metric: r for r in rules}
    ws = WarningStore(store)
    directory = ws.directory.load()
    latest: dict[tuple[str, str], tuple] = {}  # (metric, entity) → (observed_at, value)
    with ws.session() as s:
        q = select(
            ObservationRow.metric,
            ObservationRow.entity_id,
            ObservationRow.period,
            ObservationRow.value,
            ObservationRow.observed_at,
        ).where(ObservationRow.metric.in_(list(by_metric)))
        for metric, entity, period, value, at in s.execute(q):
            if periods_of_year(year, period):
                prior = latest.get((metric, entity))
                if prior is None or at >= prior[0]:
                    latest[(metric, entity)] = (at, value)
    table: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for (metric, entity), (_, value) in latest.items():
        table[by_metric[metric].level.value][entity][metric] = value
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for level, rows in sorted(table.items()):
        metrics = [r.metric for r in rules if r.level.value == level and any(r.metric in v for v in rows.values())]
        path = out / f"状态数据_{year}_{_LEVEL_ZH[level]}.csv"
        with open(path, "w", encoding="utf-8-sig", newline="") as fh:
            w = csv.writer(fh)
            unit = lambda m: f"（{by_metric[m].unit}）" if by_metric[m].unit else ""  # noqa: E731
            w.writerow(["对象代码", "对象名称", *(f"{by_metric[m].name}{unit(m)}" for m in metrics)])
            for entity in sorted(rows):
                e = directory.get(entity)
                name = e.name if e else ""
                shown = mask_text(entity) if level == "student" else entity
                w.writerow(
                    [
                        shown,
                        mask_text(name) if level == "student" else name,
                        *("" if m not in rows[entity] else f"{rows[entity][m]:g}" for m in metrics),
                    ]
                )
        counts[level] = len(rows)
    return counts


def _export(args: Any) -> int:
    counts = export_status_data(args.store, args.year, Path(args.out), args.rulebook)
    if args.as_json:
        print(json.dumps({"year": args.year, "out": str(args.out), "rows": counts}, ensure_ascii=False))
    elif not counts:
        print(f"{args.year} 学年没有可导出的观测值。", file=sys.stderr)
        return 1
    else:
        per = "，".join(f"{_LEVEL_ZH[k]} {v} 行" for k, v in counts.items())
        print(f"已导出 {args.year} 学年状态数据：{per} → {args.out}")
    return 0


def register(cli: click.Group) -> None:
    group = click.Group("status-data", help="the yearly 状态数据 tables, derived from the store")
    cli.add_command(group)

    @group.command("export", help="write one CSV per level for an academic year")
    @click.option("--year", type=int, required=True)
    @click.option("--out", default="status-data")
    @store_option
    @rulebook_option
    @json_option
    def export(**params: Any) -> int:
        return _export(namespace(**params))
