"""`zhengai report`: the 自我诊改报告 (004 附件4) of one unit for one period, and the data tables of the
质量年度报告; `zhengai diagnose`: the monthly 自主诊断 digests and the 考核性诊断 summaries.

    zhengai report self --unit department --id D01 --period 2026 [--out DIR] [--format md,docx,xlsx]
    zhengai report self --unit office --id 教务处 --period 2025-2026-1
    zhengai report annual --period 2026 [--out DIR]
    zhengai diagnose digest --period 2026-11 [--notify deploy/notify/notify.yaml --channel email]
    zhengai diagnose assess --period 2025-2026-1 [--body 教务处] [--notify … --channel …]

Units: school, department (二级学院), office (职能部门, by name), major, course, teacher. The period
is a year (2026), a term (2025-2026-1) or a month (2026-11). Length checks are printed; a report
that breaks one is still written (people finish it) and the command exits 3 so scripts notice.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from zhengai.commands._options import json_option, namespace, rulebook_option, store_option

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["self_report", "annual_report", "register"]


def _now(text: str | None) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC) if text else datetime.now(UTC)


def _rules(folder: str | None):
    from zhengai.rules.loader import load_rulebook

    return load_rulebook(folder)


def self_report(
    store: str,
    unit: str,
    ident: str | None,
    period: str,
    *,
    out: str = ".",
    formats: tuple[str, ...] = ("md", "docx", "xlsx"),
    rulebook: str | None = None,
    as_of: str | None = None,
    as_json: bool = False,
) -> int:
    from zhengai.report.render import write_report
    from zhengai.report.selfreport import UnitError, build_self_report, period_window, resolve_unit
    from zhengai.warnings.store import WarningStore

    try:
        period_window(period)
    except ValueError as exc:
        print(f"周期无效：{exc}", file=sys.stderr)
        return 2
    ws = WarningStore(store)
    try:
        u = resolve_unit(ws, unit, ident)
    except UnitError as exc:
        print(exc, file=sys.stderr)
        return 2
    report = build_self_report(ws, _rules(rulebook), u, period, as_of=_now(as_of))
    paths = write_report(report, Path(out), formats)
    failed = report.failed_checks
    if as_json:
        print(
            json.dumps(
                {
                    "unit": {"kind": u.kind, "id": u.id, "name": u.name},
                    "period": period,
                    "elements": [r.element.code for r in report.rows],
                    "total_zi": report.total_zi,
                    "checks": [{"what": c.what, "count": c.count, "ok": c.ok} for c in report.checks],
                    "files": [str(p) for p in paths],
                },
                ensure_ascii=False,
            )
        )
    else:
        print(f"{u.kind_zh}「{u.name}」{period} 自我诊改报告：{len(report.rows)} 个诊断要素，全文 {report.total_zi} 字")
        for p in paths:
            print(f"  {p}")
        for c in failed:
            print(f"  ✗ {c.text()}")
        if not failed:
            print("  字数核对全部符合")
    return 3 if failed else 0


def annual_report(
    store: str, period: str, *, out: str = ".", rulebook: str | None = None, as_of: str | None = None
) -> int:
    from sqlalchemy import select

    from zhengai.report.annual import annual_tables, render_annual_markdown, render_annual_xlsx
    from zhengai.report.selfreport import period_window
    from zhengai.warnings.schema import EntityRow
    from zhengai.warnings.store import WarningStore

    try:
        period_window(period)
    except ValueError as exc:
        print(f"周期无效：{exc}", file=sys.stderr)
        return 2
    ws = WarningStore(store)
    with ws.session() as s:
        school = s.scalars(select(EntityRow.name).where(EntityRow.kind == "school")).first() or "学校"
    tables = annual_tables(ws, _rules(rulebook), period, as_of=_now(as_of))
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / f"质量年度报告数据表_{period}.md"
    xlsx = folder / f"质量年度报告数据表_{period}.xlsx"
    md.write_text(render_annual_markdown(tables, school=school, year=period), encoding="utf-8")
    xlsx.write_bytes(render_annual_xlsx(tables, school=school, year=period))
    print(f"质量年度报告数据表（{period}）：{sum(len(v) for v in tables.values())} 项指标\n  {md}\n  {xlsx}")
    return 0


def _self(args) -> int:
    return self_report(
        args.store,
        args.unit,
        args.id,
        args.period,
        out=args.out,
        formats=tuple(f.strip() for f in args.format.split(",") if f.strip()),
        rulebook=args.rulebook,
        as_of=args.as_of,
        as_json=args.as_json,
    )


def _annual(args) -> int:
    return annual_report(args.store, args.period, out=args.out, rulebook=args.rulebook, as_of=args.as_of)


def _diagnose(args) -> int:
    from zhengai.report.diagnosis import run_diagnosis

    return run_diagnosis(
        args.store,
        args.diagnose_command,
        args.period,
        notify=args.notify,
        channels=tuple(args.channel or ()),
        body=getattr(args, "body", None),
        rulebook=args.rulebook,
        as_of=args.as_of,
        out=args.out,
    )


def _common(f: F) -> F:
    f = click.option("--out", default=".", help="output folder")(f)
    f = click.option("--as-of", default=None, help="ISO time the report is as of (default: now)")(f)
    return store_option(rulebook_option(f))


def register(cli: click.Group) -> None:
    report = click.Group("report", help="自我诊改报告 (004 附件4) and 质量年度报告 data tables")
    cli.add_command(report)

    @report.command("self", help="the 附件4 自我诊改报告 of one unit: .docx, .xlsx, Markdown")
    @_common
    # the keys of zhengai.report.units.UNIT_KINDS (not imported here: it loads the store)
    @click.option(
        "--unit", required=True, type=click.Choice(["school", "department", "office", "major", "course", "teacher"])
    )
    @click.option("--id", default=None, help="entity id (office: its name, e.g. 教务处); school: optional")
    @click.option("--period", required=True, help="2026 | 2025-2026-1 | 2026-11")
    @click.option("--format", default="md,docx,xlsx")
    @json_option
    def self_(**params: Any) -> int:
        return _self(namespace(**params))

    @report.command("annual", help="质量年度报告 data tables per level (Markdown, Excel)")
    @_common
    @click.option("--period", required=True, help="the year, e.g. 2026")
    def annual(**params: Any) -> int:
        return _annual(namespace(**params))

    diagnose = click.Group("diagnose", help="自主诊断 digests to owners; 考核性诊断 summaries to assessing bodies")
    cli.add_command(diagnose)
    for name, text in (
        ("digest", "monthly 自主诊断 digest to each owner (专业/课程/教师), with a link to the 自我诊断意见 form"),
        ("assess", "考核性诊断 summary per assessing body (质量办/教务处/二级学院): open, overdue, closed warnings"),
    ):
        options = [
            _common,
            click.option("--period", required=True, help="digest: a month 2026-11; assess: a term or a year"),
            click.option("--notify", default=None, help="notify.yaml: deliver through its channels (else print)"),
            click.option("--channel", multiple=True, help="channel of notify.yaml to deliver on; repeatable"),
        ]
        if name == "assess":
            options.append(
                click.option("--body", default=None, help="only this assessing body (质量办, 教务处, 二级学院)")
            )

        def run(_command: str = name, **params: Any) -> int:
            return _diagnose(namespace(diagnose_command=_command, **params))

        for option in reversed(options):
            run = option(run)
        diagnose.command(name, help=text)(run)
