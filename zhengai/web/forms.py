"""The 填报 pages (behind the campus proxy: the person is the proxy's authenticated user).

    GET  /forms                      the forms this person's offices fill, recent submissions, late ones
    GET  /forms/template/<form>      a template for the current period, generated from the rulebook
    POST /forms/upload               a filled workbook (multipart) → accepted / partial / refused, errors located
    POST /forms/enter                the online form: a handful of values for one form
    POST /forms/incident             register one 质量事故

Who may: the head of an office (the directory's ``office:<name>`` on the school) submits for that
office; 质量办 for every office. Every POST needs the CSRF token and a same-site request. Values go
through ``zhengai.forms.Intake`` (audited, delivered as observations), never into the store directly.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from zhengai.forms import Intake
from zhengai.forms.incidents import CATEGORIES, GRADES, Incident, check
from zhengai.forms.sheets import WorkbookError, open_workbook
from zhengai.forms.spec import FormsConfig, FormSpec, load_forms, period_end
from zhengai.forms.templates import write_form
from zhengai.forms.values import check_value
from zhengai.ingest.records import EntityKind, Role
from zhengai.ingest.units import CST, term_of
from zhengai.warnings.forms_schema import FormSubmissionRow
from zhengai.web.security import csrf_ok, csrf_token, same_site

__all__ = ["routes", "current_period"]

log = logging.getLogger("zhengai.web")
MAX_ONLINE = 40  # values on one online form: more belongs in a template
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def current_period(cycle: str, now: datetime) -> str:
    local = now.astimezone(CST)
    return {
        "year": str(local.year),
        "term": term_of(now),
        "month": f"{local:%Y-%m}",
        "day": local.date().isoformat(),
    }.get(cycle, str(local.year))


class FormPages:
    def __init__(self, pages, config: FormsConfig | None, delivery):
        self.pages, self._config, self._delivery = pages, config, delivery

    @property
    def config(self) -> FormsConfig:
        if self._config is None:
            self._config = load_forms(rules=self.pages.rules())
        return self._config

    def intake(self) -> Intake:
        if self._delivery is None:
            from zhengai.forms.delivery import open_delivery

            self._delivery = open_delivery(self.pages.store, self.pages.rules(), clock=self.pages.clock)
        return Intake(
            self.pages.store,
            self._delivery,
            self.config,
            self.pages.rules(),
            directory=self.pages.service.directory,
            clock=self.pages.clock,
        )

    # --- who --------------------------------------------------------------------------------
    def offices(self, person_id: str) -> set[str]:
        directory = self.pages.service.directory()
        school = directory.school()
        if school is None:
            return set()
        qo = directory.responsible(school.id, Role.quality_office.value)
        every = {f.office for f in self.config.forms} | {self.config.tasks.office, self.config.incidents.office}
        if qo is not None and qo[0].id == person_id:
            return every
        return {o for o in every if (h := directory.responsible(school.id, f"office:{o}")) and h[0].id == person_id}

    def person(self, request: Request) -> str | None:
        who = self.pages._proxy(request)
        return who.person_id if who else None

    def refuse(self) -> HTMLResponse:
        return self.pages.error(403, "请先登录", "填报页面须通过学校统一身份认证登录后使用。")

    async def posted(self, request: Request, **limits):
        person = self.person(request)
        if person is None:
            return None, None, self.refuse()
        form = await request.form(**limits)
        if not same_site(request.headers) or not csrf_ok(
            self.pages.secret, person, str(form.get("csrf") or ""), self.pages.clock()
        ):
            return None, None, self.pages.error(403, "请求无效", "页面已过期或来源不明，请重新打开页面后再提交。")
        return person, form, None

    # --- pages ------------------------------------------------------------------------------
    def _entities(self, form: FormSpec):
        kind = EntityKind(self.config.level(form, self.pages.rules()).value)
        return sorted((e.id, e.name) for e in self.pages.service.directory().of_kind(kind))

    def show(self, person: str, *, status: int = 200, result=None, errors=(), values=None) -> HTMLResponse:
        offices, rules, now = self.offices(person), self.pages.rules(), self.pages.clock()
        forms = []
        for f in self.config.forms:
            if f.office not in offices:
                continue
            period = current_period(rules.rules[f.metrics[0]].cycle, now)
            entities = self._entities(f)
            rows = [
                dict(name=f"v:{m}:{eid}", label=f"{rules.rules[m].name} · {ename}", unit=rules.rules[m].unit)
                for m in f.metrics
                for eid, ename in entities
            ][:MAX_ONLINE]
            forms.append(dict(id=f.id, name=f.name, office=f.office, period=period, rows=rows))
        with self.pages.store.session() as s:
            recent = s.scalars(
                select(FormSubmissionRow)
                .where(FormSubmissionRow.office.in_(offices or {"-"}))
                .order_by(FormSubmissionRow.id.desc())
                .limit(10)
            ).all()
        return self.pages.page(
            "forms.html",
            status,
            name=self.pages.name_of(person),
            forms=forms,
            offices=sorted(offices),
            incidents=self.config.incidents.office in offices,
            categories=CATEGORIES,
            grades=GRADES,
            csrf=csrf_token(self.pages.secret, person, now),
            result=result,
            errors=list(errors),
            values=values or {},
            recent=[
                dict(
                    file=r.file_name or "在线填报",
                    status=r.status,
                    accepted=r.accepted,
                    rejected=r.rejected,
                    at=r.submitted_at.astimezone(CST).strftime("%Y-%m-%d %H:%M"),
                    by=r.submitted_by,
                )
                for r in recent
            ],
        )

    async def index(self, request: Request) -> Response:
        person = self.person(request)
        return self.show(person) if person else self.refuse()

    async def template(self, request: Request) -> Response:
        person = self.person(request)
        if person is None:
            return self.refuse()
        try:
            form = self.config.form(request.path_params["form"])
        except KeyError:
            return self.pages.error(404, "没有该填报表", "请从填报页面下载模板。")
        if form.office not in self.offices(person):
            return self.pages.error(403, "无权下载", f"该表由{form.office}填报。")
        rules = self.pages.rules()
        period = current_period(rules.rules[form.metrics[0]].cycle, self.pages.clock())
        from datetime import timedelta

        with tempfile.TemporaryDirectory() as tmp:
            path = write_form(
                form,
                rules,
                period,
                self._entities(form),
                period_end(period) + timedelta(days=form.due_days),
                Path(tmp) / "t.xlsx",
            )
            data = path.read_bytes()
        name = f"{form.id}-{period}.xlsx"
        return Response(data, media_type=XLSX, headers={"content-disposition": f'attachment; filename="{name}"'})

    async def upload(self, request: Request) -> Response:
        person, form, refused = await self.posted(request, max_files=1, max_fields=5)
        if refused:
            return refused
        file = form.get("file")
        if file is None or isinstance(file, str) or not file.filename:
            return self.show(person, status=400, errors=["请选择要上传的 Excel 文件（.xlsx）。"])
        data, name = await file.read(), Path(file.filename).name
        try:
            _, meta = open_workbook(data, name)
        except WorkbookError as exc:
            meta = {}
            log.info("upload %s unreadable: %s", name, exc)
        office = meta.get("office")
        if office and office not in self.offices(person):
            return self.show(person, status=403, errors=[f"该表由{office}填报，您不能代为提交。"])
        out = self.intake().submit(data, name, by=person, via="upload")
        log.info("forms upload by %s: %s %s", person, name, out.status)
        return self.show(person, status=200 if out.status != "refused" else 400, result=out.summary, errors=out.errors)

    async def enter(self, request: Request) -> Response:
        person, form, refused = await self.posted(request, max_files=0, max_fields=MAX_ONLINE + 5)
        if refused:
            return refused
        try:
            spec = self.config.form(str(form.get("form")))
        except KeyError:
            return self.show(person, status=400, errors=["没有该填报表。"])
        if spec.office not in self.offices(person):
            return self.pages.error(403, "无权填报", f"该表由{spec.office}填报。")
        rules, values, errors, known = self.pages.rules(), [], [], dict(self._entities(spec))
        for key, raw in form.multi_items():
            if not key.startswith("v:") or not str(raw).strip():
                continue
            _, metric, entity = key.split(":", 2)
            if metric not in spec.metrics or entity not in known:
                errors.append(f"{metric} · {entity}：不在本表中")
                continue
            value, why = check_value(rules.rules[metric], spec, str(raw))
            if why or value is None:
                errors.append(f"{rules.rules[metric].name} · {known[entity]}：{why or '无效'}")
            else:
                values.append((metric, entity, value))
        if errors or not values:
            return self.show(
                person,
                status=400,
                errors=errors or ["请至少填写一个数值。"],
                values={k: str(v) for k, v in form.multi_items() if k.startswith("v:")},
            )
        period = current_period(rules.rules[spec.metrics[0]].cycle, self.pages.clock())
        out = self.intake().enter(spec.id, period, values, by=person)
        return self.show(person, result=f"{spec.name}（{period}）{out.summary}")

    async def incident(self, request: Request) -> Response:
        person, form, refused = await self.posted(request, max_files=0, max_fields=20)
        if refused:
            return refused
        if self.config.incidents.office not in self.offices(person):
            return self.pages.error(403, "无权登记", f"质量事故由{self.config.incidents.office}登记。")
        v = {
            k: str(form.get(k) or "").strip()
            for k in ("id", "occurred", "unit", "course", "category", "grade", "veto", "description", "handling")
        }
        errors = []
        try:
            at = datetime.fromisoformat(v["occurred"]).replace(tzinfo=CST)
        except ValueError:
            at = None
            errors.append("发生时间：请填写日期和时间")
        problem = check(v["category"], v["grade"], v["veto"])
        if problem:
            errors.append(f"{problem[0]}：{problem[1]}")
        if not v["id"] or not v["unit"]:
            errors.append("事故编号和责任单位编号须填写")
        if v["category"] == "教学事故" and not v["course"]:
            errors.append("课程编号：教学事故须填写课程编号")
        if errors or at is None:
            return self.show(person, status=400, errors=errors, values=v)
        inc = Incident(
            v["id"][:64],
            at,
            v["unit"][:64],
            v["course"][:64] or None,
            v["category"],
            v["grade"],
            v["veto"] == "是",
            v["description"][:2000],
            v["handling"][:2000],
        )
        out = self.intake().register([inc], by=person, via="online")
        return self.show(person, result=f"已登记质量事故 {inc.id}（{inc.grade}{inc.category}）；{out.summary}")


def routes(pages, config: FormsConfig | None = None, delivery=None) -> list[Route]:
    f = FormPages(pages, config, delivery)
    return [
        Route("/forms", f.index),
        Route("/forms/template/{form:str}", f.template),
        Route("/forms/upload", f.upload, methods=["POST"]),
        Route("/forms/enter", f.enter, methods=["POST"]),
        Route("/forms/incident", f.incident, methods=["POST"]),
    ]
