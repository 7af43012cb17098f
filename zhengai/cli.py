"""The `zhengai` command line (Click).

    zhengai [--version] [-v] [--log-format text|json] COMMAND …
    zhengai demo [--size small|default] [--out DIR] [--seed N]
    zhengai rules lint [FOLDER] [--store URL]
    zhengai rules publish [FOLDER] --author A --reason R [--store URL]
    zhengai worker | connectors | warnings | notify | web …     (zhengai/commands/<name>.py)
    zhengai completion bash|zsh|fish                             shell completion script

The same thing has the same option everywhere (``--store``, ``--broker``, ``--rulebook``,
``--topic-prefix``, ``--json``), read from the same settings and environment variables
(zhengai/commands/_options.py). Errors people see are Chinese first, with the English term; a
closed pipe (``| head``) ends the command quietly. Command modules: zhengai/commands/__init__.py.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from zhengai.commands import COMMAND_MODULES, CommandModuleError, load_command_module
from zhengai.commands._options import namespace, store_option

__all__ = ["build_cli", "cli", "main"]

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell tool cut off by `| head` reports


def _demo(args: Any) -> int:
    from zhengai.demo.run import run_demo  # imported late: the demo pulls in every layer

    run = run_demo(Path(args.out), args.size, seed=args.seed, progress=not args.quiet, console_limit=args.show)
    if not run.all_found:
        print("\n示范运行未发现全部预置异常（见上方 ✗）。", file=sys.stderr)
        return 1
    return 0


def _lint(args: Any) -> int:
    from zhengai.rules.loader import RulebookError, load_rulebook, unknown_override_entities

    try:
        rs = load_rulebook(args.folder)
        if args.store:  # overrides are checked against the directory only where one is available
            from zhengai.warnings.store import WarningStore

            directory = WarningStore(args.store).directory.load()
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
    overrides = sum(len(v) for v in rs.overrides.values())
    print(f"规则库校验通过：{len(rs.rules)} 条规则（{per}），{overrides} 条覆盖，版本 {rs.version}")
    from zhengai.rules.applicability import applies, institution

    school = institution()
    if school.institution_type or school.province:  # what this school's configuration leaves unjudged
        where = "、".join(x for x in (school.institution_type, school.province) if x)
        skipped = sorted(r.id for r in rs.rules.values() if r.enabled and not applies(r.applies_to, school))
        listed = "：" + "，".join(skipped) if skipped else ""
        print(f"本校（{where}）不适用、不评估的规则 {len(skipped)} 条{listed}（applies_to; not judged here）")
    return 0


def _publish(args: Any) -> int:
    from zhengai.commands.rulebook.versions import publish_command  # the whole folder, baseline first
    from zhengai.ingest.settings import DEFAULT_STORE_URL

    if args.store == DEFAULT_STORE_URL:  # said, never silent: publishing to the demo store is rarely meant
        print(
            f"发布到默认预警库 (default store) {DEFAULT_STORE_URL}；其他库请用 --store 或 ZHENGAI_STORE_URL",
            file=sys.stderr,
        )
    return publish_command(folder=args.folder, author=args.author, reason=args.reason, store=args.store)


# --- the command tree ----------------------------------------------------------------------------


def _setup_logging(verbose: bool, log_format: str | None) -> None:
    from zhengai.ingest.logs import install_log_policy

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    install_log_policy(fmt=log_format)  # personal data masked, Kafka client noise summarised; JSON lines if asked


@click.group(
    name="zhengai",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    help="诊改 monitoring and early warning for higher-vocational colleges（高职院校诊改监测预警）",
)
@click.version_option(package_name="zhengai", prog_name="zhengai", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="log lines as text or JSON objects with the rule/connector/warning they concern (env ZHENGAI_LOG_FORMAT)",
)
def cli(verbose: bool, log_format: str | None) -> None:
    _setup_logging(verbose, log_format)


@cli.command("demo", help="run the whole loop on a generated demo college (no Kafka/PostgreSQL)")
@click.option("--size", type=click.Choice(["small", "default"]), default="default", show_default=True)
@click.option("--out", default="zhengai-demo-out", show_default=True, help="output folder (replaced on every run)")
@click.option("--seed", type=int, default=2026, show_default=True)
@click.option("--show", type=int, default=5, show_default=True, help="notifications printed in full on the console")
@click.option("-q", "--quiet", is_flag=True, help="no progress lines")
def demo(**params: Any) -> int:
    return _demo(namespace(**params))


@cli.group("rules", help="rulebook tools")
def rules() -> None:
    pass


_FOLDER = click.argument("folder", required=False, default=None)


@rules.command(
    "lint", help="validate a rulebook folder; every error with file, line and field (FOLDER default: shipped)"
)
@_FOLDER
@click.option(
    "--store",
    metavar="URL",
    default=None,
    help="also check that every override names an entity of this store's directory (only when given)",
)
def lint(**params: Any) -> int:
    return _lint(SimpleNamespace(**params))  # --store only when given: no fallback to a default store


@rules.command("publish", help="record a new version of every changed rule: who, when, why, which thresholds")
@_FOLDER
@click.option("--author", required=True)
@click.option("--reason", required=True)
@store_option
def publish(**params: Any) -> int:
    return _publish(namespace(**params))


@cli.command("completion", help='print the shell completion script: eval "$(zhengai completion bash)"')
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> int:
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # the choices are the shells click supports
    click.echo(cls(cli, {}, "zhengai", "_ZHENGAI_COMPLETE").source())
    return 0


def build_cli(modules: tuple[str, ...] = COMMAND_MODULES) -> click.Group:
    """The command tree with every command module registered; a module that is missing or has no
    ``register`` is a :class:`CommandModuleError`, never a command that silently vanished."""
    if "backtest" not in rules.commands:  # the quality office's workbench under `zhengai rules`
        importlib.import_module("zhengai.commands.rulebook").register(rules)
    for name in modules:
        if name not in cli.commands:
            load_command_module(name).register(cli)
    return cli


# --- errors people see -----------------------------------------------------------------------------


def _explain(exc: click.ClickException) -> str:
    """Chinese first, the English term in brackets; the command's help hint after it."""
    if isinstance(exc, click.NoSuchOption):
        text = f"没有这个选项 (no such option)：{exc.option_name}"
        if exc.possibilities:
            text += f"；您是否要用 (did you mean)：{', '.join(sorted(exc.possibilities))}"
    elif isinstance(exc, click.MissingParameter):
        hint = exc.param.get_error_hint(exc.ctx) if exc.param is not None and exc.ctx is not None else ""
        text = f"缺少必需的参数 (missing parameter)：{hint or exc.format_message()}"
    elif isinstance(exc, click.BadParameter):
        text = f"参数值无效 (invalid value)：{exc.format_message()}"
    elif isinstance(exc, click.UsageError) and exc.message.startswith("No such command"):
        text = f"没有这个命令 (no such command)：{exc.message.split('No such command', 1)[1].strip(' .:')}"
    elif isinstance(exc, click.UsageError):
        text = f"用法错误 (usage error)：{exc.format_message()}"
    else:
        text = f"出错 (error)：{exc.format_message()}"
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        text += f"\n查看帮助 (help)：{ctx.command_path} --help"
    return text


def _quiet_stdout() -> None:
    # stdout is gone (`| head` closed it): point it at /dev/null so the interpreter's final
    # flush does not report a second BrokenPipeError
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    try:
        group = build_cli()
    except CommandModuleError as exc:
        print(f"命令模块缺失 (missing command module)：{exc}", file=sys.stderr)
        return 70
    try:
        result = group.main(args=argv, prog_name="zhengai", standalone_mode=False)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except click.exceptions.Abort:
        print("已中止 (aborted)", file=sys.stderr)
        return 130
    except click.ClickException as exc:
        print(_explain(exc), file=sys.stderr)
        return exc.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
