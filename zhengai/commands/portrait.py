"""`zhengai portrait …` and `zhengai scopes …`: 画像 on the command line, and who may see what.

    zhengai portrait ENTITY [--as PERSON] [--store URL] [--rulebook DIR] [--json]
    zhengai scopes grant PRINCIPAL --role 院长 [--unit D01] [--store URL]
    zhengai scopes list [PRINCIPAL] [--store URL]

``portrait`` prints what ``PERSON``'s scope may see (their directory roles plus their grants):
nothing outside it (exit 3), students masked unless the scope holds them in clear. Without
``--as`` it prints the 校领导 view (the whole school, every student masked).

``scopes grant`` records a role for a person id or a database login (Grafana's): 质量办 and 校领导
take no unit; 院长 a 二级学院, 专业带头人 a major, 辅导员 a class, 教师 the teacher. Roles are given in
Chinese or English (``dean``). Exit codes: 0 done, 2 bad input, 3 outside the scope.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from zhengai.commands._options import json_option, namespace, rulebook_option, store_option

__all__ = ["portrait_command", "grant_command", "list_command", "register"]


def _store(url: str):
    from zhengai.warnings.store import WarningStore

    return WarningStore(url)


def portrait_command(
    entity_id: str,
    *,
    store: str,
    person: str | None = None,
    rulebook: str | None = None,
    as_json: bool = False,
    out=None,
) -> int:
    from zhengai.ingest.privacy import mask_text
    from zhengai.rules.loader import load_rulebook
    from zhengai.warnings.messages import format_value
    from zhengai.warnings.portrait import portrait
    from zhengai.warnings.scopes import Grant, Role, Scope, place, scope_of

    out = out or sys.stdout
    st = _store(store)
    directory = st.directory.load()
    scope = scope_of(st, directory, person) if person else Scope("cli", (Grant(Role.leader),))
    entity = place(directory, entity_id)
    if entity is None or not scope.sees(entity):  # the same answer for both: no probing of ids
        print(f"无权查看或不存在：{mask_text(entity_id)}", file=sys.stderr)
        return 3
    p = portrait(st, directory, load_rulebook(rulebook), entity_id, scope)
    if p is None:
        return 3
    if as_json:
        data = {
            "entity_id": p.entity_ref[0],
            "name": p.entity_ref[1],
            "department": p.department_name,
            "indicators": [
                dict(
                    rule_id=i.rule_id,
                    name=i.name,
                    period=i.period,
                    value=i.value,
                    band=i.band,
                    target=i.target,
                    standard=i.standard,
                    warning=i.warning,
                    pct_department=i.pct_department,
                    pct_school=i.pct_school,
                    n_department=i.n_department,
                    n_school=i.n_school,
                    trend=[[t.period, t.value] for t in i.trend],
                    peers=[[x.entity_id, x.name, x.value] for x in i.peers],
                )
                for i in p.indicators
            ],
        }
        print(json.dumps(data, ensure_ascii=False), file=out)
        return 0
    print(f"画像 · {p.entity_ref[1]}（{p.entity_ref[0]}）· {p.department_name}", file=out)
    for i in p.indicators:
        pct = " · ".join(
            f"{label} {v:.0f}%（{n} 个中）"
            for label, v, n in (("院内", i.pct_department, i.n_department), ("全校", i.pct_school, i.n_school))
            if v is not None
        )
        print(
            f"  {i.name}：{format_value(i.value, i.unit)}（{i.period}，{i.band}）目标 {format_value(i.target, i.unit)}"
            f" · 标准 {format_value(i.standard, i.unit)} · 预警 {format_value(i.warning, i.unit)}"
            + (f" · 百分位 {pct}" if pct else ""),
            file=out,
        )
        print("    走势：" + " → ".join(f"{t.period} {format_value(t.value, i.unit)}" for t in i.trend), file=out)
    return 0


def _role(text: str):
    from zhengai.warnings.scopes import ROLE_BY_ZH, Role

    try:
        return ROLE_BY_ZH.get(text) or Role(text)
    except ValueError:
        return None


def grant_command(principal: str, role: str, unit: str | None, *, store: str) -> int:
    from zhengai.warnings.scopes import ROLE_BY_ZH, grant

    r = _role(role)
    if r is None:
        print(f"未知角色：{role}（可选：{'、'.join(ROLE_BY_ZH)}）", file=sys.stderr)
        return 2
    st = _store(store)
    try:
        g = grant(st, st.directory.load(), principal, r, unit)
    except ValueError as exc:
        print(f"未授权：{exc}", file=sys.stderr)
        return 2
    print(
        f"已授权：{principal} → {r.zh}"
        + (f"（{g.unit_id}，二级学院 {g.department_id or '—'}）" if g.unit_id else "（全校）")
    )
    return 0


def list_command(principal: str | None, *, store: str) -> int:
    from sqlalchemy import select

    from zhengai.warnings.scopes import AccessScopeRow, Role

    st = _store(store)
    with st.session() as s:
        q = select(AccessScopeRow).order_by(AccessScopeRow.principal, AccessScopeRow.id)
        rows = s.scalars(q.where(AccessScopeRow.principal == principal) if principal else q).all()
    for r in rows:
        print(f"{r.principal}\t{Role(r.role).zh}\t{r.unit_id or '全校'}\t{r.department_id or '—'}")
    return 0


def register(cli: click.Group) -> None:
    @cli.command("portrait", help="画像: one entity's indicators, trend and percentiles, as a person's scope sees them")
    @click.argument("entity")
    @click.option(
        "--as",
        "person",
        default=None,
        help="the person (or login) whose scope applies (default: 校领导, students masked)",
    )
    @store_option
    @rulebook_option
    @json_option
    def portrait(**params: Any) -> int:
        a = namespace(**params)
        return portrait_command(a.entity, store=a.store, person=a.person, rulebook=a.rulebook, as_json=a.as_json)

    scopes = click.Group("scopes", help="who may see what: grant roles with a scope, list them")
    cli.add_command(scopes)

    @scopes.command(
        "grant", help="grant a role (质量办, 校领导, 院长, 专业带头人, 辅导员, 教师) to a person or a login"
    )
    @click.argument("principal")
    @click.option("--role", required=True)
    @click.option("--unit", default=None, help="the 二级学院, major, class or teacher the role covers")
    @store_option
    def grant(**params: Any) -> int:
        a = namespace(**params)
        return grant_command(a.principal, a.role, a.unit, store=a.store)

    @scopes.command("list", help="the explicit grants (directory roles are not listed)")
    @click.argument("principal", required=False)
    @store_option
    def list_(**params: Any) -> int:
        a = namespace(**params)
        return list_command(a.principal, store=a.store)
