"""The quality office's backtest page: upload a rulebook file (or change one value) and see what it
would have done over a term, next to the rulebook that runs.

    GET  /rules/backtest    the form
    POST /rules/backtest    multipart: file (a rule YAML), term, set (RULE.FIELD=VALUE lines), csrf

Only the quality office (the school's ``quality_office``, signed in through the campus proxy) may
use it. The uploaded file's rules replace the running rules of the same id; it is linted like any
rulebook, and its errors are shown located, Chinese first. The work is ``run_backtest`` — the same
as ``zhengai rules backtest``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from zhengai.rules.candidate import apply_changes
from zhengai.rules.loader import RulebookError, RuleSet, load_rulebook
from zhengai.web.security import csrf_ok, csrf_token

__all__ = ["routes"]

MAX_UPLOAD = 1024 * 1024


def _merge(current: RuleSet, uploaded: RuleSet) -> RuleSet:
    rules = {**current.rules, **uploaded.rules}
    overrides = {rid: current.overrides_for(rid) for rid in current.rules}
    overrides.update({rid: uploaded.overrides_for(rid) for rid in uploaded.rules})
    return RuleSet.of(rules, {k: v for k, v in overrides.items() if v}, f"{current.version}+{uploaded.version}")


class BacktestPage:
    def __init__(self, pages):
        self.pages = pages

    def _quality_office(self, request: Request) -> str | HTMLResponse:
        who = self.pages._proxy(request)
        directory = self.pages.service.directory()
        school = directory.school()
        qo = directory.responsible(school.id, "quality_office") if school else None
        if who is None or qo is None or qo[0].id != who.person_id:
            return self.pages.error(403, "仅限质量办", "回测页面仅供质量办使用，请通过学校统一身份认证登录。")
        return who.person_id

    def _form(self, person: str, status: int = 200, **values: object) -> HTMLResponse:
        values.setdefault("term", "")
        values.setdefault("changes", "")
        return self.pages.page(
            "backtest.html",
            status,
            title="规则回测",
            via="proxy",
            csrf=csrf_token(self.pages.secret, person, self.pages.clock()),
            **values,
        )

    async def get(self, request: Request) -> Response:
        person = self._quality_office(request)
        return person if isinstance(person, HTMLResponse) else self._form(person)

    async def post(self, request: Request) -> Response:
        from zhengai.commands.rulebook.backtest import format_report, run_backtest, term_window

        person = self._quality_office(request)
        if isinstance(person, HTMLResponse):
            return person
        form = await request.form(max_files=1, max_fields=10)
        if not csrf_ok(self.pages.secret, person, str(form.get("csrf") or ""), self.pages.clock()):
            return self.pages.error(403, "表单已过期", "请刷新页面后重新提交。")
        term, changes = str(form.get("term") or "").strip(), str(form.get("set") or "")
        current = self.pages.rules()
        try:
            window = term_window(term)
            candidate = current
            upload = form.get("file")
            if isinstance(upload, UploadFile) and upload.filename:
                body = await upload.read(MAX_UPLOAD + 1)
                if len(body) > MAX_UPLOAD:
                    return self._form(
                        person, 400, error=["文件超过 1 MB（file too large）"], term=term, changes=changes
                    )
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / Path(upload.filename).name.replace("/", "_")
                    path = path.with_suffix(".yaml")
                    path.write_bytes(body)
                    candidate = _merge(current, load_rulebook(Path(tmp)))
            candidate = apply_changes(candidate, [line for line in changes.splitlines() if line.strip()])
        except RulebookError as exc:
            errors = [f"{Path(e.file).name}:{e.line} {e.field}：{e.message}" for e in exc.errors]
            return self._form(person, 400, error=errors, term=term, changes=changes)
        except ValueError as exc:
            return self._form(person, 400, error=[str(exc)], term=term, changes=changes)
        run = run_backtest(self.pages.store, current, candidate, *window)
        return self._form(person, report=format_report(run), comparison=run.comparison, term=term, changes=changes)


def routes(pages) -> list[Route]:
    page = BacktestPage(pages)
    return [Route("/rules/backtest", page.get, methods=["GET"]), Route("/rules/backtest", page.post, methods=["POST"])]
