"""The one place HTTP outcomes become sink errors, for the webhook-style sinks.

Transport errors, timeouts, HTTP 429 and 5xx are retryable; other 4xx are fatal; a 200 whose
body is not JSON (a proxy's error page) is retryable. Messages name the status or the exception
type only — request URLs carry access tokens and never appear in an error.
"""

from __future__ import annotations

from typing import Any

import httpx

from zhengai.warnings.notify.base import FatalSinkError, RetryableSinkError

__all__ = ["client", "request_json", "errmsg"]


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
