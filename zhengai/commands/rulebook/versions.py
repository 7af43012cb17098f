"""`zhengai rules publish / versions / diff / restore`: publishing is the gate.

    zhengai rules publish [FOLDER] --author 质量办 --reason 原因 [--store URL]
    zhengai rules versions [--store URL] [--json]
    zhengai rules diff A [B] [--rulebook DIR] [--store URL]   # B omitted: the folder as it is now
    zhengai rules restore N --author … --reason … [--rulebook DIR] [--store URL]

The worker runs the latest publication (``zhengai.warnings.publications``); a saved file changes
nothing until it is published. The first publication is the baseline.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from zhengai.commands._options import json_option, namespace, rulebook_option, store_option
from zhengai.rules.loader import RulebookError, default_rulebook_path, load_rulebook

__all__ = ["publish_command", "versions_command", "diff_command", "restore_command", "register"]

_KIND_ZH = {"baseline": "基线", "change": "修改", "restore": "恢复"}
_FIELD_ZH = {"target": "目标值", "standard": "标准值", "warning": "预警值", "enabled": "启用", "(rule)": "规则"}


def _store(url: str):
    from zhengai.warnings.store import WarningStore

    store = WarningStore(url)
    store.create_schema()
    return store


def _change_line(change: list) -> str:
    rid, field, old, new = change
    name = _FIELD_ZH.get(field, "覆盖" if field.startswith("override@") else "")
    label = f"{name} {field}" if name else field

    def show(v: object) -> str:
        if v is None:
            return "（无）"
        return json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else str(v)

    return f"{rid} {label}：{show(old)} → {show(new)}"


def publish_command(*, folder: str | None, author: str, reason: str, store: str) -> int:
    from zhengai.warnings.publications import publish

    path = Path(folder) if folder else default_rulebook_path()
    try:
        result = publish(_store(store), path, author=author, reason=reason, at=datetime.now(UTC))
    except RulebookError as exc:
        print(exc, file=sys.stderr)
        print("规则库未通过校验，未发布。", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if result.id is None:
        print(f"规则库与最近一次发布相同（版本 {result.version}），未发布新版本。")
    elif result.kind == "baseline":
        print(
            f"基线发布 #{result.id}：{result.rules} 条规则，版本 {result.version}（作者：{author}；原因：{reason}）。"
            "以后每次发布列出相对上一版的改动。"
        )
    else:
        for change in result.changes:
            print(_change_line(change))
        rules = len({c[0] for c in result.changes})
        word = "恢复" if result.kind == "restore" else "发布"
        print(
            f"已{word} {rules} 条规则的新版本（第 {result.id} 版，版本 {result.version}；"
            f"作者：{author}；原因：{reason}）"
        )
    return 0


def versions_command(*, store: str, as_json: bool) -> int:
    from zhengai.warnings.publications import publications

    rows = publications(_store(store))
    if as_json:
        print(
            json.dumps(
                [
                    dict(
                        id=r.id,
                        kind=r.kind,
                        version=r.version,
                        rules=r.rules,
                        changes=len(r.changes),
                        restored_from=r.restored_from,
                        author=r.author,
                        reason=r.reason,
                        published_at=r.published_at.isoformat(),
                    )
                    for r in rows
                ],
                ensure_ascii=False,
                indent=1,
            )
        )
        return 0
    if not rows:
        print("尚未发布任何版本：worker 运行规则库目录（热加载）；首次 zhengai rules publish 即为基线。")
        return 0
    for r in rows:
        extra = f"，恢复自第 {r.restored_from} 版" if r.restored_from else ""
        what = f"{r.rules} 条规则" if r.kind == "baseline" else f"{len(r.changes)} 处改动"
        print(
            f"#{r.id} {_KIND_ZH.get(r.kind, r.kind)} {r.published_at:%Y-%m-%d %H:%M} UTC "
            f"版本 {r.version}：{what}{extra}"
            f"（{r.author}：{r.reason}）"
        )
    print(f"worker 运行第 {rows[-1].id} 版。")
    return 0


def diff_command(*, a: int, b: int | None, rulebook: str | None, store: str) -> int:
    from zhengai.warnings.publications import diff_rules, publication, rules_of

    st = _store(store)
    first = publication(st, a)
    second = publication(st, b) if b is not None else None
    if first is None or (b is not None and second is None):
        print(f"没有第 {a if first is None else b} 版发布（no such publication）", file=sys.stderr)
        return 1
    try:
        new = rules_of(second.files) if second is not None else load_rulebook(rulebook)
    except RulebookError as exc:
        print(exc, file=sys.stderr)
        return 1
    changes = diff_rules(rules_of(first.files), new)
    target = f"第 {b} 版" if b is not None else "规则库目录（未发布）"
    print(f"第 {a} 版 → {target}：{len(changes)} 处改动")
    for change in changes:
        print(f"  {_change_line(change)}")
    return 0


def restore_command(*, pub_id: int, author: str, reason: str, rulebook: str | None, store: str) -> int:
    from zhengai.warnings.publications import restore

    folder = Path(rulebook) if rulebook else default_rulebook_path()
    try:
        result = restore(_store(store), pub_id, folder, author=author, reason=reason, at=datetime.now(UTC))
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 1
    except RulebookError as exc:
        print(exc, file=sys.stderr)
        print("该版本在当前程序下无法加载，未恢复。", file=sys.stderr)
        return 1
    if result.id is None:
        print(f"第 {pub_id} 版与最近一次发布相同，已写回目录，未发布新版本。")
    else:
        for change in result.changes:
            print(_change_line(change))
        print(f"已恢复第 {pub_id} 版为第 {result.id} 版（{author}：{reason}），文件已写回 {folder}。")
    return 0


def register(rules: click.Group) -> None:
    @rules.command("versions", help="已发布的规则库版本（基线、修改、恢复）")
    @store_option
    @json_option
    def versions(**params: Any) -> int:
        args = namespace(**params)
        return versions_command(store=args.store, as_json=args.as_json)

    @rules.command("diff", help="两个发布版本之间（或某版与目录之间）的改动")
    @click.argument("a", type=int)
    @click.argument("b", type=int, required=False, default=None)
    @rulebook_option
    @store_option
    def diff(**params: Any) -> int:
        args = namespace(**params)
        return diff_command(a=args.a, b=args.b, rulebook=args.rulebook, store=args.store)

    @rules.command("restore", help="把某个发布版本写回目录并重新发布")
    @click.argument("pub_id", type=int)
    @click.option("--author", required=True)
    @click.option("--reason", required=True)
    @rulebook_option
    @store_option
    def restore(**params: Any) -> int:
        args = namespace(**params)
        return restore_command(
            pub_id=args.pub_id, author=args.author, reason=args.reason, rulebook=args.rulebook, store=args.store
        )
