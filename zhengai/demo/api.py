"""The demo college's HR (人事) and teaching-evaluation (评教) JSON API, served on loopback.

Endpoints (the contract is ``SOURCES.md``)::

    POST /api/login              {"username", "password"} → {"token"}
    GET  /api/school             school, 职能部门 heads, quality office
    GET  /api/hr/staff           ?page=1&page_size=100 → {"items", "page", "page_size", "total"}
    GET  /api/eval/sections      ?term=…&limit=200&cursor=… → {"items", "next_cursor"}

Every GET needs ``Authorization: Bearer <token>`` (401 otherwise). It behaves like a campus system
a connector would meet: page pagination on one endpoint, opaque cursors on the other.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["ApiData", "DemoApi"]

_MAX_PAGE = 500


@dataclass(frozen=True)
class ApiData:
    """What the API serves: plain JSON-ready values, so the server never reaches into the generator."""

    school: dict[str, Any]
    staff: tuple[dict[str, Any], ...]
    sections: dict[str, tuple[dict[str, Any], ...]]  # term → evaluation sections
    username: str = "zhengai-demo"
    password: str = field(default="demo-2026-sfzy", repr=False)


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _int_arg(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name, [str(default)])[0]
    try:
        value = int(raw)
    except ValueError:
        raise _HttpError(400, f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise _HttpError(400, f"{name} must be between {low} and {high}, got {value}")
    return value


def _encode_cursor(term: str, offset: int) -> str:
    raw = json.dumps({"t": term, "o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, term: str) -> int:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset, cursor_term = int(state["o"]), state["t"]
    except (ValueError, KeyError, TypeError):
        raise _HttpError(400, "cursor is not one this server issued") from None
    if cursor_term != term or offset < 0:
        raise _HttpError(400, "cursor belongs to another query")
    return offset


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as clients with connection pools expect

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 — stdlib signature
        pass  # a demo run prints warnings, not an access log

    def _send(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="sfzy"')
        self.end_headers()
        self.wfile.write(payload)

    def _dispatch(self, method: str) -> None:
        try:
            url = urlsplit(self.path)
            if method == "POST" and url.path == "/api/login":
                self._send(200, self._login())
                return
            route = {
                "/api/school": self._school,
                "/api/hr/staff": self._staff,
                "/api/eval/sections": self._sections,
            }.get(url.path)
            if route is None or method != "GET":
                raise _HttpError(404 if route is None else 405, f"no route {method} {url.path}")
            self._authorise()
            self._send(200, route(parse_qs(url.query)))
        except _HttpError as exc:
            self._send(exc.status, {"error": str(exc)})

    def do_GET(self) -> None:  # noqa: N802 — stdlib hook name
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _login(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            username, password = body["username"], body["password"]
        except (ValueError, KeyError, TypeError):
            raise _HttpError(400, 'login needs a JSON body {"username": …, "password": …}') from None
        data = self.server.data
        if not (
            secrets.compare_digest(str(username), data.username)
            and secrets.compare_digest(str(password), data.password)
        ):
            raise _HttpError(401, "wrong username or password")
        return {"token": self.server.issue_token()}

    def _authorise(self) -> None:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not self.server.token_valid(token.strip()):
            raise _HttpError(401, "missing or invalid bearer token: POST /api/login first")

    def _school(self, query: dict[str, list[str]]) -> dict[str, Any]:
        return self.server.data.school

    def _staff(self, query: dict[str, list[str]]) -> dict[str, Any]:
        page = _int_arg(query, "page", 1, 1, 10**6)
        size = _int_arg(query, "page_size", 100, 1, _MAX_PAGE)
        staff = self.server.data.staff
        items = list(staff[(page - 1) * size : page * size])
        return {"items": items, "page": page, "page_size": size, "total": len(staff)}

    def _sections(self, query: dict[str, list[str]]) -> dict[str, Any]:
        term = query.get("term", [""])[0]
        if not term:
            raise _HttpError(400, "term is required, e.g. term=2026-2027-1")
        limit = _int_arg(query, "limit", 200, 1, _MAX_PAGE)
        cursor = query.get("cursor", [""])[0]
        offset = _decode_cursor(cursor, term) if cursor else 0
        sections = self.server.data.sections.get(term, ())
        end = offset + limit
        return {
            "items": list(sections[offset:end]),
            "next_cursor": _encode_cursor(term, end) if end < len(sections) else None,
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not hold up close()

    def __init__(self, data: ApiData) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.data = data
        self._tokens: set[str] = set()
        self._lock = threading.Lock()

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
        return token

    def token_valid(self, token: str) -> bool:
        with self._lock:
            return token in self._tokens


class DemoApi:
    """Serves ``ApiData`` on ``127.0.0.1:<free port>`` from a daemon thread until ``close()``.

    >>> with DemoApi(college.api_data) as api:
    ...     httpx.post(f"{api.base_url}/api/login", json={"username": api.username, "password": api.password})
    """

    def __init__(self, data: ApiData) -> None:
        self._server = _Server(data)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host!s}:{port}"
        self.username = data.username
        self.password = data.password
        self._thread = threading.Thread(target=self._server.serve_forever, name="zhengai-demo-api", daemon=True)
        self._thread.start()
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> DemoApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DemoApi({self.base_url})"
