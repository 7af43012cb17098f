"""The 画像 pages (behind the campus proxy's sign-in; scoped by ``zhengai.warnings.scopes``).

    GET /portrait              the units the person's scope covers
    GET /portrait/<entity>     画像: every indicator with value, band, thresholds, trend, percentile
                               within the 二级学院 and the school, and the department peers

Someone outside the entity's scope gets 403; students appear masked unless the scope holds them
in clear (质量办, the student's own counsellor).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from zhengai.ingest.records import Band, EntityKind
from zhengai.warnings.messages import format_value
from zhengai.warnings.portrait import portrait
from zhengai.warnings.scopes import Placed, place, scope_of
from zhengai.web.charts import percentile_svg, trend_svg

__all__ = ["routes"]
MAX_PEERS = 10


def _zh(enum, value: str) -> str:
    try:
        return enum(value).zh
    except ValueError:
        return value


class PortraitPages:
    def __init__(self, pages):
        self.pages = pages

    def _scope(self, request: Request):
        who = self.pages._proxy(request)
        if who is None:
            return None, self.pages.error(403, "请先登录", "画像页面需通过学校统一身份认证登录后查看。")
        return scope_of(self.pages.store, self.pages.service.directory(), who.person_id), None

    async def index(self, request: Request) -> Response:
        scope, refused = self._scope(request)
        if refused is not None:
            return refused
        directory = self.pages.service.directory()
        units: list[Placed] = []
        if scope.school_wide:
            school = directory.school()
            placed = (
                place(directory, e.id)
                for e in ([school] if school else []) + list(directory.of_kind(EntityKind.department))
            )
            units = [u for u in placed if u is not None]
        for g in scope.grants:
            unit = place(directory, g.unit_id) if g.unit_id else None  # a teacher's unit is the teacher
            if unit is not None and unit not in units:
                units.append(unit)
        items = [dict(href=f"/portrait/{u.id}", label=f"{_zh(EntityKind, u.kind)} {u.name}") for u in units]
        roles = "、".join(sorted({g.role.zh for g in scope.grants})) or "无"
        return self.pages.page(
            "portraits.html", title="画像", items=items, roles=roles, name=self.pages.name_of(scope.principal)
        )

    async def show(self, request: Request) -> Response:
        scope, refused = self._scope(request)
        if refused is not None:
            return refused
        directory = self.pages.service.directory()
        entity_id = request.path_params["entity"]
        entity = place(directory, entity_id)
        if entity is None:
            return self.pages.error(404, "对象不存在", "目录中没有该对象。")
        if not scope.sees(entity):
            return self.pages.error(403, "无权查看", "该对象不在您的查看范围内。如需查看，请联系质量办授权。")
        p = portrait(self.pages.store, directory, self.pages.rules(), entity_id, scope)
        if p is None:  # removed from the directory meanwhile
            return self.pages.error(404, "对象不存在", "目录中没有该对象。")
        return self.pages.page(
            "portrait.html",
            title=f"画像 · {p.entity_ref[1]}",
            kind=_zh(EntityKind, entity.kind),
            ref=p.entity_ref[0],
            department=p.department_name,
            cards=[self._card(i) for i in p.indicators],
            bands=self._bands(p.indicators),
            name=self.pages.name_of(scope.principal),
        )

    @staticmethod
    def _bands(indicators) -> list[tuple[str, str, int]]:
        counts: dict[str, int] = {}
        for i in indicators:
            counts[i.band] = counts.get(i.band, 0) + 1
        return [(b.value, b.zh, counts[b.value]) for b in Band if b.value in counts]

    @staticmethod
    def _card(i) -> dict:
        unit = i.unit
        peers = i.peers[:MAX_PEERS]
        if not any(x.is_self for x in peers):
            peers += [x for x in i.peers if x.is_self]
        return dict(
            name=i.name,
            rule_id=i.rule_id,
            band=i.band,
            band_zh=_zh(Band, i.band),
            period=i.period,
            value=format_value(i.value, unit),
            target=format_value(i.target, unit),
            standard=format_value(i.standard, unit),
            warning=format_value(i.warning, unit),
            trend=trend_svg(
                [(t.period, t.value, t.band) for t in i.trend],
                {"target": i.target, "standard": i.standard, "warning": i.warning},
                f"{i.name}走势",
            ),
            percentiles=percentile_svg([("院内", i.pct_department, i.n_department), ("全校", i.pct_school, i.n_school)])
            if i.n_school
            else None,
            peers=[
                dict(
                    ref=x.entity_id,
                    name=x.name,
                    value=format_value(x.value, unit),
                    band=x.band,
                    band_zh=_zh(Band, x.band),
                    me=x.is_self,
                )
                for x in peers
            ],
            more=max(0, len(i.peers) - len(peers)),
        )


def routes(pages) -> list[Route]:
    p = PortraitPages(pages)
    return [Route("/portrait", p.index), Route("/portrait/{entity:str}", p.show)]
