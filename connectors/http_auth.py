"""How an :class:`~zhengai.connectors.http.ApiClient` proves who it is.

==========================  ===============================================================
:class:`LoginToken`         POST ``{"username", "password"}`` as JSON to a login path; the
                            answer's token goes in ``Authorization: Bearer`` (the demo API)
:class:`BearerToken`        a fixed token issued by the vendor (``Authorization: Bearer``)
:class:`OAuth2ClientCredentials`  RFC 6749 §4.4: POST ``grant_type=client_credentials`` to the
                            token URL (client id and secret in HTTP Basic, or in the form);
                            the access token is renewed before ``expires_in`` runs out
:class:`CookieSession`      POST a login form; the server's session cookie is kept in the
                            client's cookie jar and sent with every request
==========================  ===============================================================

Hooks, and when the client calls them: ``needs_login()`` before every request (true before the
first one, and when a known expiry has passed); ``login(api)`` then, and once more after a
request was refused (:meth:`Auth.refused`: HTTP 401, or a redirect to the login page); a second
refusal in a row is fatal. ``headers()`` is added to every request. Rejected credentials are a
:class:`FatalSourceError` (retrying would only lock the account). Passwords, client secrets,
tokens and cookies live in ``SecretStr`` or the cookie jar, and never appear in repr, logs or
errors.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import SecretStr

from .errors import FatalSourceError

if TYPE_CHECKING:
    from .http import ApiClient

__all__ = ["Auth", "LoginToken", "BearerToken", "OAuth2ClientCredentials", "CookieSession"]


def _secret(value: str | SecretStr) -> SecretStr:
    return value if isinstance(value, SecretStr) else SecretStr(value)


def _rejected(api: ApiClient, who: str, resp: httpx.Response) -> FatalSourceError:
    return FatalSourceError(f"{api.name}: login rejected for {who} (HTTP {resp.status_code})")


class Auth(ABC):
    kind: ClassVar[str]

    def needs_login(self) -> bool:
        """True when ``login`` must run before the next request."""
        return False

    @abstractmethod
    def login(self, api: ApiClient) -> None:
        """Obtain fresh credentials (a token, a cookie); raise FatalSourceError if refused."""

    def headers(self) -> dict[str, str]:
        return {}

    def refused(self, resp: httpx.Response) -> bool:
        """Whether the server refused the request for want of valid credentials."""
        return resp.status_code == 401


class LoginToken(Auth):
    """``POST path {"username", "password"}`` → ``{token_field: "…"}``."""

    kind = "login"

    def __init__(
        self, username: str, password: str | SecretStr, *, path: str = "/api/login", token_field: str = "token"
    ) -> None:
        self.username = username
        self._password = _secret(password)
        self.path, self.token_field = path, token_field
        self._token: SecretStr | None = None

    def needs_login(self) -> bool:
        return self._token is None

    def login(self, api: ApiClient) -> None:
        body = {"username": self.username, "password": self._password.get_secret_value()}
        resp = api.send("POST", self.path, json=body, authenticated=False)
        if resp.status_code in (401, 403):
            raise _rejected(api, f"user {self.username!r}", resp)
        api.raise_for_status(resp, "POST", self.path)
        token = api.json(resp, self.path)
        token = token.get(self.token_field) if isinstance(token, Mapping) else None
        if not isinstance(token, str) or not token:
            raise FatalSourceError(f"{api.name}: login answer has no {self.token_field!r}")
        self._token = SecretStr(token)

    def headers(self) -> dict[str, str]:
        if self._token is None:
            return {}
        return {"Authorization": f"Bearer {self._token.get_secret_value()}"}

    def __repr__(self) -> str:
        return f"LoginToken(username={self.username!r}, password=**********)"


class BearerToken(Auth):
    """A fixed token; a refusal is fatal at once (there is nothing to renew)."""

    kind = "bearer"

    def __init__(self, token: str | SecretStr, *, header: str = "Authorization", scheme: str = "Bearer") -> None:
        self._token = _secret(token)
        self.header, self.scheme = header, scheme

    def login(self, api: ApiClient) -> None:
        raise FatalSourceError(f"{api.name}: the configured token was refused (HTTP 401); ask the vendor for a new one")

    def headers(self) -> dict[str, str]:
        value = self._token.get_secret_value()
        return {self.header: f"{self.scheme} {value}" if self.scheme else value}

    def __repr__(self) -> str:
        return f"BearerToken(header={self.header!r}, token=**********)"


class OAuth2ClientCredentials(Auth):
    """RFC 6749 §4.4. ``client_auth="basic"`` (the RFC's recommendation) or ``"post"`` (id and
    secret in the form, for servers that want them there)."""

    kind = "oauth2_client_credentials"
    # Renew this long before the server's expiry, so a token never dies in flight.
    margin: ClassVar[float] = 30.0

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | SecretStr,
        *,
        scope: str | None = None,
        client_auth: str = "basic",
        clock: Any = time.monotonic,
    ) -> None:
        if client_auth not in ("basic", "post"):
            raise ValueError("client_auth must be 'basic' or 'post'")
        self.token_url, self.client_id, self.scope = token_url, client_id, scope
        self._secret = _secret(client_secret)
        self.client_auth = client_auth
        self._token: SecretStr | None = None
        self._expires: float | None = None
        self._clock = clock

    def needs_login(self) -> bool:
        return self._token is None or (self._expires is not None and self._clock() >= self._expires)

    def login(self, api: ApiClient) -> None:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        kw: dict[str, Any] = {}
        if self.client_auth == "basic":
            # §2.3.1: id and secret are form-urlencoded before going into Basic.
            kw["auth"] = (quote(self.client_id, safe=""), quote(self._secret.get_secret_value(), safe=""))
        else:
            form.update(client_id=self.client_id, client_secret=self._secret.get_secret_value())
        resp = api.send("POST", self.token_url, data=form, authenticated=False, **kw)
        if resp.status_code in (400, 401, 403):
            # §5.2: invalid_client / unauthorized_client come as 400 or 401.
            raise _rejected(api, f"client {self.client_id!r}", resp)
        api.raise_for_status(resp, "POST", urlsplit(self.token_url).path or self.token_url)
        body = api.json(resp, self.token_url)
        token = body.get("access_token") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token:
            raise FatalSourceError(f"{api.name}: token answer has no access_token")
        self._token = SecretStr(token)
        expires_in = body.get("expires_in")
        self._expires = (
            self._clock() + max(0.0, float(expires_in) - self.margin) if isinstance(expires_in, (int, float)) else None
        )

    def headers(self) -> dict[str, str]:
        if self._token is None:
            return {}
        return {"Authorization": f"Bearer {self._token.get_secret_value()}"}

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials({self.token_url!r}, client_id={self.client_id!r}, client_secret=**********)"


class CookieSession(Auth):
    """A login form (``application/x-www-form-urlencoded``) that answers with a session cookie.

    Success is a 2xx/3xx answer after which the cookie jar holds ``cookie_name`` (if given) or
    any cookie; a session that ended shows as 401 or as a redirect to the login page, and is
    renewed by logging in again.
    """

    kind = "cookie_session"

    def __init__(
        self,
        username: str,
        password: str | SecretStr,
        *,
        login_path: str = "/login",
        username_field: str = "username",
        password_field: str = "password",
        extra_fields: Mapping[str, str] | None = None,
        cookie_name: str | None = None,
    ) -> None:
        self.username = username
        self._password = _secret(password)
        self.login_path = login_path
        self.username_field, self.password_field = username_field, password_field
        self.extra_fields = dict(extra_fields or {})
        self.cookie_name = cookie_name
        self._logged_in = False

    def needs_login(self) -> bool:
        return not self._logged_in

    def login(self, api: ApiClient) -> None:
        api.client.cookies.clear()
        form = {
            **self.extra_fields,
            self.username_field: self.username,
            self.password_field: self._password.get_secret_value(),
        }
        resp = api.send("POST", self.login_path, data=form, authenticated=False)
        if resp.status_code in (401, 403):
            raise _rejected(api, f"user {self.username!r}", resp)
        if resp.status_code >= 400:
            api.raise_for_status(resp, "POST", self.login_path)
        jar = api.client.cookies
        ok = (self.cookie_name in jar) if self.cookie_name else bool(jar)
        if not ok or self._to_login_page(resp) and resp.is_redirect:
            raise FatalSourceError(
                f"{api.name}: login for user {self.username!r} set no session "
                "cookie (wrong password, or a different login form)"
            )
        self._logged_in = True

    def refused(self, resp: httpx.Response) -> bool:
        if resp.status_code == 401 or (resp.is_redirect and self._to_login_page(resp)):
            self._logged_in = False
            return True
        return False

    def _to_login_page(self, resp: httpx.Response) -> bool:
        location = resp.headers.get("Location", "")
        return bool(location) and urlsplit(location).path == urlsplit(self.login_path).path

    def __repr__(self) -> str:
        return f"CookieSession(username={self.username!r}, password=**********)"
