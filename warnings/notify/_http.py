"""The one place HTTP outcomes become sink errors, for the webhook-style sinks.

Transport errors, timeouts, HTTP 429 and 5xx are retryable; other 4xx are fatal; a 200 whose
body is not JSON (a proxy's error page) is retryable. Messages name the status or the exception
type only — request URLs carry access tokens and never appear in an error.

The vendors put credentials in the query string (``access_token``, ``sign``, ``key``,
``appsecret``), and httpx logs every request URL at INFO; a filter on the ``httpx`` logger
replaces those parameters' values with ``***`` before any handler sees the record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from zhengai.warnings.notify.base import FatalSinkError, RetryableSinkError

__all__ = ["client", "request_json", "errmsg", "RedactQuerySecrets", "AccessToken"]


_SECRET_PARAM = re.compile(r"(?<![A-Za-z0-9_])((?:access_token|appsecret|sign|key|timestamp)=)[^&\s\"']+", re.I)


class RedactQuerySecrets(logging.Filter):
    """Masks credential query parameters in log records (httpx's "HTTP Request: POST <url>")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _SECRET_PARAM.sub(r"\1***", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_PARAM.sub(r"\1***", str(a)) if isinstance(a, (str, httpx.URL)) else a for a in record.args
            )
        return True


_httpx_log = logging.getLogger("httpx")
if not any(isinstance(f, RedactQuerySecrets) for f in _httpx_log.filters):
    _httpx_log.addFilter(RedactQuerySecrets())


def client(base_url: str, timeout: float, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        timeout=timeout,
        transport=transport,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )


def request_json(
    http: httpx.Client, method: str, path: str, *, what: str, params: dict[str, str] | None = None, json: Any = None
) -> dict[str, Any]:
    try:
        response = http.request(method, path, params=params, json=json)
    except httpx.TimeoutException as exc:
        raise RetryableSinkError(f"{what}: timeout ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise RetryableSinkError(f"{what}: connection failed ({type(exc).__name__})") from None
    status = response.status_code
    if status == 429 or status >= 500:
        raise RetryableSinkError(f"{what}: HTTP {status}")
    if status >= 400:
        raise FatalSinkError(f"{what}: HTTP {status}")
    try:
        data = response.json()
    except ValueError:
        raise RetryableSinkError(f"{what}: HTTP {status} with a body that is not JSON") from None
    if not isinstance(data, dict):
        raise RetryableSinkError(f"{what}: unexpected JSON answer")
    return data


def errmsg(data: dict[str, Any]) -> str:
    return str(data.get("errmsg", ""))[:200]


class AccessToken:
    """An application's access token (DingTalk 工作通知, WeCom 应用消息): fetched on first use and
    again ``margin`` before it expires, or after :meth:`forget` (the server refused it). ``fetch``
    asks the server and returns ``(token, expires_in seconds)``, raising the sink's errors. The
    token is a secret: kept as ``SecretStr``, never logged."""

    def __init__(self, fetch: Callable[[], tuple[str, int]], margin: timedelta = timedelta(minutes=5)):
        self._fetch, self._margin = fetch, margin
        self._token: SecretStr | None = None
        self._until: datetime | None = None

    def get(self, now: datetime) -> str:
        if self._token is None or self._until is None or now >= self._until:
            token, expires_in = self._fetch()
            self._token = SecretStr(token)
            self._until = now + timedelta(seconds=expires_in) - self._margin
        return self._token.get_secret_value()

    def forget(self) -> None:
        self._token = None
