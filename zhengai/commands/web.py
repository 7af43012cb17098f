"""`zhengai web`: the pages people act on — 我的预警, and the warning pages behind the links in
notifications (确认预警、登记改进措施、补充支撑材料、复评).

    zhengai web [--store URL] [--rulebook DIR] [--host 127.0.0.1] [--port 8080]
                [--user-header X-Remote-User] [--trusted-proxy 127.0.0.1 …]

Needs ``$ZHENGAI_LINK_SECRET`` (or ``$ZHENGAI_LINK_SECRET_FILE``), the same secret the notifier
signs links with (it also signs the forms' CSRF tokens). Put it behind the campus HTTPS reverse
proxy at ``links.base_url``. With CAS/SSO in front, ``--user-header`` names the header the proxy
sets to the authenticated person id (trusted only from ``--trusted-proxy`` addresses); then
people need no links at all. ``$ZHENGAI_WEB_USER_HEADER`` and ``$ZHENGAI_WEB_TRUSTED_PROXIES``
(comma-separated addresses) set them too.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from zhengai.commands._options import broker_option, namespace, rulebook_option, store_option, topic_prefix_option


def _web(args: Any) -> int:
    from zhengai.warnings.links import SecretError
    from zhengai.web import WebSettings, build_app, serve

    proxies = args.trusted_proxy or [
        a.strip() for a in os.environ.get("ZHENGAI_WEB_TRUSTED_PROXIES", "").split(",") if a.strip()
    ]
    settings = WebSettings(user_header=args.user_header or None, trusted_proxies=tuple(proxies or ("127.0.0.1", "::1")))
    try:
        app = build_app(
            args.store,
            rules_folder=args.rulebook,
            channels=tuple(args.channels.split(",")),
            settings=settings,
            broker=args.broker or os.environ.get("ZHENGAI_BROKER"),
            topic_prefix=args.topic_prefix or os.environ.get("ZHENGAI_TOPIC_PREFIX", ""),
        )
    except (SecretError, ValueError) as exc:
        print(f"未启动：{exc}", file=sys.stderr)
        return 1
    print(f"预警处理页面：http://{args.host}:{args.port}/my/warnings（Ctrl-C 停止）", file=sys.stderr)
    serve(app, args.host, args.port, settings)
    return 0


def register(cli: click.Group) -> None:
    @cli.command("web", help="serve 我的预警 and the warning pages behind the links in notifications")
    @store_option
    @rulebook_option
    @broker_option
    @topic_prefix_option
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", type=int, default=8080, show_default=True)
    @click.option(
        "--channels", default="console,file", show_default=True, help="outbox channels for notifications this causes"
    )
    @click.option(
        "--user-header",
        default=lambda: os.environ.get("ZHENGAI_WEB_USER_HEADER"),
        help="the campus proxy's authenticated-user header, CAS/SSO in front (env ZHENGAI_WEB_USER_HEADER)",
    )
    @click.option(
        "--trusted-proxy",
        multiple=True,
        help="address the user header is accepted from; repeatable (env ZHENGAI_WEB_TRUSTED_PROXIES)",
    )
    def web(**params: Any) -> int:
        return _web(namespace(**params))
