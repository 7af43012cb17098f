"""WeCom (企业微信) application message (应用消息) to one person, through the app API — a personal
channel, so it may carry the person's own action links (unlike the group robot, ``wecom.py``).

``GET {base_url}/cgi-bin/gettoken?corpid=…&corpsecret=…`` gives an access token (cached until
shortly before ``expires_in``); ``POST {base_url}/cgi-bin/message/send?access_token=…`` with
``touser``, ``agentid`` and a markdown message sends it. The recipient's WeCom user id is their
person id (most campuses use the 工号 as the WeCom account); a directory that differs sets
``user_id_prefix``. An invalid or expired token (40014, 42001) is fetched again once within the
same send; -1 (busy) and 45009 (frequency limit) are retryable; 81013 (no such user) and the rest
are fatal. Markdown is limited to 2048 bytes: the pipeline packs under ``max_bytes``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from zhengai.warnings.notify._http import AccessToken, client, errmsg, request_json
from zhengai.warnings.notify.base import FatalSinkError, Message, RetryableSinkError, Sink, SinkSettings, register

__all__ = ["WeComAppSink", "WeComAppSettings", "app_payload"]

TOKEN_INVALID = {40014, 42001}
LIMIT_BYTES = 2048
TOKEN_MARGIN = timedelta(minutes=5)


class WeComAppSettings(SinkSettings):
    base_url: str = "https://qyapi.weixin.qq.com"
    corp_id: str
    corp_secret: SecretStr
    agent_id: int
    user_id_prefix: str = ""
    timeout: float = 10.0


def app_payload(message: Message, agent_id: int, user_id: str) -> dict[str, Any]:
    text = f"**{message.subject}**\n{message.body}"
    data = text.encode("utf-8")
    if len(data) > LIMIT_BYTES:
        tail = "\n…（内容过长已截断）"
        text = data[: LIMIT_BYTES - len(tail.encode("utf-8"))].decode("utf-8", errors="ignore") + tail
    return {"touser": user_id, "msgtype": "markdown", "agentid": agent_id, "markdown": {"content": text}}


@register
class WeComAppSink(Sink):
    kind = "wecom_app"
    Settings = WeComAppSettings
    max_bytes = 1800

    def __init__(
        self, *, channel: str | None = None, settings: WeComAppSettings, transport: httpx.BaseTransport | None = None
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
            "/cgi-bin/gettoken",
            what="WeCom gettoken",
            params={"corpid": s.corp_id, "corpsecret": s.corp_secret.get_secret_value()},
        )
        code = data.get("errcode")
        if code == -1:
            raise RetryableSinkError(f"WeCom gettoken busy (errcode {code})")
        if code != 0 or not data.get("access_token"):
            raise FatalSinkError(f"WeCom gettoken refused the app credentials (errcode {code}): {errmsg(data)}")
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    def send(self, message: Message) -> None:
        person = message.recipient.person_id if message.recipient else None
        if not person:
            raise FatalSinkError("a WeCom application message needs a recipient")
        payload = app_payload(message, self.settings.agent_id, self.settings.user_id_prefix + person)
        for attempt in (1, 2):
            data = request_json(
                self._http,
                "POST",
                "/cgi-bin/message/send",
                what="WeCom application message",
                params={"access_token": self._token.get(message.at)},
                json=payload,
            )
            code = data.get("errcode")
            if code == 0:
                if data.get("invaliduser"):
                    raise FatalSinkError("WeCom does not know the recipient (invaliduser)")
                return
            if code in TOKEN_INVALID:
                self._token.forget()  # fetch a fresh token and try once more
                if attempt == 1:
                    continue
                raise RetryableSinkError(f"WeCom access token rejected twice (errcode {code})")
            if code == -1:
                raise RetryableSinkError(f"WeCom busy (errcode {code}): {errmsg(data)}")
            if code == 45009:
                raise RetryableSinkError(f"WeCom rate limited (errcode {code})", retry_after=timedelta(minutes=1))
            raise FatalSinkError(f"WeCom application message errcode {code}: {errmsg(data)}")

    def close(self) -> None:
        self._http.close()
