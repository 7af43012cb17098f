"""`zhengai web`: the pages behind the action links in notifications (确认预警、登记改进措施).

    zhengai web [--store URL] [--rules DIR] [--host 127.0.0.1] [--port 8080]

Needs ``$ZHENGAI_LINK_SECRET`` (or ``$ZHENGAI_LINK_SECRET_FILE``), the same secret the notifier
signs links with. Put it behind the campus HTTPS reverse proxy at ``links.base_url``.
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_STORE = "sqlite:///zhengai-demo-out/zhengai.sqlite"


def _web(args) -> int:
    from zhengai.warnings.links import SecretError
    from zhengai.web import build_app, serve

    try:
        app = build_app(args.store, rules_folder=args.rules, channels=tuple(args.channels.split(",")))
    except (SecretError, ValueError) as exc:
        print(f"未启动：{exc}", file=sys.stderr)
        return 1
    print(f"预警处理页面：http://{args.host}:{args.port}/warnings/<编号>/ack（Ctrl-C 停止）", file=sys.stderr)
    serve(app, args.host, args.port)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="serve the signed action links in notifications (确认预警、登记改进措施)")
    p.add_argument("--store", default=os.environ.get("ZHENGAI_STORE_URL", DEFAULT_STORE))
    p.add_argument("--rules", default=None, help="rulebook folder (default: the shipped one)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--channels", default="console,file", help="outbox channels for notifications this causes")
    p.set_defaults(func=_web)
