"""The `zhengai` command line.

    zhengai demo [--size small|default] [--out DIR] [--seed N]
    zhengai rules lint [FOLDER]
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from zhengai.ingest.settings import store_url


def _demo(args: argparse.Namespace) -> int:
    from zhengai.demo.run import run_demo  # imported late: the demo pulls in every layer

    run = run_demo(Path(args.out), args.size, seed=args.seed, progress=not args.quiet, console_limit=args.show)
    if not run.all_found:
        print("\n示范运行未发现全部预置异常（见上方 ✗）。", file=sys.stderr)
        return 1
    return 0


def _lint(args: argparse.Namespace) -> int:
    from zhengai.rules.loader import RulebookError, load_rulebook, unknown_override_entities

    try:
        rs = load_rulebook(args.folder)
        if args.store:  # overrides are checked against the directory only where one is available
            from zhengai.warnings.store import WarningStore

            directory = WarningStore(args.store).load_directory()
            unknown = unknown_override_entities(rs, directory.__contains__)
            if unknown:
                raise RulebookError(unknown)
    except RulebookError as exc:
        print(exc, file=sys.stderr)
        print(f"规则库未通过校验：{len(exc.errors)} 处错误，未作任何更改。", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 — lint never prints a traceback (e.g. the store is unreachable)
        print(f"无法完成校验（lint failed: {type(exc).__name__}）", file=sys.stderr)
        return 2
    levels: dict[str, int] = {}
    for r in rs.rules.values():
        levels[r.level.zh] = levels.get(r.level.zh, 0) + 1
    per = "，".join(f"{k} {v}" for k, v in levels.items())
    print(f"规则库校验通过：{len(rs.rules)} 条规则（{per}），{sum(len(v) for v in rs.overrides.values())} 条覆盖，版本 {rs.version}")
    return 0


# Subcommand modules under zhengai/commands/, each with register(subparsers).
_COMMAND_MODULES = ("worker", "connectors", "warnings", "notify", "web", "portrait")


def _publish(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from zhengai.rules.loader import RulebookError, load_rulebook
    from zhengai.warnings.store import WarningStore

    try:
        rs = load_rulebook(args.folder)
    except RulebookError as exc:
        print(exc, file=sys.stderr)
        print("规则库未通过校验，未发布。", file=sys.stderr)
        return 1
    store = WarningStore(args.store)
    store.create_schema()
    rows = store.record_rule_versions(rs, author=args.author, reason=args.reason, at=datetime.now(timezone.utc))
    for r in rows:
        change = "，".join(f"{k}: {old} → {new}" for k, (old, new) in r.changes.items()) or "首次发布"
        print(f"{r.rule_id} 版本 {r.version}：{change}")
    print(f"已发布 {len(rows)} 条规则的新版本（作者：{args.author}；原因：{args.reason}）")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zhengai", description="诊改 monitoring and early warning for higher-vocational colleges")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole loop on a generated demo college (no Kafka/PostgreSQL)")
    demo.add_argument("--size", choices=["small", "default"], default="default")
    demo.add_argument("--out", default="zhengai-demo-out", help="output folder (replaced on every run)")
    demo.add_argument("--seed", type=int, default=2026)
    demo.add_argument("--show", type=int, default=5, help="notifications printed in full on the console")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    demo.set_defaults(func=_demo)

    rules = sub.add_parser("rules", help="rulebook tools")
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    lint = rsub.add_parser("lint", help="validate a rulebook folder; every error with file, line and field")
    lint.add_argument("folder", nargs="?", default=None, help="default: the shipped rulebook")
    lint.add_argument("--store", default=None,
                      help="also check that every override names an entity of this store's directory (e.g. $ZHENGAI_STORE_URL)")
    lint.set_defaults(func=_lint)
    pub = rsub.add_parser("publish", help="record a new version of every changed rule: who, when, why, which thresholds")
    pub.add_argument("folder", nargs="?", default=None, help="default: the shipped rulebook")
    pub.add_argument("--author", required=True)
    pub.add_argument("--reason", required=True)
    pub.add_argument("--store", default=store_url())
    pub.set_defaults(func=_publish)

    for module in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"zhengai.commands.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"zhengai.commands.{module}":
                raise
            continue
        mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from zhengai.ingest.logs import install_log_policy

    install_log_policy()  # personal data masked, Kafka client noise summarised during outages
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
