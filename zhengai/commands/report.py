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

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from zhengai.ingest.settings import store_url

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
        as_json=args.json,
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


def register(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", default=store_url())
    common.add_argument("--rulebook", default=None, help="rulebook folder (default: the shipped one)")
    common.add_argument("--as-of", default=None, help="ISO time the report is as of (default: now)")
    common.add_argument("--out", default=".", help="output folder")

    p = sub.add_parser("report", help="自我诊改报告 (004 附件4) and 质量年度报告 data tables")
    rsub = p.add_subparsers(dest="report_command", required=True)
    s = rsub.add_parser("self", parents=[common], help="the 附件4 自我诊改报告 of one unit: .docx, .xlsx, Markdown")
    s.add_argument("--unit", required=True, choices=["school", "department", "office", "major", "course", "teacher"])
    s.add_argument("--id", default=None, help="entity id (office: its name, e.g. 教务处); school: optional")
    s.add_argument("--period", required=True, help="2026 | 2025-2026-1 | 2026-11")
    s.add_argument("--format", default="md,docx,xlsx")
    s.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    s.set_defaults(func=_self)
    a = rsub.add_parser("annual", parents=[common], help="质量年度报告 data tables per level (Markdown, Excel)")
    a.add_argument("--period", required=True, help="the year, e.g. 2026")
    a.set_defaults(func=_annual)

    d = sub.add_parser("diagnose", help="自主诊断 digests to owners; 考核性诊断 summaries to assessing bodies")
    dsub = d.add_subparsers(dest="diagnose_command", required=True)
    for name, text in (
        ("digest", "monthly 自主诊断 digest to each owner (专业/课程/教师), with a link to the 自我诊断意见 form"),
        ("assess", "考核性诊断 summary per assessing body (质量办/教务处/二级学院): open, overdue, closed warnings"),
    ):
        c = dsub.add_parser(name, parents=[common], help=text)
        c.add_argument("--period", required=True, help="digest: a month 2026-11; assess: a term or a year")
        c.add_argument("--notify", default=None, help="notify.yaml: deliver through its channels (else print)")
        c.add_argument("--channel", action="append", help="channel of notify.yaml to deliver on; repeatable")
        if name == "assess":
            c.add_argument("--body", default=None, help="only this assessing body (质量办, 教务处, 二级学院)")
        c.set_defaults(func=_diagnose)
