"""JSON Schemas for the YAML people edit, generated from the pydantic models that load them.

    rules/schemas/rulebook.schema.json      rules/rulebook/*.yaml       (rules.model: Rule, Override)
    deploy/schemas/connector.schema.json    deploy/connectors/*.yaml    (connectors.config: ConnectorConfig)
    deploy/schemas/notify.schema.json       deploy/notify/notify.yaml   (warnings.notify.config)
    deploy/schemas/calendar.schema.json     deploy/notify/calendar.yaml (AcademicCalendar)

Each shipped file's header names its schema (``# yaml-language-server: $schema=…``), so editors
with the YAML language server (VS Code's YAML extension, JetBrains, Neovim) complete keys and
flag mistakes as you type. The loaders stay the authority — they check what a schema cannot
(cross-references, secrets, the directory) — and the schemas are regenerated with
``zhengai rules schema``; a test keeps the committed files equal to what the models give.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["SCHEMAS", "schema", "write_schemas", "HEADER"]

HEADER = "# yaml-language-server: $schema={}"


def _rulebook() -> dict:
    from typing import Union

    from pydantic import TypeAdapter

    from zhengai.rules.kinds import KIND_CLASSES

    # a rule of any kind: no `kind` is a threshold rule (rules.model.Rule), the others name theirs (rules.kinds)
    from zhengai.rules.model import Override, Rule

    others = tuple(c for c in dict.fromkeys(KIND_CLASSES.values()) if c is not Rule)
    # a union built at run time from the registry (a type form mypy cannot follow: typed as Any)
    kind_union: Any = Union[others]  # noqa: UP007 — a runtime tuple
    kinds = TypeAdapter(kind_union).json_schema()
    rule, override = Rule.model_json_schema(), Override.model_json_schema()
    # an item with `kind:` is one of the other kinds; without, a threshold rule (errors located at its field)
    any_rule = {"if": {"required": ["kind"]}, "then": {"$ref": "#/$defs/KindRule"}, "else": {"$ref": "#/$defs/Rule"}}
    defs = {
        **kinds.pop("$defs", {}),
        **rule.pop("$defs", {}),
        **override.pop("$defs", {}),
        "KindRule": kinds,
        "Rule": rule,
        "AnyRule": any_rule,
        "Override": override,
    }
    return {
        "title": "诊改规则库文件 zhengai rulebook file",
        "description": "rules/rulebook/*.yaml — 质量办维护的规则与覆盖（rules and overrides）。",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "rules": {"type": "array", "items": {"$ref": "#/$defs/AnyRule"}},
            "overrides": {"type": "array", "items": {"$ref": "#/$defs/Override"}},
        },
        "$defs": defs,
    }


def _connector() -> dict:
    from zhengai.connectors.config import ConnectorConfig

    out = ConnectorConfig.model_json_schema(mode="validation")
    out["properties"].pop("file", None)  # filled in by the loader, never written
    out["title"] = "采集连接器配置 zhengai connector"
    return out


def _notify() -> dict:
    from zhengai.warnings.notify.config import _NotifyFile

    out = _NotifyFile.model_json_schema(mode="validation")
    # read by the loader beside the model: channels by name (each checked by its type), the calendar file
    out["properties"]["channels"] = {
        "type": "object",
        "description": "通知渠道：名称 → 配置"
        "（type 为 console / dingtalk_work / dingtalk_robot / wecom_app / email …）",
        "additionalProperties": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
    }
    out["properties"]["calendar"] = {"type": "string", "description": "校历静默时段文件（相对本文件）"}
    out["title"] = "通知配置 zhengai notify.yaml"
    return out


def _calendar() -> dict:
    from zhengai.warnings.notify.calendar_windows import AcademicCalendar

    out = AcademicCalendar.model_json_schema(mode="validation")
    out["title"] = "校历静默时段 zhengai calendar.yaml"
    return out


# name → (generator, path relative to the project root, the shipped files it describes)
SCHEMAS: dict[str, tuple[Any, str, str]] = {
    "rulebook": (_rulebook, "rules/schemas/rulebook.schema.json", "rules/rulebook/*.yaml"),
    "connector": (_connector, "deploy/schemas/connector.schema.json", "deploy/connectors/*.yaml"),
    "notify": (_notify, "deploy/schemas/notify.schema.json", "deploy/notify/notify.yaml"),
    "calendar": (_calendar, "deploy/schemas/calendar.schema.json", "deploy/notify/calendar.yaml"),
}


def schema(name: str) -> dict:
    generate, path, _ = SCHEMAS[name]
    body = generate()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": path.rsplit("/", 1)[-1], **body}


def render(name: str) -> str:
    return json.dumps(schema(name), ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def write_schemas(root: Path) -> list[Path]:
    """Write every schema under ``root`` (the project folder); returns the paths written."""
    written = []
    for name, (_, rel, _) in SCHEMAS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written
