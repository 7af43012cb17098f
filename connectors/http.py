"""JSON-over-HTTP sources: bearer-token login, page and cursor pagination, typed failures.

Status handling (what the runner should do):

=====================  =====================================================================
401                    log in again once and repeat the request; a second 401 is fatal
429, 5xx, timeouts,    RetryableSourceError (Retry-After honoured) — retried by RetryPolicy
connection errors
other 4xx, bad JSON    FatalSourceError
=====================  =====================================================================

The password and the token live in ``SecretStr`` and never appear in repr, logs or errors.
Tests inject an ``httpx.Client`` (e.g. with ``httpx.MockTransport``) or point at loopback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from .errors import FatalSourceError, RetryableSourceError
from .retry import RetryPolicy

__all__ = ["ApiClient"]

log = logging.getLogger("zhengai.connectors")


class ApiClient:
    """A logged-in JSON API. ``client`` is used as given (and then not closed by us); without one
    an ``httpx.Client`` with ``timeout`` seconds is created and closed by :meth:`close`."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str | SecretStr,
        *,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        login_path: str = "/api/login",
        name: str = "api",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password if isinstance(password, SecretStr) else SecretStr(password)
        self._token: SecretStr | None = None
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self.retry = retry or RetryPolicy()
        self.login_path = login_path
        self.name = name

    # -- authentication -------------------------------------------------------------------

    def login(self) -> None:
        """POST the credentials; keep the token. Bad credentials are fatal (retrying would
        only lock the account)."""
        body = {"username": self.username, "password": self._password.get_secret_value()}
        resp = self._send("POST", self.login_path, json=body, auth=False)
        if resp.status_code in (401, 403):
            raise FatalSourceError(f"{self.name}: login rejected for user {self.username!r} "
                                   f"(HTTP {resp.status_code})")
        self._raise_for_status(resp, "POST", self.login_path)
        token = self._json(resp, self.login_path).get("token")
        if not isinstance(token, str) or not token:
            raise FatalSourceError(f"{self.name}: login answer has no token")
        self._token = SecretStr(token)

    # -- requests ---------------------------------------------------------------------------

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` as JSON, logged in, retried on transient failures."""
        what = f"{self.name} GET {path}"
        return self.retry.call(lambda: self._get_once(path, params), what=what)

    def _get_once(self, path: str, params: Mapping[str, Any] | None) -> Any:
        if self._token is None:
            self.login()
        resp = self._send("GET", path, params=params)
        if resp.status_code == 401:
            # Tokens expire between runs or mid-run: one fresh login, then give up.
            log.info("%s: token rejected, logging in again", self.name)
            self.login()
            resp = self._send("GET", path, params=params)
            if resp.status_code == 401:
                raise FatalSourceError(f"{self.name} GET {path}: still unauthorized after a "
                                       "fresh login (HTTP 401)")
        self._raise_for_status(resp, "GET", path)
        return self._json(resp, path)

    def _send(self, method: str, path: str, *, auth: bool = True, **kw: Any) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if auth and self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        try:
            return self._client.request(method, self.base_url + path, headers=headers, **kw)
        except httpx.TimeoutException:
            raise RetryableSourceError(f"{self.name} {method} {path}: timed out") from None
        except httpx.TransportError as exc:
            raise RetryableSourceError(
                f"{self.name} {method} {path}: {type(exc).__name__}") from None

    def _raise_for_status(self, resp: httpx.Response, method: str, path: str) -> None:
        status = resp.status_code
        if status < 400:
            return
        what = f"{self.name} {method} {path}: HTTP {status}"
        if status == 429 or status >= 500:
            raise RetryableSourceError(what, retry_after=_retry_after(resp))
        raise FatalSourceError(what)

    def _json(self, resp: httpx.Response, path: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise FatalSourceError(f"{self.name} {path}: answer is not JSON") from None

    # -- pagination -------------------------------------------------------------------------

    def pages(self, path: str, params: Mapping[str, Any] | None = None, *,
              page_size: int = 100, items: str = "items") -> Iterator[dict[str, Any]]:
        """Page-number pagination: ``?page=N&page_size=M`` → ``{items, page, page_size, total}``.
        Stops after ``total`` items or at the first empty page."""
        page, seen = 1, 0
        while True:
            body = self.get_json(path, {**(params or {}), "page": page, "page_size": page_size})
            batch = _items(body, items, self.name, path)
            yield from batch
            seen += len(batch)
            total = body.get("total")
            if not batch or (isinstance(total, int) and seen >= total):
                return
            page += 1

    def cursor_pages(self, path: str, params: Mapping[str, Any] | None = None, *,
                     limit: int = 200, items: str = "items", cursor_param: str = "cursor",
                     next_key: str = "next_cursor") -> Iterator[dict[str, Any]]:
        """Cursor pagination: pass the opaque ``next_cursor`` back until it is null."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            query = {**(params or {}), "limit": limit}
            if cursor is not None:
                query[cursor_param] = cursor
            body = self.get_json(path, query)
            yield from _items(body, items, self.name, path)
            cursor = body.get(next_key) or None
            if cursor is None:
                return
            if cursor in seen:  # a server bug would otherwise loop forever
                raise FatalSourceError(f"{self.name} GET {path}: next cursor repeats")
            seen.add(cursor)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __repr__(self) -> str:
        return f"ApiClient({self.base_url!r}, username={self.username!r}, password=**********)"


def _items(body: Any, key: str, name: str, path: str) -> list[dict[str, Any]]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise FatalSourceError(f"{name} GET {path}: answer has no {key!r} list")
    return items


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
