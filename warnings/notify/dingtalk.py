"""DingTalk custom group robot (自定义机器人), signed (加签).

``POST {base_url}/robot/send?access_token=…&timestamp=…&sign=…`` with a JSON body. Errors come
back as HTTP 200 with ``errcode != 0``: 130101 (more than 20 messages a minute; the robot is
throttled for ten minutes) is retryable after that cool-down, 310000 (bad signature, keyword or
timestamp) is fatal, -1 (system busy) is retryable, anything else is fatal.

Mentions use ``atUserIds`` (the DingTalk user id, written as ``@<userid>`` in the text, which
DingTalk shows as the person's name) — never ``atMobiles``, which would need the mobile number in
clear in a group chat.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from zhengai.warnings.notify._http import client, errmsg, request_json
from zhengai.warnings.notify.base import FatalSinkError, Message, RetryableSinkError, Sink, SinkSettings, register
from zhengai.warnings.notify.ratelimit import RateLimit

__all__ = ["DingTalkRobotSink", "DingTalkRobotSettings", "sign", "robot_payload"]

RATE_LIMITED = 130101
BAD_SIGNATURE = 310000
BUSY = -1
THROTTLE = timedelta(minutes=10)


def sign(secret: str, timestamp_ms: int) -> str:
    """加签: Base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")). Not yet URL-encoded:
    it goes out as a query parameter, which encodes it exactly once."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class DingTalkRobotSettings(SinkSettings):
    base_url: str = "https://oapi.dingtalk.com"
    access_token: SecretStr
    secret: SecretStr | None = None  # the robot's 加签 secret (SEC…); None for keyword/IP-only robots
    msgtype: Literal["markdown", "actionCard"] = "markdown"  # actionCard: buttons, but no @mention
    keyword: str | None = None  # the robot's 自定义关键词, added to messages that lack it
    mention: bool = True
    messages_per_minute: int = 20
    timeout: float = 10.0


def robot_payload(
    message: Message, *, msgtype: str, keyword: str | None = None, mention: bool = True
) -> dict[str, Any]:
    title, text = message.subject, message.body
    if keyword and keyword not in title and keyword not in text:
        text = f"{text}\n\n{keyword}"
    if msgtype == "actionCard" and message.links:
        card: dict[str, Any] = {"title": title, "text": text}
        if len(message.links) == 1:
            card |= {"singleTitle": message.links[0].title, "singleURL": message.links[0].url}
        else:
            card |= {
                "btnOrientation": "1",
                "btns": [{"title": link.title, "actionURL": link.url} for link in message.links],
            }
        return {"msgtype": "actionCard", "actionCard": card}
    user = message.recipient.dingtalk_user_id if message.recipient else None
    at: dict[str, Any] = {"isAtAll": False}
    if mention and user:
        text = f"{text}\n\n@{user}"  # a mention notifies only if it also appears in the text
        at["atUserIds"] = [user]
    return {"msgtype": "markdown", "markdown": {"title": title, "text": text}, "at": at}


@register
class DingTalkRobotSink(Sink):
    kind = "dingtalk_robot"
    Settings = DingTalkRobotSettings
    personal = False  # a group chat: no personal action links (Composer)
    max_bytes = 18_000  # the robot rejects very long markdown; the pipeline packs under this

    def __init__(
        self,
        *,
        channel: str | None = None,
        settings: DingTalkRobotSettings,
        transport: httpx.BaseTransport | None = None,
    ):
        super().__init__(channel=channel)
        self.settings = settings
        self.rate_limit = RateLimit(settings.messages_per_minute, timedelta(minutes=1))
        self.renders_links = settings.msgtype == "actionCard"
        self._http = client(settings.base_url, settings.timeout, transport)

    def send(self, message: Message) -> None:
        s = self.settings
        params = {"access_token": s.access_token.get_secret_value()}
        if s.secret is not None:
            ts = int(message.at.timestamp() * 1000)
            params |= {"timestamp": str(ts), "sign": sign(s.secret.get_secret_value(), ts)}
        payload = robot_payload(message, msgtype=s.msgtype, keyword=s.keyword, mention=s.mention)
        data = request_json(self._http, "POST", "/robot/send", what="DingTalk robot", params=params, json=payload)
        code = data.get("errcode")
        if code == 0:
            return
        if code == RATE_LIMITED:
            raise RetryableSinkError(f"DingTalk robot rate limited (errcode {code})", retry_after=THROTTLE)
        if code == BUSY:
            raise RetryableSinkError(f"DingTalk busy (errcode {code}): {errmsg(data)}")
        if code == BAD_SIGNATURE:
            raise FatalSinkError(
                f"DingTalk rejected the signature, keyword or timestamp (errcode {code}): {errmsg(data)}"
            )
        raise FatalSinkError(f"DingTalk robot errcode {code}: {errmsg(data)}")

    def close(self) -> None:
        self._http.close()
