"""`zhengai worker`: the streaming worker (Faust agents on Kafka, warnings into PostgreSQL).

    zhengai worker [--broker HOST:PORT] [--store-url URL] [--rulebook DIR] [--metrics-port N]
                   [--topic-prefix P] [--app-id ID] [--backfill] [--no-create-topics] [--log-level LEVEL]

Every option falls back to its environment variable (``ZHENGAI_BROKER``, ``ZHENGAI_STORE_URL`` …,
see ``zhengai.ingest.settings``); the rest of the settings (batch sizes, window grace …) come
from the environment only. Prefer ``ZHENGAI_STORE_URL`` for a URL with a password: a command
line is visible to every user of the machine.
"""

from __future__ import annotations

import argparse
import sys


def _run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from zhengai.ingest.settings import Settings
    from zhengai.worker import run_worker

    given = {
        "broker": args.broker, "store_url": args.store_url, "rulebook": args.rulebook, "metrics_port": args.metrics_port,
        "topic_prefix": args.topic_prefix, "app_id": args.app_id,
        "evaluate_as_observed": True if args.backfill else None,
    }
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        print(f"zhengai worker: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    level = args.log_level or ("info" if args.verbose else "warning")
    return run_worker(settings, create_topics=not args.no_create_topics, loglevel=level)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("worker", help="run the streaming worker (Kafka → rules → warning store)")
    p.add_argument("--broker", help="Kafka bootstrap servers, host:port[,host:port] (env ZHENGAI_BROKER)")
    p.add_argument("--store-url", help="SQLAlchemy URL of the warning store (env ZHENGAI_STORE_URL)")
    p.add_argument("--rulebook", help="rulebook folder, reloaded when it changes (default: the shipped one)")
    p.add_argument("--metrics-port", type=int, help="Prometheus /metrics port, 0 = off (default 9108)")
    p.add_argument("--topic-prefix", help="prefix of every topic name (env ZHENGAI_TOPIC_PREFIX)")
    p.add_argument("--app-id", help="Faust app id = Kafka consumer group (default zhengai)")
    p.add_argument("--backfill", action="store_true",
                   help="history load: judge each observation as of when it was observed, not as of now (else old "
                        "weeks come out 数据缺失/stale); once the lag is 0, restart without it to go live "
                        "(env ZHENGAI_EVALUATE_AS_OBSERVED)")
    p.add_argument("--no-create-topics", action="store_true", help="do not create missing topics (they must exist)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default: warning (info with -v)")
    p.set_defaults(func=_run)
