"""`zhengai rules export` / `zhengai rules import`: the 诊断要素一览表 (附件3) in Excel, both ways.

    zhengai rules export 一览表.xlsx [--rulebook DIR] [--store URL]
    zhengai rules import 一览表.xlsx [--rulebook DIR] [--write] [--json]

Import lists every change (old → new) and every bad cell (sheet, row, column) and writes nothing;
``--write`` applies the changes to the YAML (comments kept) once there are no errors, then lints
the folder and puts the files back if it does not load.
"""

from __future__ import annotations

import json
import statistics
import sys
from datetime import datetime
from pathlib import Path

import click

from zhengai.commands._options import json_option, namespace, rulebook_option
from zhengai.rules.loader import RulebookError, RuleSet, default_rulebook_path, load_rulebook

__all__ = ["export_command", "import_command", "latest_measured", "register"]


def latest_measured(store_url: str, rules: RuleSet) -> dict[str, str]:
    """Rule id → the latest measured value in words: the school's value, or for lower levels the
    latest period's median over the units measured."""
    from sqlalchemy import func, select

    from zhengai.warnings.schema import ObservationRow
    from zhengai.warnings.store import WarningStore

    store = WarningStore(store_url)
    out: dict[str, str] = {}
    try:
        with store.session() as s:
            latest: dict[str, datetime] = dict(
                s.execute(
                    select(ObservationRow.metric, func.max(ObservationRow.period_start)).group_by(ObservationRow.metric)
                )
                .tuples()
                .all()
            )
            for rule in rules.rules.values():
                at = latest.get(rule.metric)
                if at is None:
                    continue
                rows = s.execute(
                    select(ObservationRow.period, ObservationRow.value).where(
                        ObservationRow.metric == rule.metric, ObservationRow.period_start == at
                    )
                ).all()
                period, values = rows[0][0], [v for _, v in rows]
                if len(values) == 1:
                    out[rule.id] = f"{values[0]:g}{rule.unit}（{period}）"
                else:
                    out[rule.id] = f"中位数 {statistics.median(values):g}{rule.unit}（{period}，{len(values)} 个单位）"
    finally:
        store.engine.dispose()
    return out


def _provenance(folder: Path | None) -> dict[str, str]:
    from zhengai.ingest.located_yaml import parse_located

    out = {}
    for path in sorted((folder or default_rulebook_path()).glob("*.yaml")):
        data, located = parse_located(path, path.name, top_keys=("rules", "overrides"), lists=("rules", "overrides"))
        for i, raw in enumerate(data.get("rules", [])):
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                out[raw["id"]] = f"{path.name}:{located.line_of(('rules', i, 'id'))}"
    return out


def _diagnosis():
    """rule id → (诊断项目, 诊断要素) from the 诊改 catalog (``zhengai.rules.diagnosis``); a school's own
    rule the catalog does not place gets empty cells."""
    from zhengai.rules.diagnosis import load_catalog

    catalog = load_catalog()

    def lookup(rule_id: str) -> tuple[str, str]:
        element = catalog.element_of(rule_id)
        return (element.project_label, element.label) if element else ("", "")

    return lookup


def export_command(*, out: str, rulebook: str | None, store: str | None) -> int:
    from zhengai.rules.workbook import export_workbook

    try:
        rules = load_rulebook(rulebook)
    except RulebookError as exc:
        print(exc, file=sys.stderr)
        return 1
    measured = latest_measured(store, rules) if store else {}
    folder = Path(rulebook) if rulebook else None
    export_workbook(rules, Path(out), measured=measured, provenance=_provenance(folder), diagnosis=_diagnosis())
    print(f"已导出 {len(rules.rules)} 条规则到 {out}（测量结果 {len(measured)} 项）")
    return 0


def import_command(*, path: str, rulebook: str | None, write: bool, as_json: bool) -> int:
    from zhengai.rules.workbook import apply_changes_to_yaml, read_workbook

    folder = Path(rulebook) if rulebook else default_rulebook_path()
    try:
        rules = load_rulebook(folder)
        changes, errors = read_workbook(Path(path), rules)
    except RulebookError as exc:
        print(exc, file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError) as exc:  # not a workbook openpyxl can read
        print(f"无法读取 {path}（cannot read the workbook: {type(exc).__name__}）", file=sys.stderr)
        return 1
    if as_json:
        print(
            json.dumps(
                {
                    "changes": [dict(rule_id=c.rule_id, field=c.field, old=c.old, new=c.new) for c in changes],
                    "errors": [e.__dict__ for e in errors],
                },
                ensure_ascii=False,
                indent=1,
            )
        )
    else:
        for e in errors:
            print(e, file=sys.stderr)
        print(f"改动 {len(changes)} 处：")
        for c in changes:
            print(f"  {c}")
    if errors:
        print(f"一览表有 {len(errors)} 处错误，未写回（fix the cells above; nothing was written）", file=sys.stderr)
        return 1
    if not write or not changes:
        if changes:
            print("以上改动尚未写回；确认后加 --write。")
        return 0
    before = {p: p.read_bytes() for p in folder.glob("*.yaml")}
    written = apply_changes_to_yaml(folder, changes)
    try:
        load_rulebook(folder)
    except RulebookError as exc:
        for p, content in before.items():
            p.write_bytes(content)
        print(exc, file=sys.stderr)
        print("写回后规则库未通过校验，已恢复原文件。", file=sys.stderr)
        return 1
    print(
        f"已写回 {len(written)} 个文件：{', '.join(p.name for p in written)}；"
        "发布前请 zhengai rules backtest / publish。"
    )
    return 0


def register(rules: click.Group) -> None:
    @rules.command("export", help="导出诊断要素一览表（附件3 栏目）为 Excel")
    @click.argument("out")
    @rulebook_option
    @click.option("--store", metavar="URL", default=None, help="fill 测量结果 from this store (only when given)")
    def export(out: str, rulebook: str | None, store: str | None) -> int:
        return export_command(out=out, rulebook=namespace(rulebook=rulebook).rulebook, store=store)

    @rules.command("import", help="从编辑过的一览表导回阈值：先列出改动和错误，--write 才写回")
    @click.argument("path")
    @rulebook_option
    @click.option("--write", is_flag=True, help="apply the changes to the YAML (only when there are no errors)")
    @json_option
    def import_(path: str, rulebook: str | None, write: bool, as_json: bool) -> int:
        return import_command(path=path, rulebook=namespace(rulebook=rulebook).rulebook, write=write, as_json=as_json)
