"""A candidate rulebook for a backtest: a folder, one file in place of its namesake, or changed values.

    candidate_rulebook(current_folder, path=None, changes=["course.attendance_rate.standard=88"])

A file replaces the file of the same name in the current folder (or joins it); ``changes`` set one
threshold each (``<rule id>.<target|standard|warning|enabled>=<value>``, a range as ``[85, 95]``)
and are validated as the loader validates a rule, so a candidate that would not lint is refused
with the same located, Chinese-first errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from zhengai.rules.loader import RulebookError, RuleError, RuleSet, default_rulebook_path, load_rulebook

__all__ = ["candidate_rulebook", "apply_changes", "CHANGEABLE"]

CHANGEABLE = ("target", "standard", "warning", "enabled")


def candidate_rulebook(
    current: Path | str | None, path: Path | str | None = None, changes: Iterable[str] = ()
) -> RuleSet:
    folder = Path(current) if current is not None else default_rulebook_path()
    if path is None:
        rules = load_rulebook(folder)
    else:
        path = Path(path)
        if path.is_dir():
            rules = load_rulebook(path)
        else:
            files = [p for p in sorted(folder.glob("*.yaml")) if p.name != path.name] + [path]
            rules = load_rulebook(folder, files=files)
    return apply_changes(rules, changes)


def apply_changes(rules: RuleSet, changes: Iterable[str]) -> RuleSet:
    """``rules`` with each ``<rule id>.<field>=<value>`` applied; every bad change is reported."""
    changes = list(changes)
    if not changes:
        return rules
    updated = dict(rules.rules)
    errors: list[RuleError] = []
    for text in changes:
        where = ("--set", 1, text)
        name, sep, raw = text.partition("=")
        rule_id, _, field = name.strip().rpartition(".")
        if not sep or not rule_id or field not in CHANGEABLE:
            errors.append(
                RuleError(
                    *where,
                    f"应写成 规则id.字段=值，字段为 {' / '.join(CHANGEABLE)}（expected <rule id>.<field>=<value>）",
                )
            )
            continue
        rule = updated.get(rule_id)
        if rule is None:
            errors.append(RuleError(*where, f"没有规则 {rule_id!r}（unknown rule）"))
            continue
        try:
            value = yaml.safe_load(raw)
            updated[rule_id] = type(rule).model_validate(rule.model_dump() | {field: value})  # any kind
        except yaml.YAMLError:
            errors.append(
                RuleError(*where, f"规则 {rule_id}「{rule.name}」的 {field} 值 {raw!r} 无法读取（not a YAML value）")
            )
        except ValidationError as exc:
            detail = "；".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            errors.append(
                RuleError(*where, f"规则 {rule_id}「{rule.name}」的 {field} 不能设为 {raw.strip()}：{detail}")
            )
    if errors:
        raise RulebookError(errors)
    return RuleSet.of(
        updated,
        rules.overrides,
        rules.version + "+" + str(len(changes)),
        files=rules.files,
        override_lines=rules.override_lines,
    )
