"""WeCom (企业微信) group robot.

``POST {base_url}/cgi-bin/webhook/send?key=…`` with a markdown body; no signing. Errors come
back as ``errcode`` in a 200: 45009 (frequency limit, 20 a minute) is retryable after a minute,
-1 (busy) is retryable, everything else (93000 invalid webhook …) is fatal. WeCom markdown is
limited to 4096 bytes; the pipeline packs notices under ``max_bytes`` and the sink cuts what is
still longer, saying so.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from zhengai.warnings.notify._http import client, errmsg, request_json
from zhengai.warnings.notify.base import FatalSinkError, Message, RetryableSinkError, Sink, SinkSettings, register
from zhengai.warnings.notify.ratelimit import RateLimit

__all__ = ["WeComRobotSink", "WeComRobotSettings", "wecom_payload"]

LIMIT_BYTES = 4096
FREQ_LIMIT = 45009


class WeComRobotSettings(SinkSettings):
    base_url: str = "https://qyapi.weixin.qq.com"
    key: SecretStr
    messages_per_minute: int = 20
    timeout: float = 10.0


def _cut(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    tail = "\n…（内容过长已截断，请打开链接查看全部）"
    keep = data[: limit - len(tail.encode("utf-8"))].decode("utf-8", errors="ignore")
    return keep + tail


def wecom_payload(message: Message) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": _cut(f"**{message.subject}**\n{message.body}", LIMIT_BYTES)}}


@register
class WeComRobotSink(Sink):
    kind = "wecom_robot"
    Settings = WeComRobotSettings
    personal = False  # a group chat: no personal action links (Composer)
    max_bytes = 3500

    def __init__(
        self, *, channel: str | None = None, settings: WeComRobotSettings, transport: httpx.BaseTransport | None = None
    ):
        super().__init__(channel=channel)
        self.settings = settings
        self.rate_limit = RateLimit(settings.messages_per_minute, timedelta(minutes=1))
        self._http = client(settings.base_url, settings.timeout, transport)

    def send(self, message: Message) -> None:
        data = request_json(
            self._http,
            "POST",
            "/cgi-bin/webhook/send",
            what="WeCom robot",
            params={"key": self.settings.key.get_secret_value()},
            json=wecom_payload(message),
        )
        code = data.get("errcode")
        if code == 0:
            return
        if code == FREQ_LIMIT:
            raise RetryableSinkError(f"WeCom robot rate limited (errcode {code})", retry_after=timedelta(minutes=1))
        if code == -1:
            raise RetryableSinkError(f"WeCom busy (errcode {code}): {errmsg(data)}")
        raise FatalSinkError(f"WeCom robot errcode {code}: {errmsg(data)}")

    def close(self) -> None:
        self._http.close()
