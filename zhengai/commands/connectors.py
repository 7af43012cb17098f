"""`zhengai connectors …`: campus IT's tools for the connectors.

    zhengai connectors check <name> [--config FILE] [--rows N]
    zhengai connectors run [<name> …] [--once] [--config FILE …] [--broker B] [--topic-prefix P]
                           [--bookmarks URL|FILE] [--metrics-port N]

``check`` connects, maps the first rows of every stream and shows them (personal data masked)
with any mapping errors — without producing to Kafka, without moving bookmarks or files.
``run`` produces to Kafka: every connector once (``--once``), or on their schedules until
SIGTERM/SIGINT. Exit codes: 0 fine, 1 a stream failed (or mapping errors with ``check
--strict``), 2 the configuration is invalid.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from zhengai.commands._options import broker_option, namespace, topic_prefix_option
from zhengai.ingest.privacy import mask_text

__all__ = ["register"]

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
# Seconds a broker outage is waited out within a run (then the run goes on where it was).
DELIVERY_PATIENCE = 120.0


def register(cli: click.Group) -> None:
    group = click.Group("connectors", help="campus-system connectors: check and run")
    cli.add_command(group)
    config_dir = click.option(
        "--config-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="folder of <name>.yaml (env ZHENGAI_CONNECTORS_DIR; default deploy/connectors)",
    )

    @group.command("check", help="connect and show the first mapped records; produces nothing")
    @click.argument("name")
    @click.option(
        "--config", type=click.Path(path_type=Path), default=None, help="the YAML file (default: <dir>/<name>.yaml)"
    )
    @config_dir
    @click.option("--rows", type=int, default=50, show_default=True, help="rows read per stream")
    @click.option("--show", type=int, default=2, show_default=True, help="records shown per stream")
    @click.option("--strict", is_flag=True, help="exit 1 on mapping errors too")
    def check(**params: Any) -> int:
        return _check(namespace(**params))

    @group.command("run", help="produce to Kafka, once or on schedule (NAMES default: every enabled <dir>/*.yaml)")
    @click.argument("names", nargs=-1)
    @click.option("--once", is_flag=True, help="run each connector once and exit")
    @click.option("--config", type=click.Path(path_type=Path), multiple=True, help="a YAML file (repeatable)")
    @config_dir
    @broker_option
    @topic_prefix_option
    @click.option(
        "--bookmarks",
        default=None,
        metavar="URL|FILE",
        help="SQLAlchemy URL or JSON file of the bookmarks (env ZHENGAI_BOOKMARKS)",
    )
    @click.option(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus /metrics on this port (env ZHENGAI_CONNECTORS_METRICS_PORT)",
    )
    def run(**params: Any) -> int:
        args = namespace(**params)
        args.names, args.config = list(args.names), list(args.config)
        return _run(args)


# --- shared ----------------------------------------------------------------------------------


def _settings(args: Any) -> Any:
    from zhengai.connectors.settings import ConnectorSettings

    return ConnectorSettings.from_env(
        broker=getattr(args, "broker", None),
        topic_prefix=getattr(args, "topic_prefix", None),
        bookmarks=getattr(args, "bookmarks", None),
        connectors_dir=args.config_dir,
        connectors_metrics_port=getattr(args, "metrics_port", None),
    )


def _config_error(exc: Exception) -> int:
    print(exc, file=sys.stderr)
    n = len(getattr(exc, "errors", ()))
    print(f"连接器配置未通过校验：{n} 处错误，未连接任何数据源。", file=sys.stderr)
    return EXIT_CONFIG


# --- check -----------------------------------------------------------------------------------


def _check(args: Any) -> int:
    from zhengai.connectors.check import check_connector, masked_json
    from zhengai.connectors.errors import MissingDriverError
    from zhengai.connectors.loading import ConfigError, build_connector, config_path, load_config
    from zhengai.connectors.registry import TITLES

    settings = _settings(args)
    path = args.config or config_path(args.name, settings.connectors_dir)
    try:
        config = load_config(path)
    except ConfigError as exc:
        return _config_error(exc)
    if config.connector != args.name:
        print(f"{path}: configures {config.connector!r}, not {args.name!r}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        connector = build_connector(config)
    except (MissingDriverError, ValueError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    out = sys.stdout
    print(
        f"{config.connector}（{TITLES.get(config.connector, '')}） · {config.source.kind} "
        f"{config.source.shown()} · {config.schedule.build()}",
        file=out,
    )
    print(f"只读检查：每个数据流读前 {args.rows} 行并映射；不写入 Kafka，不改书签和文件。", file=out)
    with connector:
        results = check_connector(connector, rows=args.rows, samples=args.show)
    width = max(len(r.stream) for r in results) if results else 0
    problems = []
    for r in results:
        if r.error is not None:
            print(f"✗ {r.stream:<{width}}  源错误 source error: {mask_text(r.error)}", file=out)
            continue
        kinds = " · ".join(f"{k} {n}" for k, n in sorted(r.records.items()) if k != "dead_letter")
        dead = f" · 映射错误 {r.rejected}" if r.rejected else ""
        print(f"✓ {r.stream:<{width}}  {r.rows} 行 → {kinds or '无记录'}{dead}", file=out)
        for record in r.samples:
            print(f"    {masked_json(record, width=150)}", file=out)
        problems += [f"{r.stream}  {p}" for p in r.problems]
    if problems:
        print("映射错误（将进入死信 zg.dlq）mapping errors:", file=out)
        for p in problems[:20]:
            print(f"  {mask_text(p)}", file=out)
        if len(problems) > 20:
            print(f"  … 另有 {len(problems) - 20} 条", file=out)
    failed = [r for r in results if r.error is not None]
    print(
        f"共 {len(results)} 个数据流：{len(results) - len(failed)} 个可读取，"
        f"{len(failed)} 个出错；映射错误 {len(problems)} 条。",
        file=out,
    )
    if failed or (args.strict and problems):
        return EXIT_FAILED
    return EXIT_OK


# --- run -------------------------------------------------------------------------------------


def _run(args: Any) -> int:
    from zhengai.connectors.errors import DeliveryError, MissingDriverError
    from zhengai.connectors.health import ConnectorHealth
    from zhengai.connectors.kafka import KafkaDelivery
    from zhengai.connectors.loading import ConfigError, build_connector, config_path, load_configs
    from zhengai.connectors.runner import ConnectorJob, Runner
    from zhengai.connectors.settings import open_bookmarks

    settings = _settings(args)
    folder = settings.connectors_dir
    if args.config:  # the files given; names, if any, pick among them
        paths = list(args.config)
    elif args.names:
        paths = [config_path(n, folder) for n in args.names]
    else:
        paths = sorted(folder.glob("*.yaml"))
        if not paths:
            print(f"no connector configurations in {folder}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        configs = load_configs(paths)
    except ConfigError as exc:
        return _config_error(exc)
    if args.names:
        missing = set(args.names) - {c.connector for c in configs}
        if missing:
            print(f"not configured in {', '.join(map(str, paths))}: {', '.join(sorted(missing))}", file=sys.stderr)
            return EXIT_CONFIG
        configs = [c for c in configs if c.connector in args.names]
    else:
        configs = [c for c in configs if c.enabled or args.config]
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("zhengai.connectors").setLevel(logging.INFO)
    # kafka-python logs every metadata retry at ERROR: the log policy (zhengai.ingest.logs,
    # installed by the CLI) lets one line through and then a summary every 10 s of an outage.

    now = datetime.now(UTC)
    connectors, jobs = [], []
    try:
        for c in configs:
            connector = build_connector(c)
            connectors.append(connector)
            health = ConnectorHealth(c.connector, c.window(now), started=now)
            jobs.append(
                ConnectorJob(
                    connector, c.schedule.build(), health, batch_size=c.batch_size, delivery_patience=DELIVERY_PATIENCE
                )
            )
    except (MissingDriverError, ValueError) as exc:
        for connector in connectors:
            connector.close()
        print(exc, file=sys.stderr)
        return EXIT_CONFIG

    stop = threading.Event()
    try:
        delivery = KafkaDelivery(settings.bootstrap_servers, topic_prefix=settings.topic_prefix)
    except DeliveryError as exc:
        print(f"Kafka: {exc}", file=sys.stderr)
        return EXIT_FAILED
    bookmarks = open_bookmarks(settings.bookmarks)
    try:
        runner = Runner(jobs, delivery, bookmarks, school_id=os.environ.get("ZHENGAI_SCHOOL_ID", "SCH"))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if args.once:
            reports = runner.run_once(stop)
            for name, report in reports.items():
                _print_report(name, report)
            return EXIT_OK if all(r.ok for r in reports.values()) else EXIT_FAILED
        if settings.connectors_metrics_port:
            from prometheus_client import start_http_server

            start_http_server(settings.connectors_metrics_port)
        runner.run_forever(stop)
        return EXIT_OK
    finally:
        for connector in connectors:
            connector.close()
        delivery.close()
        close = getattr(bookmarks, "close", None)
        if close is not None:
            close()


def _print_report(name: str, report: Any) -> None:
    mark = "✓" if report.ok else "✗"
    print(
        f"{mark} {name}: read {report.total('read')} · sent {report.total('sent')} · "
        f"rejected {report.total('rejected')}"
    )
    for stream, error in report.errors.items():
        print(f"    {stream}: {mask_text(error)}")
