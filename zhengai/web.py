"""The action-link pages: a responsible person acknowledges a warning or records an improvement
(改进措施) from the link in a DingTalk/email notification, on their phone.

    GET  /warnings/<id>/ack?p=&e=&t=           确认预警: the warning, and a button
    POST /warnings/<id>/ack                     (form: p, e, t — the same signed link) → Acknowledge
    GET  /warnings/<id>/improvement?p=&e=&t=    登记改进措施: text, 限期, evidence links
    POST /warnings/<id>/improvement             → StartImprovement, with the evidence

The signed link (``warnings/links.py``) is the only credential: it names the warning, the person
and the action, and expires. The POST carries the same token as hidden fields, which is also the
CSRF defence (a forged form cannot know it). Invalid or expired link → 403; the warning's status
does not allow the action (e.g. already acknowledged) → 409. All output is HTML-escaped; pages
show no personal data beyond the person's own name, and student ids masked.

This module is the composition root: ``build_app`` wires store, rulebook, directory and service
like ``zhengai warnings`` does; ``serve`` runs it on wsgiref (one thread per request). Request
logs leave out query strings, so tokens do not end up in logs.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time as _time
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from socketserver import ThreadingMixIn
from typing import Callable, Iterable
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

__all__ = ["LinkApp", "build_app", "make_server_for", "serve"]

CHINA = ZoneInfo("Asia/Shanghai")
_PATH = re.compile(r"^/warnings/(\d{1,12})/(ack|improvement)/?$")
MAX_BODY = 64 * 1024
MAX_TEXT = 4000
MAX_EVIDENCE = 10
_STATUS_TEXT = {200: "200 OK", 400: "400 Bad Request", 403: "403 Forbidden", 404: "404 Not Found",
                405: "405 Method Not Allowed", 409: "409 Conflict", 413: "413 Payload Too Large",
                500: "500 Internal Server Error"}
_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),  # the page URL carries the token
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
]
_CSS = """body{font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;padding:16px;
max-width:640px;margin:auto;line-height:1.6;color:#222}h1{font-size:1.25em}dl{margin:0}dt{color:#666;font-size:.9em}
dd{margin:0 0 8px 0}button{font-size:1.05em;padding:10px 24px;border:0;border-radius:6px;background:#1677ff;color:#fff;width:100%}
textarea,input{font-size:1em;width:100%;box-sizing:border-box;padding:6px}label{display:block;margin:12px 0 4px}
.err{color:#b00020}.ok{color:#0a7a28}.muted{color:#666;font-size:.9em}"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


@dataclass
class _Response:
    status: int
    body: str


def _page(title: str, body: str) -> str:
    return ('<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{_e(title)} · 诊改平台</title><style>{_CSS}</style></head>'
            f'<body><h1>{_e(title)}</h1>{body}<p class="muted">诊改平台 · 预警处理</p></body></html>')


def _error(status: int, title: str, text: str) -> _Response:
    return _Response(status, _page(title, f'<p class="err">{_e(text)}</p>'))


class LinkApp:
    """The WSGI application. ``service`` is a ``WarningService``; ``rules`` and ``directory``
    return the current rulebook and directory; ``clock`` gives ``now`` (tests control it)."""

    def __init__(self, service, store, rules: Callable, directory: Callable, secret: bytes | str, *,
                 clock: Callable[[], datetime] | None = None):
        if not secret:
            raise ValueError("the web pages need a link secret ($ZHENGAI_LINK_SECRET or $ZHENGAI_LINK_SECRET_FILE)")
        self.service = service
        self.store = store
        self.rules = rules
        self.directory = directory
        self._secret = secret
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    # --- WSGI -----------------------------------------------------------------------------
    def __call__(self, environ, start_response) -> Iterable[bytes]:
        try:
            response = self._dispatch(environ)
        except Exception:  # never show a traceback (or anything in it) to the person
            log.exception("web request failed")
            response = _error(500, "系统错误", "处理时出现错误，请稍后再试，或联系质量办。")
        data = response.body.encode("utf-8")
        headers = list(_HEADERS) + [("Content-Length", str(len(data)))]
        if response.status == 405:
            headers.append(("Allow", "GET, POST"))
        start_response(_STATUS_TEXT[response.status], headers)
        return [data]

    def _dispatch(self, environ) -> _Response:
        m = _PATH.match(environ.get("PATH_INFO", ""))
        if not m:
            return _error(404, "页面不存在", "请使用通知中的链接打开。")
        warning_id, action = int(m.group(1)), m.group(2)
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method == "GET":
            params = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        elif method == "POST":
            if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
                return _error(400, "请求有误", "请通过页面上的按钮提交。")
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                return _error(413, "内容过长", "提交的内容过长，请精简后再试。")
            raw = environ["wsgi.input"].read(length).decode("utf-8", errors="replace")
            params = parse_qs(raw, keep_blank_values=True)  # only the body: the token must be in the form
        else:
            return _error(405, "不支持的请求", "请使用通知中的链接打开。")

        from zhengai.warnings.links import InvalidLink, LinkParams, verify

        now = self.clock()
        try:
            link = LinkParams.from_query(params)
            verify(warning_id, link.person_id, action, link.expires_at, link.token, self._secret, now=now)
        except InvalidLink as exc:
            log.info("rejected %s link for warning #%s: %s", action, warning_id, exc.reason)
            return _error(403, "链接无效", exc.zh + "。如需处理该预警，请联系质量办。")
        warning = self.store.warning(warning_id)
        if warning is None:
            return _error(404, "预警不存在", f"没有编号为 W{warning_id} 的预警。")
        if action == "ack":
            return self._ack_form(warning, link) if method == "GET" else self._ack(warning, link, params, now)
        return self._improve_form(warning, link) if method == "GET" else self._improve(warning, link, params, now)

    # --- what the pages show --------------------------------------------------------------
    def _person_name(self, person_id: str) -> str:
        person = self.directory().person(person_id)
        return person.name if person else person_id

    def _details(self, w) -> str:
        from zhengai.ingest.privacy import mask_student_id
        from zhengai.ingest.records import Band, EntityKind
        from zhengai.warnings.lifecycle import Status
        from zhengai.warnings.messages import format_value

        rule = self.rules().rules.get(w.rule_id)
        unit = rule.unit if rule else ""
        entity = self.directory().get(w.entity_id)
        student = (entity.kind is EntityKind.student) if entity else w.level == "student"
        ref = mask_student_id(w.entity_id) if student else w.entity_id
        kind_zh = entity.kind.zh if entity else ""
        name = entity.name if entity else ref
        th = self._thresholds(w)
        target = th.get("target") if th else (rule.target if rule else None)
        standard = th.get("standard") if th else (rule.standard if rule else None)
        warn = th.get("warning") if th else (rule.warning if rule else None)
        try:
            band = Band(w.band).zh
        except ValueError:
            band = w.band
        try:
            status = Status(w.status).zh
        except ValueError:
            status = w.status
        due = f"{w.due_date.astimezone(CHINA):%Y-%m-%d}" if w.due_date else "—"
        rows = [
            ("预警编号", f"W{w.id}"),
            ("指标", w.rule_name),
            ("对象", f"{kind_zh} {name}（{ref}）".strip()),
            ("当前值", f"{format_value(w.value, unit)}（统计周期 {w.last_period}）"),
            ("阈值", f"目标值 {format_value(target, unit)} · 标准值 {format_value(standard, unit)} · 预警值 {format_value(warn, unit)}"),
            ("级别 / 状态", f"{band} · {status}"),
            ("改进期限", due),
        ]
        from zhengai.ingest.privacy import mask_text

        return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(mask_text(str(v)))}</dd>" for k, v in rows) + "</dl>"

    def _thresholds(self, w) -> dict | None:
        """The thresholds of the warning's latest verdict (after overrides), if stored."""
        from sqlalchemy import select

        from zhengai.warnings.schema import VerdictRow

        with self.store.session() as s:
            row = s.scalars(select(VerdictRow.thresholds).where(
                VerdictRow.rule_id == w.rule_id, VerdictRow.entity_id == w.entity_id, VerdictRow.period == w.last_period,
            ).order_by(VerdictRow.id.desc()).limit(1)).first()
        return row if isinstance(row, dict) else None

    @staticmethod
    def _hidden(link) -> str:
        return "".join(f'<input type="hidden" name="{k}" value="{_e(v)}">'
                       for k, v in (("p", link.person_id), ("e", link.expires_at), ("t", link.token)))

    def _greeting(self, link) -> str:
        return f"<p>{_e(self._person_name(link.person_id))}，您好！</p>"

    def _ack_form(self, w, link) -> _Response:
        from zhengai.warnings.lifecycle import Status

        body = self._greeting(link) + self._details(w)
        if w.status in (Status.open.value, Status.escalated.value):
            body += (f'<form method="post" action="/warnings/{w.id}/ack">{self._hidden(link)}'
                     '<label for="note">备注（可选）</label><textarea id="note" name="note" rows="2" maxlength="500"></textarea>'
                     '<p><button type="submit">确认预警</button></p></form>'
                     '<p class="muted">确认后请在改进期限内分析原因并登记改进措施。</p>')
        else:
            body += '<p class="muted">该预警当前状态无需确认。</p>'
        return _Response(200, _page("确认预警", body))

    def _act(self, w, command, evidence=()) -> _Response | None:
        from zhengai.warnings.lifecycle import LifecycleError

        try:
            self.service.act(w.id, command, evidence=evidence)
        except LifecycleError:
            fresh = self.store.warning(w.id) or w
            from zhengai.warnings.lifecycle import Status

            try:
                status = Status(fresh.status).zh
            except ValueError:
                status = fresh.status
            return _error(409, "无法执行", f"该预警当前状态为“{status}”，不能执行此操作（可能已处理过）。")
        except KeyError:
            return _error(404, "预警不存在", f"没有编号为 W{w.id} 的预警。")
        return None

    def _ack(self, w, link, form, now: datetime) -> _Response:
        from zhengai.warnings.lifecycle import Acknowledge

        note = (form.get("note") or [""])[0].strip()[:500]
        failed = self._act(w, Acknowledge(link.person_id, now, note))
        if failed:
            return failed
        log.info("warning #%s acknowledged via link by %s", w.id, link.person_id)
        body = (f'<p class="ok">已确认预警 W{w.id}（{_e(w.rule_name)}）。</p>'
                f'<p>请在改进期限内分析原因并登记改进措施。</p>')
        return _Response(200, _page("已确认", body))

    def _improve_form(self, w, link, *, error: str = "", text: str = "", due: str = "", evidence: str = "",
                      status: int = 200) -> _Response:
        default_due = (w.due_date.astimezone(CHINA).date() if w.due_date
                       else (self.clock().astimezone(CHINA) + timedelta(days=14)).date())
        body = self._greeting(link) + self._details(w)
        if error:
            body += f'<p class="err">{_e(error)}</p>'
        body += (f'<form method="post" action="/warnings/{w.id}/improvement">{self._hidden(link)}'
                 '<label for="text">改进措施（原因分析与具体措施）</label>'
                 f'<textarea id="text" name="text" rows="6" maxlength="{MAX_TEXT}" required>{_e(text)}</textarea>'
                 '<label for="due">限期（改进完成日期）</label>'
                 f'<input id="due" name="due" type="date" required value="{_e(due or default_due.isoformat())}">'
                 '<label for="evidence">佐证材料链接（每行一个，可选）</label>'
                 f'<textarea id="evidence" name="evidence" rows="3">{_e(evidence)}</textarea>'
                 '<p><button type="submit">提交改进措施</button></p></form>')
        return _Response(status, _page("登记改进措施", body))

    def _improve(self, w, link, form, now: datetime) -> _Response:
        from zhengai.warnings.lifecycle import StartImprovement

        def field(name: str) -> str:
            return (form.get(name) or [""])[0]

        text, due_text, evidence_text = field("text").strip(), field("due").strip(), field("evidence")

        def again(error: str) -> _Response:
            return self._improve_form(w, link, error=error, text=text, due=due_text, evidence=evidence_text, status=400)

        if not text:
            return again("请填写改进措施。")
        if len(text) > MAX_TEXT:
            return again(f"改进措施请控制在 {MAX_TEXT} 字以内。")
        try:
            day = datetime.strptime(due_text, "%Y-%m-%d").date()
        except ValueError:
            return again("请填写限期，格式为 年-月-日（如 2026-12-01）。")
        due = datetime.combine(day, time(23, 59, 59), tzinfo=CHINA)  # the end of that day, China time
        if due <= now:
            return again("限期须晚于今天。")
        evidence = [line.strip() for line in evidence_text.splitlines() if line.strip()]
        if len(evidence) > MAX_EVIDENCE:
            return again(f"佐证材料链接最多 {MAX_EVIDENCE} 个。")
        for url in evidence:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 1000 or any(c.isspace() for c in url):
                return again("佐证材料须为 http:// 或 https:// 开头的链接，每行一个。")
        failed = self._act(w, StartImprovement(link.person_id, now, due, text), evidence)
        if failed:
            return failed
        log.info("improvement recorded via link on warning #%s by %s", w.id, link.person_id)
        body = (f'<p class="ok">已登记预警 W{w.id}（{_e(w.rule_name)}）的改进措施，限期 {day:%Y-%m-%d}。</p>'
                '<p>到期前请完成改进；指标恢复后由质量办复评。</p>')
        return _Response(200, _page("已登记改进措施", body))


# --- composition root and server -------------------------------------------------------------


class _CachedDirectory:
    """The stored directory, re-read at most every ``ttl`` seconds (a long-running server sees
    directory changes without reading it on every call)."""

    def __init__(self, store, ttl: float = 60.0):
        self.store, self.ttl = store, ttl
        self._value, self._at = None, 0.0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            if self._value is None or _time.monotonic() - self._at > self.ttl:
                self._value, self._at = self.store.load_directory(), _time.monotonic()
            return self._value


def build_app(store_url: str, *, rules_folder=None, secret: bytes | str | None = None,
              channels: tuple[str, ...] = ("console", "file")) -> LinkApp:
    """The app over a store, like ``zhengai warnings`` builds its service. ``secret`` defaults to
    the environment (``$ZHENGAI_LINK_SECRET`` / ``$ZHENGAI_LINK_SECRET_FILE``)."""
    from zhengai.rules.loader import load_rulebook
    from zhengai.warnings.links import load_secret
    from zhengai.warnings.service import WarningService
    from zhengai.warnings.store import WarningStore

    secret = secret or load_secret()
    if not secret:
        raise ValueError("set $ZHENGAI_LINK_SECRET or $ZHENGAI_LINK_SECRET_FILE: the web pages only honour signed links")
    store = WarningStore(store_url)
    rules = load_rulebook(rules_folder)
    directory = _CachedDirectory(store)
    service = WarningService(store, lambda: rules, directory, channels=channels)
    return LinkApp(service, store, lambda: rules, directory, secret)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 — http.server's signature
        pass

    def log_request(self, code="-", size="-") -> None:
        # the path only: the query string carries the signed token
        log.info("%s %s %s", self.command, urlsplit(self.path).path, code)


def make_server_for(app, host: str = "127.0.0.1", port: int = 8080) -> WSGIServer:
    """A threaded wsgiref server for ``app`` (``port`` 0: a free port, see ``server_port``)."""
    return make_server(host, port, app, server_class=_Server, handler_class=_Handler)


def serve(app, host: str = "127.0.0.1", port: int = 8080) -> None:
    with make_server_for(app, host, port) as server:
        log.info("serving action links on http://%s:%s/warnings/<id>/{ack,improvement}", host, server.server_port)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
