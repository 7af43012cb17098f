"""`zhengai worker`: the streaming worker (Faust agents on Kafka, warnings into PostgreSQL).

    zhengai worker [--broker HOST:PORT] [--store URL] [--rulebook DIR] [--metrics-port N]
                   [--topic-prefix P] [--app-id ID] [--backfill] [--no-create-topics] [--log-level LEVEL]

Every option falls back to its environment variable (``ZHENGAI_BROKER``, ``ZHENGAI_STORE_URL`` …,
see ``zhengai.ingest.settings``); the rest of the settings (batch sizes, window grace …) come
from the environment only. Prefer ``ZHENGAI_STORE_URL`` for a URL with a password: a command
line is visible to every user of the machine.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from zhengai.commands._options import broker_option, namespace, rulebook_option, store_option, topic_prefix_option
from zhengai.ingest.settings import Settings


def _run(args: Any) -> int:
    from pydantic import ValidationError

    from zhengai.worker import run_worker

    given = {
        "broker": args.broker,
        "store_url": args.store,
        "rulebook": args.rulebook,
        "metrics_port": args.metrics_port,
        "topic_prefix": args.topic_prefix,
        "app_id": args.app_id,
        "evaluate_as_observed": True if args.backfill else None,
    }
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        print(f"zhengai worker: 设置无效 (invalid settings):\n{exc}", file=sys.stderr)
        return 2
    level = args.log_level or ("info" if args.verbose else "warning")
    return run_worker(settings, create_topics=not args.no_create_topics, loglevel=level)


def _field(name: str) -> str:
    return Settings.model_fields[name].description or ""


def register(cli: click.Group) -> None:
    @cli.command("worker", help="run the streaming worker (Kafka → rules → warning store)")
    @broker_option
    @store_option
    @rulebook_option
    @topic_prefix_option
    @click.option("--metrics-port", type=int, default=None, help=f"{_field('metrics_port')} (env ZHENGAI_METRICS_PORT)")
    @click.option("--app-id", default=None, help=f"{_field('app_id')} (env ZHENGAI_APP_ID)")
    @click.option(
        "--backfill",
        is_flag=True,
        help="history load: judge each observation as of when it was observed, not as of now (else old weeks come "
        "out 数据缺失/stale); once the lag is 0, restart without it to go live (env ZHENGAI_EVALUATE_AS_OBSERVED)",
    )
    @click.option("--no-create-topics", is_flag=True, help="do not create missing topics (they must exist)")
    @click.option(
        "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="default: warning (info with -v)"
    )
    def worker(**params: Any) -> int:
        return _run(namespace(**params))  # what is left out: ZHENGAI_* (Settings), then the defaults
