"""DingTalk work notification (工作通知) to one person, through the app API.

``GET {base_url}/gettoken?appkey=…&appsecret=…`` gives an app access token (cached until shortly
before ``expires_in``); ``POST {base_url}/topapi/message/corpconversation/asyncsend_v2?access_token=…``
with ``agent_id``, ``userid_list`` and ``msg`` (markdown, or action_card when the message has
links) sends it. An expired or invalid token (40001, 40014, 42001) is fetched again once within
the same send. DingTalk silently drops a message with the same content to the same person twice a
day — reminders carry their date, so they differ.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from zhengai.warnings.notify._http import AccessToken, client, errmsg, request_json
from zhengai.warnings.notify.base import FatalSinkError, Message, RetryableSinkError, Sink, SinkSettings, register

__all__ = ["DingTalkWorkSink", "DingTalkWorkSettings", "work_payload"]

TOKEN_INVALID = {40001, 40014, 42001}
BUSY = {-1}
TOKEN_MARGIN = timedelta(minutes=5)


class DingTalkWorkSettings(SinkSettings):
    base_url: str = "https://oapi.dingtalk.com"
    app_key: str
    app_secret: SecretStr
    agent_id: int
    timeout: float = 10.0


def work_payload(message: Message, agent_id: int, user_id: str) -> dict[str, Any]:
    if message.links:
        card: dict[str, Any] = {"title": message.subject, "markdown": message.body}
        if len(message.links) == 1:
            card |= {"single_title": message.links[0].title, "single_url": message.links[0].url}
        else:
            card |= {
                "btn_orientation": "1",
                "btn_json_list": [{"title": link.title, "action_url": link.url} for link in message.links],
            }
        msg = {"msgtype": "action_card", "action_card": card}
    else:
        msg = {"msgtype": "markdown", "markdown": {"title": message.subject, "text": message.body}}
    return {"agent_id": agent_id, "userid_list": user_id, "msg": msg}


@register
class DingTalkWorkSink(Sink):
    kind = "dingtalk_work"
    Settings = DingTalkWorkSettings
    renders_links = True
    max_bytes = 18_000

    def __init__(
        self,
        *,
        channel: str | None = None,
        settings: DingTalkWorkSettings,
        transport: httpx.BaseTransport | None = None,
    ):
        super().__init__(channel=channel)
        self.settings = settings
        self._http = client(settings.base_url, settings.timeout, transport)
        self._token = AccessToken(self._fetch_token, TOKEN_MARGIN)

    def _fetch_token(self) -> tuple[str, int]:
        s = self.settings
        data = request_json(
            self._http,
            "GET",
            "/gettoken",
            what="DingTalk gettoken",
            params={"appkey": s.app_key, "appsecret": s.app_secret.get_secret_value()},
        )
        code = data.get("errcode")
        if code in BUSY:
            raise RetryableSinkError(f"DingTalk gettoken busy (errcode {code})")
        if code != 0 or not data.get("access_token"):
            raise FatalSinkError(f"DingTalk gettoken refused the app credentials (errcode {code}): {errmsg(data)}")
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    def send(self, message: Message) -> None:
        user = message.recipient.dingtalk_user_id if message.recipient else None
        if not user:
            raise FatalSinkError("the recipient has no DingTalk user id in the directory")
        payload = work_payload(message, self.settings.agent_id, user)
        for attempt in (1, 2):
            data = request_json(
                self._http,
                "POST",
                "/topapi/message/corpconversation/asyncsend_v2",
                what="DingTalk work notification",
                params={"access_token": self._token.get(message.at)},
                json=payload,
            )
            code = data.get("errcode")
            if code == 0:
                return
            if code in TOKEN_INVALID:
                self._token.forget()  # fetch a fresh token and try once more
                if attempt == 1:
                    continue
                raise RetryableSinkError(f"DingTalk access token rejected twice (errcode {code})")
            if code in BUSY:
                raise RetryableSinkError(f"DingTalk busy (errcode {code}): {errmsg(data)}")
            raise FatalSinkError(f"DingTalk work notification errcode {code}: {errmsg(data)}")

    def close(self) -> None:
        self._http.close()
