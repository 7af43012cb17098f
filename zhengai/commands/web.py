"""`zhengai web`: the pages people act on — 我的预警, and the warning pages behind the links in
notifications (确认预警、登记改进措施、补充支撑材料、复评); and 填报 (/forms: template download, upload,
online form, 质量事故 registration — values go to Kafka with ``--broker``, else the embedded pipeline).

    zhengai web [--store URL] [--rules DIR] [--host 127.0.0.1] [--port 8080]
                [--user-header X-Remote-User] [--trusted-proxy 127.0.0.1 …]

Needs ``$ZHENGAI_LINK_SECRET`` (or ``$ZHENGAI_LINK_SECRET_FILE``), the same secret the notifier
signs links with (it also signs the forms' CSRF tokens). Put it behind the campus HTTPS reverse
proxy at ``links.base_url``. With CAS/SSO in front, ``--user-header`` names the header the proxy
sets to the authenticated person id (trusted only from ``--trusted-proxy`` addresses); then
people need no links at all. ``$ZHENGAI_WEB_USER_HEADER`` and ``$ZHENGAI_WEB_TRUSTED_PROXIES``
(comma-separated addresses) set them too.
"""

from __future__ import annotations

import argparse
import os
import sys

from zhengai.ingest.settings import store_url



def _web(args) -> int:
    from zhengai.warnings.links import SecretError
    from zhengai.web import WebSettings, build_app, serve

    proxies = args.trusted_proxy or [a.strip() for a in os.environ.get("ZHENGAI_WEB_TRUSTED_PROXIES", "").split(",") if a.strip()]
    settings = WebSettings(user_header=args.user_header or None, trusted_proxies=tuple(proxies or ("127.0.0.1", "::1")))
    try:
        app = build_app(args.store, rules_folder=args.rules, channels=tuple(args.channels.split(",")), settings=settings,
                        broker=args.broker, topic_prefix=args.topic_prefix)
    except (SecretError, ValueError) as exc:
        print(f"未启动：{exc}", file=sys.stderr)
        return 1
    print(f"预警处理页面：http://{args.host}:{args.port}/my/warnings（Ctrl-C 停止）", file=sys.stderr)
    serve(app, args.host, args.port, settings)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="serve 我的预警 and the warning pages behind the links in notifications")
    p.add_argument("--store", default=store_url())
    p.add_argument("--rules", default=None, help="rulebook folder (default: the shipped one)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--channels", default="console,file", help="outbox channels for notifications this causes")
    p.add_argument("--user-header", default=os.environ.get("ZHENGAI_WEB_USER_HEADER"),
                   help="the campus proxy's authenticated-user header (CAS/SSO in front)")
    p.add_argument("--trusted-proxy", action="append", help="address the user header is accepted from; repeatable")
    p.add_argument("--broker", default=os.environ.get("ZHENGAI_BROKER"),
                   help="Kafka for values entered on the 填报 pages (/forms); without: the embedded pipeline")
    p.add_argument("--topic-prefix", default=os.environ.get("ZHENGAI_TOPIC_PREFIX", ""))
    p.set_defaults(func=_web)
