"""`zhengai rules backtest`: what the current and a candidate rulebook would have done over a period.

    zhengai rules backtest --term 2025-2026-1 [--rulebook DIR] [--candidate DIR|FILE]
                           [--set course.attendance_rate.standard=88 ...] [--store URL] [--json]

The work is ``run_backtest`` (plain parameters, returns the comparison); ``backtest_command``
prints it for people (Chinese) or as JSON. The web page calls ``run_backtest`` too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from zhengai.commands._options import json_option, namespace, rulebook_option, store_option
from zhengai.ingest.plausibility import period_kind, period_start
from zhengai.ingest.records import Band
from zhengai.rules.loader import RulebookError, RuleSet, load_rulebook

if TYPE_CHECKING:
    from zhengai.warnings.backtest import Comparison
    from zhengai.warnings.store import WarningStore

_CHINA = ZoneInfo("Asia/Shanghai")

__all__ = ["term_window", "run_backtest", "format_report", "backtest_command", "register"]


def term_window(term: str) -> tuple[datetime, datetime]:
    """[start, end) of a term such as 2025-2026-1 (the next term's start is the end)."""
    if period_kind(term) != "term":
        raise ValueError(f"学期应写成 2025-2026-1（not a term: {term!r}）")
    first, _, half = term.split("-")
    y = int(first)
    following = f"{y}-{y + 1}-2" if half == "1" else f"{y + 1}-{y + 2}-1"
    return period_start(term), period_start(following)


@dataclass
class BacktestRun:
    comparison: Comparison
    current: RuleSet
    candidate: RuleSet
    start: datetime
    end: datetime
    seconds: dict


def run_backtest(
    store_url: str | WarningStore, current: RuleSet, candidate: RuleSet | None, start: datetime, end: datetime
) -> BacktestRun:
    """Read the period's observations and 误报 from the store and compare the two rulebooks."""
    import time

    from zhengai.warnings.backtest import backtest, changed_rules, false_positives, stored_history
    from zhengai.warnings.store import WarningStore

    t0 = time.perf_counter()
    store = WarningStore(store_url) if isinstance(store_url, str) else store_url
    try:
        rule_ids = changed_rules(current, candidate) if candidate is not None else list(current.rules)
        rules_of = {**current.rules, **(candidate.rules if candidate else {})}
        metrics = {rules_of[r].metric for r in rule_ids}
        directory = store.directory.load()
        history = stored_history(store.session, start, end, metrics)
        fps = false_positives(store.session, rule_ids, start, end)
    finally:
        if isinstance(store_url, str):
            store.engine.dispose()
    t1 = time.perf_counter()
    comparison = backtest(current, candidate, history, directory, end, fps)
    t2 = time.perf_counter()
    return BacktestRun(
        comparison, current, candidate or current, start, end, {"read": round(t1 - t0, 3), "replay": round(t2 - t1, 3)}
    )


def _band(value: str | None) -> str:
    return Band(value).zh if value else "（无数据）"


def format_report(run: BacktestRun) -> list[str]:
    c = run.comparison
    lines = [
        f"回测区间 {run.start.astimezone(_CHINA):%Y-%m-%d} 至 {run.end.astimezone(_CHINA):%Y-%m-%d}（不含）："
        f"{c.observations} 条观测，"
        f"回测 {len(c.rule_ids)} 条规则"
    ]
    if not c.rule_ids:
        return lines + ["候选规则库与当前规则库没有差别。"]
    lines.append("")
    lines.append("规则 | 新开预警 | 升为红色 | 逾期升级（无人处理时） | 指标恢复 （当前 → 候选）")
    for rid in c.rule_ids:
        rule = run.candidate.rules.get(rid) or run.current.rules[rid]
        cells = " | ".join(f"{a} → {b}" for a, b in c.kinds(rid).values())
        lines.append(f"{rid} {rule.name} | {cells}")
    for dim, title in (("level", "按层面"), ("department", "按二级学院"), ("band", "按色带")):
        lines.append("")
        lines.append(f"新开预警{title}（当前 → 候选）：")
        for key, (a, b) in c.groups[dim].items():
            lines.append(f"  {key}：{a} → {b}（{b - a:+d}）")
    for title, items in (("候选规则库多开的预警", c.more), ("候选规则库不再开的预警", c.fewer)):
        lines.append("")
        lines.append(f"{title}：{len(items)} 条")
        lines.extend(f"  {o.rule_id} · {o.entity_id} · {o.period} · {_band(o.band)}" for o in items[:50])
        if len(items) > 50:
            lines.append(f"  …另 {len(items) - 50} 条（--json 查看全部）")
    lines.append("")
    lines.append(f"色带改变的实体（期末色带）：{len(c.band_changes)} 个")
    lines.extend(
        f"  {b.rule_id} · {b.entity_id} {b.name}：{_band(b.before)} → {_band(b.after)}" for b in c.band_changes[:50]
    )
    lines.append("")
    lines.append(f"可避免的误报：{len(c.avoided)} 条")
    lines.extend(
        f"  预警 #{a['warning_id']} {a['rule_id']} · {a['entity_id']} · {a['opened_period']}"
        f"（误报原因：{a['reason'] or '—'}）→ 候选为{_band(a['candidate_band'])}"
        for a in c.avoided
    )
    lines.append("")
    lines.append(f"用时：读取 {run.seconds['read']} 秒，回放 {run.seconds['replay']} 秒")
    return lines


def backtest_command(
    *,
    store: str,
    rulebook: str | None,
    candidate: str | None,
    changes: Iterable[str],
    term: str | None,
    start: str | None,
    end: str | None,
    as_json: bool,
) -> int:
    from zhengai.rules.candidate import candidate_rulebook

    try:
        if term:
            window = term_window(term)
        elif start and end:
            window = (datetime.fromisoformat(start), datetime.fromisoformat(end))
        else:
            print(
                "请给出回测区间：--term 2025-2026-1，或 --from 与 --to（need --term or --from/--to）", file=sys.stderr
            )
            return 2
        current = load_rulebook(rulebook)
        changes = list(changes)
        cand = candidate_rulebook(rulebook, candidate, changes) if (candidate or changes) else None
    except RulebookError as exc:
        print(exc, file=sys.stderr)
        print("规则库未通过校验，未回测。", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    run = run_backtest(store, current, cand, *window)
    if as_json:
        print(json.dumps(run.comparison.as_json() | {"seconds": run.seconds}, ensure_ascii=False, indent=1))
    else:
        print("\n".join(format_report(run)))
    return 0


def _cmd(args: SimpleNamespace) -> int:
    return backtest_command(
        store=args.store,
        rulebook=args.rulebook,
        candidate=args.candidate,
        changes=args.set or [],
        term=args.term,
        start=args.start,
        end=args.end,
        as_json=args.json,
    )


def register(rules: click.Group) -> None:
    """Adds ``backtest`` under ``zhengai rules``."""

    @rules.command(
        "backtest", help="回测：当前与候选规则库在某学期会开多少预警、在哪里 (backtest over stored observations)"
    )
    @click.option("--term", help="学期，如 2025-2026-1")
    @click.option("--from", "start", help="起（ISO 时间，含时区），与 --to 一起代替 --term")
    @click.option("--to", "end", help="止（不含）")
    @rulebook_option
    @click.option(
        "--candidate", type=click.Path(path_type=Path), default=None, help="候选规则库：目录，或替换同名文件的单个 YAML"
    )
    @click.option(
        "--set",
        "set",
        multiple=True,
        metavar="RULE.FIELD=VALUE",
        help="改一个值，如 course.attendance_rate.standard=88（可多次）",
    )
    @store_option
    @json_option
    def backtest(**params: Any) -> int:
        args = namespace(**params)
        args.json, args.set = args.as_json, list(args.set) or None
        return _cmd(args)
