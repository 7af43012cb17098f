"""`zhengai rules false-positives` and `zhengai rules tuning`: 误报 feeding tuning.

zhengai rules false-positives [--rule ID] [--store URL] [--json]
zhengai rules tuning RULE_ID --term 2025-2026-1 [--rulebook DIR] [--store URL] [--json]
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

import click

from zhengai.commands._options import json_option, namespace, rulebook_option, store_option
from zhengai.rules.loader import RulebookError, load_rulebook

__all__ = ["false_positives_command", "tuning_command", "register"]

_NAME = {"standard": "标准值", "warning": "预警值"}


def false_positives_command(*, store: str, rule: str | None, as_json: bool) -> int:
    from zhengai.warnings.store import WarningStore
    from zhengai.warnings.tuning import false_positive_rates

    st = WarningStore(store)
    try:
        rows = false_positive_rates(st.session, rule)
    finally:
        st.engine.dispose()
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    if not rows:
        print("没有预警记录。")
        return 0
    print("规则 · 规则版本 | 开出预警 | 误报 | 误报率 | 发布 | 误报原因")
    for r in rows:
        when = f"{r['published_at'][:10]} {r['author']}" if r["published_at"] else "（未发布的版本）"
        print(
            f"{r['rule_id']} · {r['rule_version']} | {r['warnings']} | {r['false_positives']} | "
            f"{r['rate']}% | {when} | "
            f"{'；'.join(r['reasons']) or '—'}"
        )
    return 0


def tuning_command(*, store: str, rule_id: str, term: str, rulebook: str | None, as_json: bool) -> int:
    from zhengai.commands.rulebook.backtest import term_window
    from zhengai.warnings.backtest import stored_history
    from zhengai.warnings.store import WarningStore
    from zhengai.warnings.tuning import false_positive_rates, tuning_report

    try:
        rules = load_rulebook(rulebook)
        start, end = term_window(term)
    except RulebookError as exc:
        print(exc, file=sys.stderr)
        return 1
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    rule = rules.rules.get(rule_id)
    if rule is None:
        print(f"没有规则 {rule_id!r}（unknown rule）", file=sys.stderr)
        return 1
    st = WarningStore(store)
    try:
        history = stored_history(st.session, start, end, [rule.metric])
        directory = st.directory.load()
        fps = false_positive_rates(st.session, rule_id)
    finally:
        st.engine.dispose()
    report = tuning_report(rules, rule_id, history, directory, end, fps)
    if as_json:
        print(json.dumps(asdict(report), ensure_ascii=False, indent=1))
        return 0
    u = report.unit
    print(f"{rule.id}「{rule.name}」调校参考（{term}，{report.entities} 个单位的 {report.values} 个测量值）")
    print("分布：" + "，".join(f"{k} {v:g}{u}" for k, v in report.quantiles.items()))
    for name, share in report.below.items():
        print(f"{_NAME[name]} {getattr(rule, name):g}{u}：{share}% 的测量值未达到")
    for name, trials in report.trials.items():
        print(f"{_NAME[name]}取不同值时本学期会开的预警（其中红色）：")
        for value, opened, red in trials:
            mark = "  ← 现行" if value == getattr(rule, name) else ""
            print(f"  {value:g}{u}：{opened}（{red}）{mark}")
    for r in report.false_positives:
        print(f"版本 {r['rule_version']}：开出 {r['warnings']} 条，误报 {r['false_positives']} 条（{r['rate']}%）")
    return 0


def register(rules: click.Group) -> None:
    @rules.command("false-positives", help="误报率：按规则和规则版本")
    @click.option("--rule", default=None)
    @store_option
    @json_option
    def false_positives(**params: Any) -> int:
        args = namespace(**params)
        return false_positives_command(store=args.store, rule=args.rule, as_json=args.as_json)

    @rules.command("tuning", help="调校报告：数值分布、阈值位置、邻近阈值会开的预警")
    @click.argument("rule_id")
    @click.option("--term", required=True)
    @rulebook_option
    @store_option
    @json_option
    def tuning(**params: Any) -> int:
        args = namespace(**params)
        return tuning_command(
            store=args.store, rule_id=args.rule_id, term=args.term, rulebook=args.rulebook, as_json=args.as_json
        )
