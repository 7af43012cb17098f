"""Signed action links: a responsible person acts on a warning from DingTalk or email.

A link names one warning, one person, one action and an expiry, and carries an HMAC-SHA256 over
exactly those (``<base>/warnings/<id>/<action>?p=<person>&e=<unix>&t=<token>``; 我的预警 is
``<base>/my/warnings?…`` signed for warning 0 and action ``mine``). Whoever holds the link may act
as that person — so links go only to personal channels (DingTalk 工作通知, email; never a group
robot), the web pages send ``Referrer-Policy: no-referrer``, and request logs carry no query.

A valid signature is not enough: at the time of use the web pages also refuse a link whose person
no longer holds the warning (reassigned, or escalated past them: ``routing.holders``) or whose
person had their links revoked after it was issued (``improvements.revoke_links``; a link is
issued ``LINK_TTL`` before it expires).

The secret comes from ``$ZHENGAI_LINK_SECRET`` or the file named by ``$ZHENGAI_LINK_SECRET_FILE``
(e.g. a Docker/Kubernetes secret). It is never logged; nothing here puts it in a message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

__all__ = [
    "ACTIONS",
    "InvalidLink",
    "LinkParams",
    "SecretError",
    "action_url",
    "load_secret",
    "sign",
    "verify",
    "LINK_TTL",
    "issued_at",
]

ACTIONS = ("ack", "improvement", "mine", "diagnose")  # the path segment after /warnings/<id>/; mine: /my/warnings
# diagnose: the 自主诊断 form (/diagnosis/self), signed for warning 0 like mine
LINK_TTL = timedelta(days=30)  # how long a signed action link stays valid after the notice is queued
ENV_SECRET, ENV_SECRET_FILE = "ZHENGAI_LINK_SECRET", "ZHENGAI_LINK_SECRET_FILE"
MIN_SECRET_BYTES = 16
_VERSION = "zhengai-link/v1"

_REASONS_ZH = {
    "malformed": "链接不完整或格式有误",
    "bad_signature": "链接校验失败（可能被修改过，或不是发给您的链接）",
    "expired": "链接已过期，请使用最新通知中的链接",
    "unknown_action": "链接指向的操作不存在",
    "revoked": "该链接已被撤销，请使用之后收到的通知中的链接",
    "not_holder": "该预警已转由他人负责或已升级督办，此链接已失效",
}


class SecretError(RuntimeError):
    """The link secret is configured but unusable (too short, unreadable file)."""


class InvalidLink(ValueError):
    """A link that must not be honoured. ``reason`` is one of malformed, bad_signature, expired,
    unknown_action; ``zh`` says it to the person in Chinese."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    @property
    def zh(self) -> str:
        return _REASONS_ZH.get(self.reason, "链接无效")


def _unix(t: datetime | int) -> int:
    if isinstance(t, datetime):
        if t.tzinfo is None:
            raise ValueError("expiry must be timezone-aware")
        return int(t.timestamp())
    return int(t)


def _key(secret: bytes | str) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise SecretError(f"the link secret must be at least {MIN_SECRET_BYTES} bytes")
    return key


def _canonical(warning_id: int, person_id: str, action: str, expires_at: int) -> bytes:
    for part in (person_id, action):
        if not part or "\n" in part:
            raise InvalidLink("malformed")
    return f"{_VERSION}\n{int(warning_id)}\n{person_id}\n{action}\n{expires_at}".encode()


def sign(warning_id: int, person_id: str, action: str, expires_at: datetime | int, secret: bytes | str) -> str:
    """The token (URL-safe base64, no padding) for one warning, person, action and expiry."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    mac = hmac.new(_key(secret), _canonical(warning_id, person_id, action, _unix(expires_at)), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def verify(
    warning_id: int,
    person_id: str,
    action: str,
    expires_at: datetime | int | str,
    token: str,
    secret: bytes | str,
    *,
    now: datetime,
) -> None:
    """Raises ``InvalidLink`` unless ``token`` was signed for exactly these values and has not
    expired at ``now``. The signature is compared in constant time, before the expiry is looked
    at, so a tampered expiry reads as a bad signature."""
    if action not in ACTIONS:
        raise InvalidLink("unknown_action")
    try:
        expiry = int(expires_at) if isinstance(expires_at, str) else _unix(expires_at)
    except (TypeError, ValueError):
        raise InvalidLink("malformed") from None
    if not token or not isinstance(token, str) or not token.isascii():
        raise InvalidLink("malformed")
    expected = sign(warning_id, person_id, action, expiry, secret)
    if not hmac.compare_digest(expected.encode("ascii"), token.encode("ascii")):
        raise InvalidLink("bad_signature")
    if now.timestamp() >= expiry:
        raise InvalidLink("expired")


@dataclass(frozen=True)
class LinkParams:
    """The query of a signed link (``p``, ``e``, ``t``), as read back from a request."""

    person_id: str
    expires_at: str
    token: str

    @classmethod
    def from_query(cls, q: Mapping[str, list[str]]) -> LinkParams:
        def one(name: str) -> str:
            values = q.get(name) or []
            if len(values) != 1:
                raise InvalidLink("malformed")
            return values[0]

        return cls(one("p"), one("e"), one("t"))


def action_url(
    url: str, warning_id: int, person_id: str, action: str, expires_at: datetime | int, secret: bytes | str
) -> str:
    """``url`` (the unsigned action link) with ``?p=…&e=…&t=…`` appended."""
    expiry = _unix(expires_at)
    query = urlencode({"p": person_id, "e": expiry, "t": sign(warning_id, person_id, action, expiry, secret)})
    return f"{url}{'&' if '?' in url else '?'}{query}"


def load_secret(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The link secret from the environment, or None when links are not signed. A configured
    but unusable secret raises ``SecretError`` (its value is never part of the message)."""
    env = os.environ if environ is None else environ
    value = env.get(ENV_SECRET)
    if not value and env.get(ENV_SECRET_FILE):
        path = Path(env[ENV_SECRET_FILE])
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"cannot read {ENV_SECRET_FILE} ({path}): {exc.strerror}") from None
        if not value:
            raise SecretError(f"{ENV_SECRET_FILE} ({path}) is empty")
    if not value:
        return None
    return _key(value)


def issued_at(expires_at: int | str) -> datetime:
    """When a link with this expiry was issued (links live ``LINK_TTL``)."""
    return datetime.fromtimestamp(int(expires_at), UTC) - LINK_TTL
