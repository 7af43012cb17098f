"""What keeps the web pages safe, apart from the pages: headers, body limits and timeouts,
CSRF tokens, and who the person is (the campus proxy's header, or a signed link).

- ``Guard`` (ASGI middleware, outermost): reads the whole request body first — at most
  ``max_body`` bytes (413) within ``body_timeout`` seconds (408) — so no handler waits on a slow
  client; adds the security headers to every response; logs method, path and status only (the
  query of a signed link is a credential and never reaches a log).
- CSRF: every form carries ``csrf``, an HMAC of the acting person and the day (China time) under
  the link secret; a POST is refused without it, with another person's, or from another site
  (``Sec-Fetch-Site: cross-site``, or an ``Origin`` that is not this host).
- Identity: behind the campus proxy (CAS/SSO in front), the proxy's authenticated-user header
  names the person — only when the header is configured, and only from the configured proxy
  addresses. Otherwise a signed link names them (``zhengai.warnings.links``), for one warning.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

log = logging.getLogger("zhengai.web")

__all__ = ["SECURITY_HEADERS", "Guard", "WebSettings", "csrf_token", "csrf_ok", "proxy_user", "same_site"]

CHINA = ZoneInfo("Asia/Shanghai")
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"referrer-policy", b"no-referrer"),  # a page URL may carry a signed token
    (b"cache-control", b"no-store"),  # every page is personal; some are reached by a token
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
_PERSON = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class WebSettings:
    """``user_header``: the header the campus proxy sets to the authenticated user's person id
    (e.g. ``X-Remote-User``); None = not behind such a proxy, links only. ``trusted_proxies``: the
    addresses it is accepted from (the proxy's own)."""

    user_header: str | None = None
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    max_body: int = 64 * 1024
    body_timeout: float = 10.0
    header_timeout: float = 10.0
    extra: dict = field(default_factory=dict)


class Guard:
    def __init__(self, app, settings: WebSettings):
        self.app, self.settings = app, settings

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status: list[int] = []

        async def send_secured(message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                names = {h for h, _ in SECURITY_HEADERS}
                message = dict(
                    message,
                    headers=[(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                    + SECURITY_HEADERS,
                )
            await send(message)

        try:
            body = await self._read_body(scope, receive)
        except _Refused as exc:
            await _plain(send_secured, exc.status, exc.text)
            self._log(scope, exc.status)
            return
        if body is None:  # the client went away
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_secured)
        self._log(scope, status[0] if status else 0)

    async def _read_body(self, scope, receive) -> bytes | None:
        s = self.settings
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > s.max_body):
            raise _Refused(413, "提交的内容过长，请精简后再试。")
        if scope["method"] in ("GET", "HEAD"):
            return b""
        body, deadline = b"", asyncio.get_running_loop().time() + s.body_timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.001))
            except TimeoutError:
                raise _Refused(408, "提交超时，请重试。") from None
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > s.max_body:
                raise _Refused(413, "提交的内容过长，请精简后再试。")
            if not message.get("more_body", False):
                return body

    @staticmethod
    def _log(scope, status: int) -> None:
        log.info("%s %s %s", scope.get("method"), scope.get("path"), status)  # never the query string


class _Refused(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status, self.text = status, text


async def _plain(send, status: int, text: str) -> None:
    data = text.encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(data)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _mac(secret: bytes, text: str) -> str:
    return (
        base64.urlsafe_b64encode(hmac.new(secret, text.encode("utf-8"), hashlib.sha256).digest()).rstrip(b"=").decode()
    )


def csrf_token(secret: bytes, person_id: str, now: datetime) -> str:
    return _mac(secret, f"zhengai-csrf/v1\n{person_id}\n{now.astimezone(CHINA).date().isoformat()}")


def csrf_ok(secret: bytes, person_id: str, token: str | None, now: datetime) -> bool:
    """Today's or yesterday's token for this person (a form opened before midnight still posts)."""
    if not token or not token.isascii():
        return False
    return any(
        hmac.compare_digest(csrf_token(secret, person_id, now - timedelta(days=d)).encode(), token.encode())
        for d in (0, 1)
    )


def same_site(headers) -> bool:
    """False for a request another site made the browser send. Browsers say so in
    ``Sec-Fetch-Site``; ``Origin`` is ``null`` on our own forms (Referrer-Policy: no-referrer), so
    it only counts when it names another host. The CSRF token is the defence either way."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = headers.get("origin")
    if origin and origin != "null":
        host = headers.get("x-forwarded-host") or headers.get("host") or ""
        return origin.split("://", 1)[-1] == host
    return True


def proxy_user(headers, client_host: str | None, settings: WebSettings) -> str | None:
    """The person the campus proxy authenticated, when configured and from a trusted proxy."""
    if not settings.user_header or client_host not in settings.trusted_proxies:
        return None
    value = (headers.get(settings.user_header) or "").strip()
    return value if _PERSON.match(value) else None
