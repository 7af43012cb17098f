"""`zhengai rules schema`: (re)generate the JSON Schemas of the YAML people edit.

    zhengai rules schema [--out DIR] [--check]

``--out`` is the project folder (default: the current one); ``--check`` writes nothing and exits
1 when a committed schema differs from what the models give (CI).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["schema_command", "register"]


def schema_command(*, out: str, check: bool) -> int:
    from zhengai.schemas import SCHEMAS, render, write_schemas

    root = Path(out)
    if check:
        stale = [
            rel
            for name, (_, rel, _) in SCHEMAS.items()
            if not (root / rel).exists() or (root / rel).read_text(encoding="utf-8") != render(name)
        ]
        for rel in stale:
            print(f"JSON Schema 已过期：{rel}（stale schema; run zhengai rules schema）", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas(root):
        print(f"已写出 {path}")
    return 0


def register(rules: click.Group) -> None:
    @rules.command("schema", help="生成规则库、连接器、通知配置的 JSON Schema（editors validate YAML as you type）")
    @click.option("--out", default=".", show_default=True, help="project folder")
    @click.option("--check", is_flag=True, help="exit 1 if a committed schema is stale; write nothing")
    def schema(out: str, check: bool) -> int:
        return schema_command(out=out, check=check)
