"""JSON-over-HTTP sources: authentication, page/offset/cursor pagination, typed failures.

Status handling (what the runner should do):

=====================  =====================================================================
401 (or a redirect to  log in again once and repeat the request; a second refusal is fatal
the login page)
429, 5xx, timeouts,    RetryableSourceError (Retry-After honoured) — retried by RetryPolicy
connection errors
other 4xx, bad JSON    FatalSourceError
=====================  =====================================================================

Authentication is an :class:`~zhengai.connectors.http_auth.Auth` (login token, fixed bearer
token, OAuth2 client credentials, cookie session); pagination a :class:`Pagination`
(:class:`PagePagination`, :class:`OffsetPagination`, :class:`CursorPagination`) whose item,
total and next-cursor keys may be dotted paths (``data.list``) for APIs that wrap their answers.
Secrets never appear in repr, logs or errors. Tests inject an ``httpx.Client`` (e.g. with
``httpx.MockTransport``) or point at loopback.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx
from pydantic import SecretStr

from .errors import FatalSourceError, RetryableSourceError
from .http_auth import Auth, BearerToken, CookieSession, LoginToken, OAuth2ClientCredentials
from .retry import RetryPolicy

__all__ = [
    "ApiClient",
    "Auth",
    "LoginToken",
    "BearerToken",
    "OAuth2ClientCredentials",
    "CookieSession",
    "Pagination",
    "PagePagination",
    "OffsetPagination",
    "CursorPagination",
    "dig",
]

log = logging.getLogger("zhengai.connectors")


def dig(body: Any, path: str) -> Any:
    """``body["data"]["list"]`` for ``path = "data.list"``; None where a step is missing."""
    value = body
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


class ApiClient:
    """A logged-in JSON API. ``client`` is used as given (and then not closed by us); without one
    an ``httpx.Client`` with ``timeout`` seconds is created and closed by :meth:`close`.

    ``auth`` says how to log in; without it, ``username`` and ``password`` are posted as JSON to
    ``login_path`` (:class:`LoginToken`).
    """

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | SecretStr | None = None,
        *,
        auth: Auth | None = None,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        login_path: str = "/api/login",
        name: str = "api",
        verify: Any = True,
    ) -> None:
        if auth is None:
            if username is None or password is None:
                raise ValueError("ApiClient needs auth, or username and password")
            auth = LoginToken(username, password, path=login_path)
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self._owns_client = client is None
        self.client = client if client is not None else httpx.Client(timeout=timeout, verify=verify)
        self.retry = retry or RetryPolicy()
        self.name = name

    @property
    def username(self) -> str | None:
        return getattr(self.auth, "username", None)

    def login(self) -> None:
        self.auth.login(self)

    # -- requests ---------------------------------------------------------------------------

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` as JSON, logged in, retried on transient failures."""
        what = f"{self.name} GET {path}"
        return self.retry.call(lambda: self._get_once(path, params), what=what)

    def _get_once(self, path: str, params: Mapping[str, Any] | None) -> Any:
        if self.auth.needs_login():
            self.auth.login(self)
        resp = self.send("GET", path, params=params)
        if self.auth.refused(resp):
            # Tokens and sessions expire between runs or mid-run: one fresh login, then give up.
            log.info("%s: credentials refused, logging in again", self.name)
            self.auth.login(self)
            resp = self.send("GET", path, params=params)
            if self.auth.refused(resp):
                raise FatalSourceError(
                    f"{self.name} GET {path}: still unauthorized after a fresh login (HTTP {resp.status_code})"
                )
        self.raise_for_status(resp, "GET", path)
        return self.json(resp, path)

    def send(self, method: str, path: str, *, authenticated: bool = True, **kw: Any) -> httpx.Response:
        """One request (``path`` relative to ``base_url``, or an absolute URL); transport
        failures become RetryableSourceError. Statuses are the caller's to judge."""
        headers = {"Accept": "application/json"}
        if authenticated:
            headers.update(self.auth.headers())
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        shown = path if not path.startswith("http") else httpx.URL(path).path
        try:
            return self.client.request(method, url, headers=headers, **kw)
        except httpx.TimeoutException:
            raise RetryableSourceError(f"{self.name} {method} {shown}: timed out") from None
        except httpx.TransportError as exc:
            raise RetryableSourceError(f"{self.name} {method} {shown}: {type(exc).__name__}") from None

    def raise_for_status(self, resp: httpx.Response, method: str, path: str) -> None:
        status = resp.status_code
        if status < 400:
            return
        what = f"{self.name} {method} {path}: HTTP {status}"
        if status == 429 or status >= 500:
            raise RetryableSourceError(what, retry_after=_retry_after(resp))
        raise FatalSourceError(what)

    def json(self, resp: httpx.Response, path: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise FatalSourceError(f"{self.name} {path}: answer is not JSON") from None

    # -- pagination -------------------------------------------------------------------------

    def paginate(
        self, path: str, pagination: Pagination, params: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of every page, in order."""
        return pagination.items_of(self, path, dict(params or {}))

    def pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, page_size: int = 100, items: str = "items"
    ) -> Iterator[dict[str, Any]]:
        """Page-number pagination: ``?page=N&page_size=M`` → ``{items, page, page_size, total}``."""
        return self.paginate(path, PagePagination(size=page_size, items=items), params)

    def cursor_pages(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int = 200,
        items: str = "items",
        cursor_param: str = "cursor",
        next_key: str = "next_cursor",
    ) -> Iterator[dict[str, Any]]:
        """Cursor pagination: pass the opaque ``next_cursor`` back until it is null."""
        pagination = CursorPagination(limit=limit, items=items, cursor_param=cursor_param, next=next_key)
        return self.paginate(path, pagination, params)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __repr__(self) -> str:
        return f"ApiClient({self.base_url!r}, auth={self.auth!r})"


def _items(body: Any, key: str, name: str, path: str) -> list[dict[str, Any]]:
    items = dig(body, key)
    if not isinstance(items, list):
        raise FatalSourceError(f"{name} GET {path}: answer has no {key!r} list")
    return items


class Pagination(ABC):
    """How a list endpoint splits its answer. ``items`` is the (dotted) key of the list."""

    items: str

    @abstractmethod
    def items_of(self, api: ApiClient, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]: ...

    def with_size(self, size: int) -> Pagination:
        """The same pagination asking for ``size`` items per page."""
        return self


@dataclass(frozen=True)
class PagePagination(Pagination):
    """``?page=N&page_size=M``. Stops after ``total`` items (when the answer has it) or at the
    first empty page — never at a short page, since servers cap page sizes silently."""

    size: int = 100
    page_param: str = "page"
    size_param: str = "page_size"
    first: int = 1
    items: str = "items"
    total: str = "total"

    def items_of(self, api: ApiClient, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        page, seen = self.first, 0
        while True:
            body = api.get_json(path, {**params, self.page_param: page, self.size_param: self.size})
            batch = _items(body, self.items, api.name, path)
            yield from batch
            seen += len(batch)
            total = dig(body, self.total)
            if not batch or (isinstance(total, int) and seen >= total):
                return
            page += 1

    def with_size(self, size: int) -> PagePagination:
        return replace(self, size=size)


@dataclass(frozen=True)
class OffsetPagination(Pagination):
    """``?offset=N&limit=M``; the next offset counts the items actually received."""

    limit: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    items: str = "items"
    total: str = "total"

    def items_of(self, api: ApiClient, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            body = api.get_json(path, {**params, self.offset_param: offset, self.limit_param: self.limit})
            batch = _items(body, self.items, api.name, path)
            yield from batch
            offset += len(batch)
            total = dig(body, self.total)
            if not batch or (isinstance(total, int) and offset >= total):
                return

    def with_size(self, size: int) -> OffsetPagination:
        return replace(self, limit=size)


@dataclass(frozen=True)
class CursorPagination(Pagination):
    """Pass the opaque ``next`` value back as ``cursor_param`` until it is null or empty."""

    limit: int = 200
    cursor_param: str = "cursor"
    limit_param: str = "limit"
    items: str = "items"
    next: str = "next_cursor"

    def items_of(self, api: ApiClient, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            query = {**params, self.limit_param: self.limit}
            if cursor is not None:
                query[self.cursor_param] = cursor
            body = api.get_json(path, query)
            yield from _items(body, self.items, api.name, path)
            cursor = dig(body, self.next) or None
            if cursor is None:
                return
            if cursor in seen:  # a server bug would otherwise loop forever
                raise FatalSourceError(f"{api.name} GET {path}: next cursor repeats")
            seen.add(cursor)

    def with_size(self, size: int) -> CursorPagination:
        return replace(self, limit=size)


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
