"""HTTP sources against a loopback server that requires login — login token, fixed bearer
token, OAuth2 client credentials, cookie session — pages by page number, offset and cursor, and
injects 429, 500, slow answers and expired credentials mid-run."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from zhengai.connectors import (
    FatalSourceError,
    MemoryBookmarks,
    RetryPolicy,
    build_connector,
    load_config,
    run_connector,
)
from zhengai.connectors.http import (
    ApiClient,
    BearerToken,
    CookieSession,
    CursorPagination,
    LoginToken,
    OAuth2ClientCredentials,
    OffsetPagination,
    PagePagination,
    Pagination,
)
from zhengai.connectors.testing import ListDelivery
from zhengai.ingest.records import Entity, Observation, Person

USER, PASSWORD = "zg-reader", "pw-不可见-Secr3t"
CLIENT_ID, CLIENT_SECRET = "zhengai client", "cs/+=secret&x"  # needs form-encoding in Basic
STATIC = "static-token-0f9e8d7c"
ITEMS = [{"id": i, "name": f"item{i}"} for i in range(1, 26)]


@dataclass
class Server:
    tokens: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    inject: list[str] = field(default_factory=list)  # consumed by item requests after the first
    redirect_unauthenticated: bool = False
    logins: Counter = field(default_factory=Counter)
    item_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    staff: list[dict] = field(default_factory=list)

    def issue(self, kind: str) -> str:
        token = f"{kind}-{secrets.token_hex(8)}"
        with self.lock:
            self.logins[kind] += 1
            (self.sessions if kind == "session" else self.tokens).add(token)
        return token

    def next_injection(self) -> str | None:
        with self.lock:
            self.item_requests += 1
            if self.item_requests > 1 and self.inject:
                return self.inject.pop(0)
            return None


def handler_for(state: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def reply(self, status: int, body: object = None, headers: dict | None = None) -> None:
            data = json.dumps(body if body is not None else {}, ensure_ascii=False).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self) -> None:
            path = urlparse(self.path).path
            if path == "/api/login":
                body = json.loads(self.body())
                if body != {"username": USER, "password": PASSWORD}:
                    return self.reply(401, {"error": "bad credentials"})
                return self.reply(200, {"token": state.issue("token")})
            if path == "/oauth/token":
                form = {k: v[0] for k, v in parse_qs(self.body().decode()).items()}
                cid, secret = form.get("client_id"), form.get("client_secret")
                scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
                if scheme == "Basic":
                    raw = base64.b64decode(value).decode()
                    cid, _, secret = (unquote(p.replace("+", " ")) for p in raw.partition(":"))
                if form.get("grant_type") != "client_credentials":
                    return self.reply(400, {"error": "unsupported_grant_type"})
                if (cid, secret) != (CLIENT_ID, CLIENT_SECRET):
                    return self.reply(401, {"error": "invalid_client"})
                return self.reply(200, {"access_token": state.issue("oauth"), "token_type": "bearer", "expires_in": 60})
            if path == "/login":
                form = {k: v[0] for k, v in parse_qs(self.body().decode()).items()}
                if form.get("user") != USER or form.get("pass") != PASSWORD:
                    return self.reply(200, {"page": "login form, try again"})  # no cookie
                session = state.issue("session")
                return self.reply(302, {}, {"Location": "/", "Set-Cookie": f"SESSION={session}; Path=/; HttpOnly"})
            self.reply(404)

        def authorised(self) -> bool:
            auth = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if auth == STATIC or auth in state.tokens:
                return True
            cookie = self.headers.get("Cookie", "")
            return any(f"SESSION={s}" in cookie for s in state.sessions)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            if not self.authorised():
                if state.redirect_unauthenticated:
                    return self.reply(302, {}, {"Location": "/login?next=" + url.path})
                return self.reply(401, {"error": "login required"})
            injected = state.next_injection()
            if injected == "429":
                return self.reply(429, {}, {"Retry-After": "1"})
            if injected == "500":
                return self.reply(500, {"error": "boom"})
            if injected == "slow":
                time.sleep(0.5)
            if injected == "expire":
                with state.lock:
                    state.tokens.clear()
                    state.sessions.clear()
                return self.authorised() or self.do_GET_unauthorised(url.path)
            if url.path == "/items/page":
                page, size = int(q["page"]), int(q["page_size"])
                return self.reply(200, {"items": ITEMS[(page - 1) * size : page * size], "total": len(ITEMS)})
            if url.path == "/items/offset":
                start, limit = int(q["offset"]), int(q["limit"])
                return self.reply(200, {"code": 0, "data": {"list": ITEMS[start : start + limit]}})
            if url.path == "/items/cursor":
                start, limit = int(q.get("cursor") or 0), int(q["limit"])
                nxt = str(start + limit) if start + limit < len(ITEMS) else None
                return self.reply(200, {"items": ITEMS[start : start + limit], "next": nxt})
            if url.path == "/hr/school":
                return self.reply(200, {"id": "SCH", "name": "示范职业技术学院"})
            if url.path == "/hr/staff":
                start, limit = int(q["offset"]), int(q["limit"])
                return self.reply(
                    200, {"code": 0, "data": {"list": state.staff[start : start + limit], "total": len(state.staff)}}
                )
            self.reply(404)

        def do_GET_unauthorised(self, path: str) -> None:
            if state.redirect_unauthenticated:
                return self.reply(302, {}, {"Location": "/login"})
            return self.reply(401, {"error": "expired"})

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Server]]:
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    httpd.shutdown()
    httpd.server_close()


AUTHS: dict[str, Callable[[str], object]] = {
    "login": lambda base: LoginToken(USER, PASSWORD),
    "bearer": lambda base: BearerToken(STATIC),
    "oauth2-basic": lambda base: OAuth2ClientCredentials(base + "/oauth/token", CLIENT_ID, CLIENT_SECRET),
    "oauth2-post": lambda base: OAuth2ClientCredentials(
        base + "/oauth/token", CLIENT_ID, CLIENT_SECRET, client_auth="post"
    ),
    "cookie": lambda base: CookieSession(
        USER, PASSWORD, login_path="/login", username_field="user", password_field="pass", cookie_name="SESSION"
    ),
}
PAGINATIONS: dict[str, tuple[str, Pagination]] = {
    "page": ("/items/page", PagePagination(size=10)),
    "offset": ("/items/offset", OffsetPagination(limit=10, items="data.list")),
    "cursor": ("/items/cursor", CursorPagination(limit=10, next="next")),
}


@pytest.mark.parametrize("pagination", sorted(PAGINATIONS))
@pytest.mark.parametrize("auth", sorted(AUTHS))
def test_every_auth_kind_and_pagination_through_failures(
    server: tuple[str, Server], auth: str, pagination: str
) -> None:
    base, state = server
    renewable = auth != "bearer"  # a fixed token cannot be renewed: no expiry injected
    state.inject = ["429", "500", "slow"] + (["expire"] if renewable else [])
    state.redirect_unauthenticated = auth == "cookie"
    sleeps: list[float] = []
    api = ApiClient(
        base,
        auth=AUTHS[auth](base),
        timeout=0.2,
        name="t",  # type: ignore[arg-type]
        retry=RetryPolicy(attempts=5, base_delay=0.5, jitter=0, sleep=sleeps.append),
    )
    path, pages = PAGINATIONS[pagination]
    items = list(api.paginate(path, pages))
    api.close()
    assert items == ITEMS  # every item, once, in order
    assert sleeps == [1.0, 1.0, 2.0]  # Retry-After 1 s, then backoff 1 s, 2 s (timeout)
    assert not state.inject
    logins = sum(state.logins.values())
    assert logins == (2 if renewable else 0)  # the first, and one after the expiry


def test_oauth2_renews_before_expiry(server: tuple[str, Server]) -> None:
    base, state = server
    now = [1000.0]
    auth = OAuth2ClientCredentials(base + "/oauth/token", CLIENT_ID, CLIENT_SECRET, scope="read", clock=lambda: now[0])
    api = ApiClient(base, auth=auth)
    api.get_json("/items/page", {"page": 1, "page_size": 1})
    now[0] += 29  # expires_in 60, renewed 30 s early
    api.get_json("/items/page", {"page": 1, "page_size": 1})
    assert state.logins["oauth"] == 1
    now[0] += 2
    api.get_json("/items/page", {"page": 1, "page_size": 1})
    assert state.logins["oauth"] == 2
    api.close()


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (LoginToken(USER, "bad-S3cret"), f"t: login rejected for user '{USER}' (HTTP 401)"),
        (BearerToken("forged"), "t: the configured token was refused (HTTP 401)"),
        (
            OAuth2ClientCredentials("/oauth/token", CLIENT_ID, "bad-S3cret"),
            f"t: login rejected for client '{CLIENT_ID}' (HTTP 401)",
        ),
        (
            CookieSession(USER, "bad-S3cret", username_field="user", password_field="pass"),
            f"t: login for user '{USER}' set no session cookie",
        ),
    ],
)
def test_rejected_credentials_are_fatal_and_never_retried(
    server: tuple[str, Server], auth: object, message: str
) -> None:
    base, _ = server
    sleeps: list[float] = []
    api = ApiClient(
        base,
        auth=auth,
        name="t",  # type: ignore[arg-type]
        retry=RetryPolicy(sleep=sleeps.append),
    )
    with pytest.raises(FatalSourceError) as err:
        api.get_json("/items/page", {"page": 1, "page_size": 5})
    assert str(err.value).startswith(message)
    assert sleeps == []
    assert "bad-S3cret" not in str(err.value) and "forged" not in str(err.value)
    api.close()


def test_renshi_from_yaml_with_a_cookie_session_and_wrapped_offset_pages(
    server: tuple[str, Server], tmp_path: Path
) -> None:
    base, state = server
    state.redirect_unauthenticated = True
    state.staff = [
        {
            "id": f"T{i:04d}",
            "name": f"教师{i}",
            "type": "teacher",
            "department_id": "D01",
            "title": "讲师",
            "dual_qualified": "是",
            "training_hours": 48,
            "enterprise_practice_days": 150,
            "hire_year": 2024 if i == 2 else 2010,
            "dingtalk_user_id": f"ding{i}",
            "email": f"t{i}@college.edu.cn",
            "updated_at": "2026-09-01T08:00:00+08:00",
        }
        for i in range(1, 6)
    ]
    path = tmp_path / "renshi.yaml"
    path.write_text(
        f"""
