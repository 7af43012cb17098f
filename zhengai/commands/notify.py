"""`zhengai notify …`: the notifier process between the outbox and the channels.

    zhengai notify lint [--config deploy/notify/notify.yaml]      check the config, secrets not needed
    zhengai notify once [--now ISO]                                one pass: escalate/stale, then send
    zhengai notify serve [--every 15s] [--metrics-port N]          the long-running notifier

``--config``, ``--secrets-dir``, ``--store`` and ``--rulebook`` go before or after the subcommand.
Each pass first advances the lifecycle clock (``WarningService.tick``: escalation at the due date,
staleness), then runs the notification pipeline (inhibition, silences, calendar mute windows,
grouping and digests, rate limits, retries). On PostgreSQL only one notifier sends at a time.
The store is ``--store URL`` or ``$ZHENGAI_STORE_URL``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import click

from zhengai.commands._options import namespace, resolve, rulebook_option, store_option

DEFAULT_CONFIG = "deploy/notify/notify.yaml"


def _load(args, *, require_secrets: bool = True):
    from zhengai.warnings.notify.config import NotifyConfigError, load_notify_config

    try:
        return load_notify_config(
            Path(args.config),
            secrets_dir=Path(args.secrets_dir) if args.secrets_dir else None,
            require_secrets=require_secrets,
        )
    except NotifyConfigError as exc:
        print(exc, file=sys.stderr)
        print("通知配置未通过校验（见上方每处错误的文件、行号和字段）。", file=sys.stderr)
        return None


def _build(args, config):
    from zhengai.rules.loader import load_rulebook
    from zhengai.warnings.notify.pipeline import NotifyPipeline
    from zhengai.warnings.service import WarningService
    from zhengai.warnings.store import WarningStore

    store = WarningStore(args.store)
    store.create_schema()
    rules = load_rulebook(args.rulebook)
    cache: dict[str, Any] = {"directory": store.directory.load(), "at": time.monotonic()}

    def directory():
        if time.monotonic() - cache["at"] > 600:  # the directory changes slowly: refresh every 10 minutes
            cache["directory"], cache["at"] = store.directory.load(), time.monotonic()
        return cache["directory"]

    service = WarningService(
        store, lambda: rules, directory, channels=tuple(config.channels), escalation=config.escalation.routing()
    )
    pipeline = NotifyPipeline.from_config(store, config, directory=directory, rules=lambda: rules)
    return service, pipeline


def _lint(args) -> int:
    config = _load(args, require_secrets=False)
    if config is None:
        return 1
    print(f"通知配置校验通过：{len(config.channels)} 个渠道（{', '.join(config.channels)}）")
    return 0


def _when(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone(timedelta(hours=8)))


def _once(args) -> int:
    config = _load(args)
    if config is None:
        return 1
    service, pipeline = _build(args, config)
    now = _when(args.now)
    try:
        changed = service.tick(now)
        report = pipeline.tick(now)
    finally:
        pipeline.close()
    print(f"lifecycle transitions: {len(changed)}; notification pass: {report}")
    return 0


def _serve(args) -> int:
    from zhengai.ingest.durations import parse_duration

    config = _load(args)
    if config is None:
        return 1
    service, pipeline = _build(args, config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    before = service.tick
    if args.metrics_port:  # the outbox-age gauge for ZhengaiNotifyOutboxStuck (deploy/prometheus/alerts.yml)
        from prometheus_client import start_http_server

        from zhengai.warnings.notify.backlog import update_gauge

        start_http_server(args.metrics_port)

        def before(now: datetime) -> None:
            service.tick(now)
            update_gauge(service.store.session, now, tuple(config.channels))

    try:
        pipeline.serve(lambda: datetime.now(UTC), stop, every=parse_duration(args.every), before=before)
    finally:
        pipeline.close()
    return 0


F = TypeVar("F", bound=Callable[..., Any])


def _common(f: F) -> F:
    """Options accepted before the subcommand and after it (``notify --config X serve`` and
    ``notify serve --config X`` mean the same)."""
    f = click.option(
        "--config",
        default=None,
        metavar="FILE",
        help=f"notify.yaml (env ZHENGAI_NOTIFY_CONFIG; default {DEFAULT_CONFIG})",
    )(f)
    f = click.option(
        "--secrets-dir",
        default=None,
        metavar="DIR",
        help="folder of secret files, e.g. /run/secrets (env ZHENGAI_SECRETS_DIR)",
    )(f)
    return rulebook_option(store_option(f))


def _args(**params: Any) -> Any:
    args = namespace(**params)
    args.config = resolve("config", args.config) or os.environ.get("ZHENGAI_NOTIFY_CONFIG") or DEFAULT_CONFIG
    args.secrets_dir = resolve("secrets_dir", args.secrets_dir) or os.environ.get("ZHENGAI_SECRETS_DIR")
    return args


def register(cli: click.Group) -> None:
    @cli.group("notify", help="the notifier: escalate, then send the outbox through the notification pipeline")
    @_common
    def notify(**_: Any) -> None:
        pass

    @notify.command("lint", help="check notify.yaml and its calendar; secrets need not be set")
    @_common
    def lint(**params: Any) -> int:
        return _lint(_args(**params))

    @notify.command("once", help="one pass now (or --now)")
    @_common
    @click.option("--now", default=None, help="ISO time (default: now; China time if no offset)")
    def once(**params: Any) -> int:
        return _once(_args(**params))

    @notify.command("serve", help="run until SIGTERM")
    @_common
    @click.option("--every", default="15s", show_default=True, help="pass interval, e.g. 15s, 1m")
    @click.option(
        "--metrics-port",
        type=int,
        default=lambda: int(os.environ.get("ZHENGAI_NOTIFY_METRICS_PORT") or 0),
        help="serve Prometheus /metrics (outbox age) on this port; 0 = off (env ZHENGAI_NOTIFY_METRICS_PORT)",
    )
    def serve(**params: Any) -> int:
        return _serve(_args(**params))
