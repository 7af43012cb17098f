"""The pages people act on (Starlette + Jinja2 with autoescaping; Chinese, phone first).

    GET  /my/warnings                          我的预警: everything the person holds or reviews
    GET  /warnings/<id>                        the warning, its measures, evidence, effect, and forms
    GET  /warnings/<id>/ack?p=&e=&t=           the same page from a signed 确认预警 link
    GET  /warnings/<id>/improvement?p=&e=&t=   … from a signed 登记改进措施 link
    POST /warnings/<id>/{ack,improvement,evidence,review}

Who is acting: behind the campus proxy, its authenticated-user header (``WebSettings``); otherwise
a signed link, valid only for its warning and action, only while its person still holds the
warning (reassignment and escalation move it), and not after the person's links were revoked.
Every POST also needs the form's CSRF token. Refusals: bad link or identity → 403, a status that
does not allow the action → 409, bad input → 400 with the form again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from zhengai.ingest.privacy import mask_text
from zhengai.warnings.improvements import ACTION_ZH, EvidenceError, add_evidence, allowed_actions, revoked_before
from zhengai.warnings.lifecycle import Acknowledge, LifecycleError, Review, StartImprovement, Status
from zhengai.warnings.links import InvalidLink, LinkParams, action_url, issued_at, verify
from zhengai.warnings.service import NotAllowed
from zhengai.web import forms as forms_web
from zhengai.web import views, workbench
from zhengai.web.portrait import routes as portrait_routes
from zhengai.web.security import CHINA, Guard, WebSettings, csrf_ok, csrf_token, proxy_user, same_site

log = logging.getLogger("zhengai.web")

__all__ = ["create_app"]

HERE = Path(__file__).resolve().parent
MAX_TEXT = 4000
MAX_EVIDENCE = 10
LINK_ACTIONS = {"ack": {"ack"}, "improvement": {"improvement", "evidence"}}  # what each link may do


class _Who:
    def __init__(self, person_id: str, via: str, link: LinkParams | None = None, action: str | None = None):
        self.person_id, self.via, self.link, self.action = person_id, via, link, action

    def may(self, action: str) -> bool:
        return self.via == "proxy" or action in LINK_ACTIONS.get(self.action or "", set())


class Pages:
    def __init__(self, service, secret: bytes, settings: WebSettings, clock: Callable[[], datetime], rules: Callable):
        self.service, self.store, self.secret, self.settings, self.clock = (
            service,
            service.store,
            secret,
            settings,
            clock,
        )
        self.rules = rules
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))

    # --- rendering ----------------------------------------------------------------------------
    def page(self, template: str, status: int = 200, **values) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(template).render(**values), status_code=status)

    def error(self, status: int, title: str, text: str) -> HTMLResponse:
        return self.page("message.html", status, title=title, text=text, ok=False)

    def name_of(self, person_id: str) -> str:
        person = self.service.directory().person(person_id)
        return person.name if person else person_id

    # --- identity -----------------------------------------------------------------------------
    def _proxy(self, request: Request) -> _Who | None:
        person = proxy_user(request.headers, request.client.host if request.client else None, self.settings)
        return _Who(person, "proxy") if person else None

    def _link(self, params, warning_id: int, action: str) -> _Who:
        link = LinkParams.from_query(params)
        verify(warning_id, link.person_id, action, link.expires_at, link.token, self.secret, now=self.clock())
        revoked = revoked_before(self.store, link.person_id)
        if revoked is not None and issued_at(link.expires_at) < revoked:
            raise InvalidLink("revoked")
        if action != "mine":
            row = self.store.read.warning(warning_id)
            if row is not None and not self.service.may(row, link.person_id)[0]:
                raise InvalidLink("not_holder")  # reassigned, or escalated past this person
        return _Who(link.person_id, "link", link, action)

    def who(self, request: Request, params, warning_id: int, action: str | None) -> _Who | HTMLResponse:
        proxied = self._proxy(request)
        if proxied is not None:
            return proxied
        if action is None:
            return self.error(
                403, "请先登录", "请通过学校统一身份认证登录后查看，或使用个人通知（工作通知、邮件）中的链接打开。"
            )
        try:
            return self._link({k: params.getlist(k) for k in params.keys()}, warning_id, action)
        except InvalidLink as exc:
            log.info("refused %s link for warning #%s: %s", action, warning_id, exc.reason)
            return self.error(403, "链接无效", exc.zh + "。如需处理该预警，请联系质量办。")

    def hidden(self, who: _Who) -> dict:
        out = {"csrf": csrf_token(self.secret, who.person_id, self.clock())}
        if who.link is not None:
            out |= {"p": who.link.person_id, "e": who.link.expires_at, "t": who.link.token}
        return out

    # --- pages --------------------------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        return RedirectResponse("/my/warnings", status_code=303)

    async def css(self, request: Request) -> Response:
        return Response((HERE / "static" / "zhengai.css").read_text(encoding="utf-8"), media_type="text/css")

    async def mine(self, request: Request) -> Response:
        from zhengai.warnings.mine import my_warnings

        has_link = "t" in request.query_params
        who = self.who(request, request.query_params, 0, "mine" if has_link else None)
        if isinstance(who, HTMLResponse):
            return who
        items = []
        for m in my_warnings(self.service, who.person_id):
            w = m.warning
            href: str | None = f"/warnings/{w.id}"
            if who.link is not None:  # reached by a personal link: each warning gets one for this person
                action = "ack" if m.actions[:1] == ["ack"] else "improvement" if "improvement" in m.actions else None
                href = (
                    action_url(
                        f"/warnings/{w.id}/{action}", w.id, who.person_id, action, int(who.link.expires_at), self.secret
                    )
                    if action
                    else None
                )
            items.append(
                dict(
                    id=w.id,
                    href=href,
                    rule=w.rule_name,
                    entity=views.entity_label(self.service.directory(), w),
                    status=m.status_zh,
                    band=w.band,
                    due=views.day(w.due_date),
                    role=m.role,
                    actions=m.actions_zh,
                    period=w.last_period,
                    measures=[mask_text(i.text) for i in m.measures],
                    evidence=[dict(url=e.url, href=views.safe_url(e.url)) for e in m.evidence],
                )
            )
        return self.page("mine.html", name=self.name_of(who.person_id), items=items, via=who.via)

    async def warning(self, request: Request) -> Response:
        wid = int(request.path_params["id"])
        action = request.path_params.get("action")
        who = self.who(request, request.query_params, wid, action)
        if isinstance(who, HTMLResponse):
            return who
        w = self.store.read.warning(wid)
        if w is None:
            return self.error(404, "预警不存在", f"没有编号为 W{wid} 的预警。")
        return self.show(w, who)

    def show(self, w, who: _Who, *, status: int = 200, error: str = "", form: dict | None = None) -> HTMLResponse:
        holder, assessor, quality_office = self.service.may(w, who.person_id)
        allowed = [
            a
            for a in allowed_actions(
                w.status,
                acknowledged=w.acknowledged_at is not None,
                holder=holder,
                assessor=assessor,
                quality_office=quality_office,
            )
            if who.may(a)
        ]
        default_due = (
            w.due_date.astimezone(CHINA).date()
            if w.due_date and w.due_date > self.clock()
            else (self.clock().astimezone(CHINA) + timedelta(days=14)).date()
        )
        store, directory = self.store, self.service.directory()
        return self.page(
            "warning.html",
            status,
            w=w,
            name=self.name_of(who.person_id),
            rows=views.details(store, self.rules(), directory, w),
            measures=views.measures(store, w.id),
            evidence=views.evidence(store, w.id),
            effects=views.effects(self.service, w.id),
            allowed=allowed,
            action_zh=ACTION_ZH,
            hidden=self.hidden(who),
            error=error,
            form=form or {},
            default_due=default_due.isoformat(),
            max_text=MAX_TEXT,
            via=who.via,
        )

    # --- actions ------------------------------------------------------------------------------
    async def act(self, request: Request) -> Response:
        wid, action = int(request.path_params["id"]), request.path_params["action"]
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self.error(400, "请求有误", "请通过页面上的按钮提交。")
        form = await request.form(max_files=0, max_fields=20)
        link_action = "improvement" if action == "evidence" else action
        who = self.who(request, form, wid, link_action if action not in ("review", "waive") else None)
        if isinstance(who, HTMLResponse):
            return who
        csrf = form.get("csrf")
        if not same_site(request.headers) or not csrf_ok(
            self.secret, who.person_id, csrf if isinstance(csrf, str) else None, self.clock()
        ):
            return self.error(403, "请求无效", "页面已过期或来源不明，请重新打开页面后再提交。")
        if not who.may(action):
            return self.error(403, "链接无效", "此链接不能执行该操作。")
        w = self.store.read.warning(wid)
        if w is None:
            return self.error(404, "预警不存在", f"没有编号为 W{wid} 的预警。")
        values = {k: str(form.get(k) or "") for k in ("note", "text", "due", "evidence", "reason")}
        try:
            done = getattr(self, f"_{action}")(w, who, values)
        except _Again as exc:
            return self.show(w, who, status=400, error=exc.text, form=values)
        except NotAllowed as exc:
            return self.error(403, "无权操作", str(exc).split(" (")[0])
        except LifecycleError as exc:
            fresh = self.store.read.warning(wid) or w
            return self.error(
                409,
                "无法执行",
                f"该预警当前状态为“{Status(fresh.status).zh}”，不能执行此操作（{str(exc).split(' (')[0]}）。",
            )
        log.info("warning #%s: %s by %s via %s", wid, action, who.person_id, who.via)
        return self.page("message.html", title=done[0], text=done[1], ok=True, wid=wid, via=who.via)

    def _ack(self, w, who, v):
        self.service.act(w.id, Acknowledge(who.person_id, self.clock(), v["note"].strip()[:500]))
        return "已确认", f"已确认预警 W{w.id}（{w.rule_name}）。请在改进期限内分析原因并登记改进措施。"

    @staticmethod
    def _urls(text: str) -> list[str]:
        urls = [line.strip() for line in text.splitlines() if line.strip()]
        if len(urls) > MAX_EVIDENCE:
            raise _Again(f"支撑材料链接最多 {MAX_EVIDENCE} 个。")
        for url in urls:
            if views.safe_url(url) is None or len(url) > 1000 or any(c.isspace() for c in url):
                raise _Again("支撑材料须为 http:// 或 https:// 开头的链接，每行一个。")
        return urls

    def _improvement(self, w, who, v):
        text, now = v["text"].strip(), self.clock()
        if not text:
            raise _Again("请填写改进措施。")
        if len(text) > MAX_TEXT:
            raise _Again(f"改进措施请控制在 {MAX_TEXT} 字以内。")
        try:
            day = datetime.strptime(v["due"].strip(), "%Y-%m-%d").date()
        except ValueError:
            raise _Again("请填写限期，格式为 年-月-日（如 2026-12-01）。") from None
        due = datetime.combine(day, time(23, 59, 59), tzinfo=CHINA)  # the end of that day, China time
        if due <= now:
            raise _Again("限期须晚于今天。")
        urls = self._urls(v["evidence"])
        try:
            self.service.act(w.id, StartImprovement(who.person_id, now, due, text), evidence=urls)
        except LifecycleError as exc:
            if "最长限期" in str(exc) or "链接" in str(exc):
                raise _Again(str(exc).split(" (")[0]) from None
            raise
        return (
            "已登记改进措施",
            f"已登记预警 W{w.id}（{w.rule_name}）的改进措施，限期 {day:%Y-%m-%d}。指标恢复后由质量办或上一级复评。",
        )

    def _evidence(self, w, who, v):
        urls = self._urls(v["evidence"])
        if not urls:
            raise _Again("请至少填写一个支撑材料链接。")
        if not self.service.may(w, who.person_id)[0]:
            raise NotAllowed("您不是该预警当前的负责人或督办人")
        try:
            add_evidence(self.store, w.id, urls, by=who.person_id, at=self.clock(), note=v["note"])
        except EvidenceError as exc:
            raise _Again(str(exc).split(" (")[0]) from None
        return "已补充支撑材料", f"已为预警 W{w.id} 补充 {len(urls)} 个支撑材料。"

    def _waive(self, w, who, v):
        from zhengai.warnings.lifecycle import Waive

        reason = v["reason"].strip()[:500]
        if len(reason) < 4:
            raise _Again("请写明免于登记改进措施的原因。")
        self.service.act(w.id, Waive(who.person_id, self.clock(), reason))
        return "已免于登记改进措施", f"预警 W{w.id} 已记录免于登记改进措施的原因，指标恢复后可复评关闭。"

    def _review(self, w, who, v):
        from zhengai.warnings.improvements import effects_of

        self.service.act(w.id, Review(who.person_id, self.clock(), v["note"].strip()[:500]))
        effects = effects_of(self.store, w.id)[-1:]
        return "复评通过", f"预警 W{w.id} 已复评关闭。" + (
            f"改进效果：{mask_text(effects[0].summary)}" if effects else ""
        )


class _Again(Exception):
    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


def create_app(
    service,
    rules: Callable,
    secret: bytes | str,
    *,
    settings: WebSettings | None = None,
    clock: Callable[[], datetime] | None = None,
    forms=None,
    forms_delivery=None,
):
    """The ASGI app over a ``WarningService``; ``rules`` returns the current rulebook; ``clock``
    gives ``now`` (tests control it)."""
    if not secret:
        raise ValueError("the web pages need a link secret ($ZHENGAI_LINK_SECRET or $ZHENGAI_LINK_SECRET_FILE)")
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    settings = settings or WebSettings()
    pages = Pages(service, key, settings, clock or (lambda: datetime.now(UTC)), rules)
    routes = [
        Route("/", pages.home),
        Route("/static/zhengai.css", pages.css),
        Route("/my/warnings", pages.mine),
        Route("/warnings/{id:int}", pages.warning),
        Route("/warnings/{id:int}/{action:str}", pages.warning, methods=["GET"]),
        Route("/warnings/{id:int}/{action:str}", pages.act, methods=["POST"]),
        *portrait_routes(pages),  # 画像 (zhengai/web/portrait.py)
    ]
    routes += forms_web.routes(pages, forms, forms_delivery)  # 填报 (zhengai.web.forms)
    routes += workbench.routes(pages)  # 质量办: /rules/backtest
    from zhengai.web.diagnosis import routes as diagnosis_routes  # the 自主诊断 form (/diagnosis/self)

    routes += diagnosis_routes(pages)

    async def not_found(request, exc):
        return pages.error(
            exc.status_code, "页面不存在" if exc.status_code == 404 else "不支持的请求", "请使用通知中的链接打开。"
        )

    async def failed(request, exc):  # never show a traceback (or anything in it) to the person
        log.exception("web request failed")
        return pages.error(500, "系统错误", "处理时出现错误，请稍后再试，或联系质量办。")

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found, 500: failed})

    async def unknown_action(request: Request) -> Response:  # an action name we do not serve
        return pages.error(404, "页面不存在", "请使用通知中的链接打开。")

    app.state.pages = pages
    return Guard(_ActionFilter(app, unknown_action), settings)


class _ActionFilter:
    """Only the known action names reach the pages (anything else is a 404 before identity)."""

    KNOWN = {"ack", "improvement", "evidence", "review", "waive"}

    def __init__(self, app, fallback):
        self.app, self.fallback = app, fallback

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            parts = scope["path"].strip("/").split("/")
            if len(parts) == 3 and parts[0] == "warnings" and parts[2] not in self.KNOWN:
                response = await self.fallback(Request(scope, receive))
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)
