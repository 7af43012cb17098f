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
from typing import Any

import httpx

from zhengai.warnings.notify.base import FatalSinkError, RetryableSinkError

__all__ = ["client", "request_json", "errmsg", "RedactQuerySecrets"]


_SECRET_PARAM = re.compile(r"(?<![A-Za-z0-9_])((?:access_token|appsecret|sign|key|timestamp)=)[^&\s\"']+", re.I)


class RedactQuerySecrets(logging.Filter):
    """Masks credential query parameters in log records (httpx's "HTTP Request: POST <url>")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _SECRET_PARAM.sub(r"\1***", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_SECRET_PARAM.sub(r"\1***", str(a)) if isinstance(a, (str, httpx.URL)) else a
                                for a in record.args)
        return True


_httpx_log = logging.getLogger("httpx")
if not any(isinstance(f, RedactQuerySecrets) for f in _httpx_log.filters):
    _httpx_log.addFilter(RedactQuerySecrets())


def client(base_url: str, timeout: float, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
                        headers={"Content-Type": "application/json; charset=utf-8"})


def request_json(http: httpx.Client, method: str, path: str, *, what: str, params: dict[str, str] | None = None,
                 json: Any = None) -> dict[str, Any]:
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