connector: renshi
schedule: {{every: 1h}}
source:
  kind: http
  base_url: {base}
  auth: {{kind: cookie_session, login_path: /login, username: {USER},
          password_env: HR_PW, username_field: user, password_field: pass}}
options:
  year: "2026"
  hours_per_training_day: 8
  endpoints:
    school: {{path: /hr/school}}
    staff:
      path: /hr/staff
      pagination: {{kind: offset, limit: 2, items: data.list, total: data.total}}
""",
        encoding="utf-8",
    )
    connector = build_connector(load_config(path, environ={"HR_PW": PASSWORD}))
    delivery = ListDelivery()
    with connector:
        report = run_connector(connector, delivery, MemoryBookmarks())
    assert report.ok, report.errors
    teachers = {e.id: e for e in delivery.of(Entity) if e.kind.value == "teacher"}
    assert set(teachers) == {f"T{i:04d}" for i in range(1, 6)}
    t1 = teachers["T0001"]
    assert t1.attributes["dual_qualified"] is True
    assert (t1.attributes["training_hours"], t1.attributes["enterprise_practice_days"]) == (48, 150)
    persons = {p.id: p for p in delivery.of(Person)}
    assert persons["T0001"].dingtalk_user_id == "ding1"
    assert persons["T0001"].email == "t1@college.edu.cn"
    obs = {(o.entity_id, o.metric): o.value for o in delivery.of(Observation)}
    assert obs["T0001", "teacher.training_days"] == 6.0  # 48 学时 ÷ 8
    assert obs["T0001", "teacher.enterprise_practice"] == 5.0  # 150 days ÷ 30
    assert obs["T0002", "teacher.enterprise_practice"] == 12.5  # hired 2 years ago: × 5 ÷ 2
    assert state.logins["session"] == 1
