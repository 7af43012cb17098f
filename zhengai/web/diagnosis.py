"""The 自主诊断 form: an owner writes their monthly 自我诊断意见 (原因分析 and further opinion) per
entity and 诊断要素, from the personal link in the monthly digest or behind the campus proxy.

    GET  /diagnosis/self?period=2026-11[&p=&e=&t=]   their indicators and one form per 诊断要素
    POST /diagnosis/self                              saves what was written (``self_diagnoses``)

Only pairs (entity, 诊断要素) the person owns this month are accepted; each text is at most
``MAX_TEXT`` characters. The 附件4 report quotes what is saved.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from zhengai.ingest.plausibility import period_kind
from zhengai.report.diagnosis import FORM_PATH, owned_indicators
from zhengai.rules.diagnosis import load_catalog
from zhengai.warnings.diagnosis_schema import SelfDiagnosisRow
from zhengai.web.security import csrf_ok, same_site

__all__ = ["routes", "MAX_TEXT"]

log = logging.getLogger("zhengai.web")
MAX_TEXT = 2000


def _period(value: str | None) -> str | None:
    try:
        return value if value and period_kind(value) == "month" else None
    except ValueError:
        return None


class DiagnosisPages:
    def __init__(self, pages):
        self.pages = pages

    def _who(self, request: Request, params):
        return self.pages.who(request, params, 0, "diagnose" if params.get("t") else None)

    def _forms(self, person_id: str, period: str) -> list[dict]:
        p = self.pages
        catalog = load_catalog()
        owned = owned_indicators(p.store, p.rules(), period, as_of=p.clock(), person_id=person_id).get(person_id, {})
        directory = p.service.directory()
        with p.store.session() as s:
            written = {
                (d.entity_id, d.element_code): d
                for d in s.scalars(
                    select(SelfDiagnosisRow)
                    .where(SelfDiagnosisRow.period == period, SelfDiagnosisRow.author_id == person_id)
                    .order_by(SelfDiagnosisRow.written_at, SelfDiagnosisRow.id)
                )
            }
        out = []
        for eid, items in owned.items():
            e = directory.get(eid)
            by_code: dict[str, list[str]] = defaultdict(list)
            for i in items:
                if i.element_code:
                    by_code[i.element_code].append(i.line.removeprefix("- "))
            for code, lines in sorted(by_code.items()):
                el = catalog.element(code)
                d = written.get((eid, code))
                out.append(dict(entity_id=eid, entity=f"{e.name}（{e.kind.zh}）" if e else eid, code=code,
                                element=el.label if el else code, lines=lines, cause=d.cause if d else "",
                                opinion=d.opinion if d else ""))  # fmt: skip
        return out

    async def show(self, request: Request) -> Response:
        who = self._who(request, request.query_params)
        if isinstance(who, HTMLResponse):
            return who
        period = _period(request.query_params.get("period"))
        if period is None:
            return self.pages.error(400, "请求有误", "请使用月度自主诊断通知中的链接打开（缺少或无效的月份）。")
        return self._page(who, period)

    def _page(self, who, period: str, *, status: int = 200, error: str = "", saved: int | None = None) -> Response:
        p = self.pages
        values = dict(name=p.name_of(who.person_id), period=period, forms=self._forms(who.person_id, period),
                      hidden=p.hidden(who), error=error, saved=saved, via=who.via, max_text=MAX_TEXT)  # fmt: skip
        return p.page("diagnosis.html", status, title=f"{period} 自主诊断", **values)

    async def save(self, request: Request) -> Response:
        p = self.pages
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return p.error(400, "请求有误", "请通过页面上的按钮提交。")
        form = await request.form(max_files=0, max_fields=400)
        who = self._who(request, form)
        if isinstance(who, HTMLResponse):
            return who
        if not same_site(request.headers) or not csrf_ok(
            p.secret, who.person_id, str(form.get("csrf") or ""), p.clock()
        ):
            return p.error(403, "请求无效", "页面已过期或来源不明，请重新打开页面后再提交。")
        period = _period(str(form.get("period") or ""))
        if period is None:
            return p.error(400, "请求有误", "缺少或无效的月份。")
        allowed = {(f["entity_id"], f["code"]) for f in self._forms(who.person_id, period)}
        rows = []
        for key in form.keys():
            if not key.startswith("cause:"):
                continue
            _, eid, code = key.split(":", 2) if key.count(":") >= 2 else (None, "", "")
            if (eid, code) not in allowed:
                return self._page(who, period, status=400, error="表单中有不属于您负责范围的对象，未保存。")
            cause = str(form.get(key) or "").strip()
            opinion = str(form.get(f"opinion:{eid}:{code}") or "").strip()
            if len(cause) > MAX_TEXT or len(opinion) > MAX_TEXT:
                return self._page(who, period, status=400, error=f"每项内容不超过 {MAX_TEXT} 字，未保存。")
            if cause or opinion:
                rows.append(SelfDiagnosisRow(entity_id=eid, element_code=code, period=period,
                                             author_id=who.person_id, cause=cause, opinion=opinion,
                                             written_at=p.clock()))  # fmt: skip
        with p.store.session() as s, s.begin():
            s.add_all(rows)
        log.info("self-diagnosis %s: %d entries by %s via %s", period, len(rows), who.person_id, who.via)
        return self._page(who, period, saved=len(rows))


def routes(pages) -> list[Route]:
    d = DiagnosisPages(pages)
    return [Route(FORM_PATH, d.show, methods=["GET"]), Route(FORM_PATH, d.save, methods=["POST"])]
