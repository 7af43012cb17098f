"""Load and lint the rulebook: YAML → typed models, every error located in one pass.

A rulebook is a folder of ``*.yaml`` files. Loading either returns a complete ``RuleSet`` or
raises ``RulebookError`` carrying *all* problems found — each with file, line and field — so the
quality office fixes a file once, not once per error. A rejected rulebook changes nothing: the
caller keeps running the previous ``RuleSet``.

Closed contract: ``RulebookError`` is the only exception that leaves ``load_rulebook``, whatever
the files hold (the YAML limits are ``zhengai.ingest.located_yaml``'s; a rule whose validation
fails in an unexpected way is an error at its line; anything else is one error naming the folder).
An empty file is an error too: it is what a non-atomic editor save leaves for a moment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from zhengai.ingest.located_yaml import Located, LocatedError, Path_, dotted, parse_located
from zhengai.ingest.records import Direction
from zhengai.rules.applicability import applies, institution
from zhengai.rules.kinds import kind_of, lint_kinds, parse_rule
from zhengai.rules.messages import explain, rule_errors, rule_label
from zhengai.rules.model import Override, Rule

__all__ = [
    "RuleError",
    "RulebookError",
    "RuleSet",
    "load_rulebook",
    "default_rulebook_path",
    "unknown_override_entities",
]


def default_rulebook_path() -> Path:
    return Path(__file__).resolve().parent / "rulebook"


RuleError = LocatedError  # a rulebook error: file, line, field, message


class RulebookError(Exception):
    """The rulebook was rejected whole. ``errors`` lists every problem, sorted by file and line."""

    def __init__(self, errors: Iterable[RuleError]):
        self.errors = sorted(errors)
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(
            f"规则库有 {len(self.errors)} 处错误，未载入"
            f"（rulebook rejected with {len(self.errors)} error(s)）：\n{lines}"
        )


@dataclass(frozen=True)
class RuleSet:
    """An immutable, validated rulebook."""

    rules: Mapping[str, Rule]
    overrides: Mapping[str, Mapping[str, Override]]  # rule id → entity id → override
    version: str
    files: tuple[str, ...] = ()
    by_metric: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    override_lines: Mapping[tuple[str, str], tuple[str, int]] = field(
        default_factory=dict
    )  # (rule, entity) → (file, line)

    def for_metric(self, metric: str) -> tuple[Rule, ...]:
        return self.by_metric.get(metric, ())

    def knows(self, metric: str) -> bool:
        """A metric with a rule, enabled or not. Disabled rules declare informational metrics
        (stored for dashboards and 画像, not judged) — observations of them are not errors."""
        return metric in self.by_metric or any(r.metric == metric for r in self.rules.values())

    def overrides_for(self, rule_id: str) -> Mapping[str, Override]:
        return self.overrides.get(rule_id, {})

    @classmethod
    def of(
        cls, rules: Mapping[str, Rule], overrides: Mapping[str, Mapping[str, Override]], version: str, **kw: Any
    ) -> RuleSet:
        """A RuleSet with its metric index built (enabled rules only)."""
        by_metric: dict[str, list[Rule]] = {}
        school = institution()
        for rule in rules.values():
            if rule.enabled and kind_of(rule) == "threshold" and applies(rule.applies_to, school):
                # other kinds: zhengai.rules.kinds_eval; not applicable here: known, not judged
                by_metric.setdefault(rule.metric, []).append(rule)
        return cls(
            rules=rules,
            overrides=overrides,
            version=version,
            by_metric={k: tuple(v) for k, v in by_metric.items()},
            **kw,
        )


def _looser(direction: Direction, candidate: Any, base: Any) -> bool:
    """Is ``candidate`` a looser (easier to meet) standard than ``base``?"""
    if direction is Direction.higher_is_better:
        return candidate < base
    if direction is Direction.lower_is_better:
        return candidate > base
    if direction is Direction.range:
        return candidate[0] < base[0] or candidate[1] > base[1]
    return False


def load_rulebook(folder: Path | str | None = None, *, files: Iterable[Path] | None = None) -> RuleSet:
    """Load every ``*.yaml`` under ``folder`` (default: the shipped rulebook) or the given files.

    Raises ``RulebookError`` with every error found — and nothing else; nothing is partially loaded.
    """
    folder = Path(folder) if folder is not None else default_rulebook_path()
    try:
        return _load(folder, files)
    except RulebookError:
        raise
    except (Exception, RecursionError, MemoryError) as exc:  # noqa: BLE001 — the closed contract
        raise RulebookError(
            [RuleError(str(folder), 1, "(rulebook)", f"规则库无法读取（cannot load: {type(exc).__name__}）")]
        ) from None


def _load(folder: Path, files: Iterable[Path] | None) -> RuleSet:
    paths = sorted(files) if files is not None else sorted(folder.glob("*.yaml"))
    errors: list[RuleError] = []
    if not paths:
        raise RulebookError(
            [RuleError(str(folder), 1, "(folder)", "目录中没有 *.yaml 规则文件（no *.yaml rule files found）")]
        )

    rules: dict[str, Rule] = {}
    first_seen: dict[str, tuple[str, int]] = {}
    raw_overrides: list[tuple[dict, Located, Path_]] = []
    digest = hashlib.sha256()
    for path in paths:
        label = _label(path, folder)
        data, located = parse_located(path, label, top_keys=("rules", "overrides"), lists=("rules", "overrides"))
        errors.extend(located.errors)
        if not located.errors and not data:
            errors.append(
                RuleError(label, 1, "(file)", "文件为空（empty file: no rules and no overrides — an unfinished save?）")
            )
        try:
            digest.update(path.read_bytes() if not located.errors else label.encode())
        except OSError:  # gone between parsing and hashing
            errors.append(RuleError(label, 1, "(file)", "文件在读取时消失（the file disappeared while it was read）"))
        for i, raw in enumerate(data.get("rules", [])):
            where = ("rules", i)
            if not isinstance(raw, dict):
                errors.append(
                    RuleError(
                        label,
                        located.line_of(where),
                        dotted(where),
                        "规则应是一组「字段: 值」（a rule must be a mapping）",
                    )
                )
                continue
            # Duplicate ids are checked on the raw value so a rule with other mistakes still counts.
            rid = raw.get("id")
            if isinstance(rid, str) and rid in first_seen:
                f, ln = first_seen[rid]
                errors.append(
                    RuleError(
                        label,
                        located.line_of(where + ("id",)),
                        dotted(where + ("id",)),
                        f"规则编号 {rid!r} 重复，首次定义于 {f}:{ln}"
                        f"（duplicate rule id {rid!r}, first defined at {f}:{ln}）",
                    )
                )
                continue
            if isinstance(rid, str):
                first_seen[rid] = (label, located.line_of(where + ("id",)))
            try:
                rule = parse_rule(raw)  # any kind; no `kind:` is a threshold rule
                rule.version  # noqa: B018 — computed now, so a rule that cannot be hashed fails here
            except ValidationError as exc:
                errors.extend(rule_errors(exc, located, where, raw))
                continue
            except Exception as exc:  # noqa: BLE001 — a validator let out something else
                errors.append(
                    RuleError(
                        label,
                        located.line_of(where),
                        dotted(where),
                        f"规则无法校验（cannot validate: {type(exc).__name__}）",
                    )
                )
                continue
            rules[rule.id] = rule
        for i, raw in enumerate(data.get("overrides", [])):
            raw_overrides.append((raw, located, ("overrides", i)))

    errors.extend(lint_kinds(rules, first_seen))
    overrides: dict[str, dict[str, Override]] = {}
    override_lines: dict[tuple[str, str], tuple[str, int]] = {}
    for raw, located, where in raw_overrides:
        try:
            problems = _check_override(raw, located, where, rules, overrides)
        except Exception as exc:  # noqa: BLE001 — see the module docstring
            problems = [
                RuleError(
                    located.file,
                    located.line_of(where),
                    dotted(where),
                    f"覆盖无法校验（cannot validate: {type(exc).__name__}）",
                )
            ]
        errors.extend(problems)
        if not problems and isinstance(raw, dict):
            override_lines[(str(raw.get("rule")).strip(), str(raw.get("entity")).strip())] = (
                located.file,
                located.line_of(where + ("entity",)),
            )

    if errors:
        raise RulebookError(errors)
    return RuleSet.of(
        rules,
        overrides,
        digest.hexdigest()[:12],
        files=tuple(_label(p, folder) for p in paths),
        override_lines=override_lines,
    )


def unknown_override_entities(rules: RuleSet, known: Callable[[str], bool]) -> list[RuleError]:
    """Overrides naming an entity the directory does not hold (a typo overrides nothing)."""
    out = []
    for rule_id, by_entity in rules.overrides.items():
        for entity in by_entity:
            if not known(entity):
                file, line = rules.override_lines.get((rule_id, entity), ("(rulebook)", 1))
                out.append(
                    RuleError(
                        file,
                        line,
                        "entity",
                        f"目录中没有实体 {entity!r}（unknown entity: this override applies to nothing）",
                    )
                )
    return sorted(out)


def _check_override(raw: Any, located: Located, where: Path_, rules: Mapping[str, Rule], out: dict) -> list[RuleError]:
    file = located.file
    if not isinstance(raw, dict):
        return [
            RuleError(
                file, located.line_of(where), dotted(where), "覆盖应是一组「字段: 值」（an override must be a mapping）"
            )
        ]
    try:
        ov = Override.model_validate(raw)
    except ValidationError as exc:
        return rule_errors(exc, located, where, raw, f"覆盖 {raw.get('rule')} @ {raw.get('entity')}")
    rule = rules.get(ov.rule)
    if rule is None:
        return [
            RuleError(
                file,
                located.line_of(where + ("rule",)),
                dotted(where + ("rule",)),
                f"覆盖 @ {ov.entity}：没有规则 {ov.rule!r}（unknown rule {ov.rule!r}）",
            )
        ]
    problems: list[RuleError] = []
    label = f"{rule_label(rule.model_dump())} @ {ov.entity}"
    if kind_of(rule) != "threshold":
        return [
            RuleError(
                file,
                located.line_of(where + ("rule",)),
                dotted(where + ("rule",)),
                f"{label}：规则 {rule.id} 是 {kind_of(rule)} 类规则，不能覆盖阈值"
                "（only threshold rules take overrides）",
            )
        ]
    if rule.direction is Direction.boolean:
        return [
            RuleError(
                file,
                located.line_of(where),
                dotted(where),
                f"{label}：是/否型规则没有阈值可覆盖（a boolean rule has no thresholds to override）",
            )
        ]
    if rule.floor and ov.standard is not None and _looser(rule.direction, ov.standard, rule.standard):
        path = where + ("standard",)
        problems.append(
            RuleError(
                file,
                located.line_of(path),
                dotted(path),
                f"{label}：标准值 {ov.standard} 比学校标准值 {rule.standard} 更宽松，而此规则 floor: true 不允许"
                f"（rule {rule.id} has floor: true — the standard may not be looser than "
                f"the school's {rule.standard}）",
            )
        )
    merged = rule.model_dump()
    merged.update(
        {k: v for k, v in (("target", ov.target), ("standard", ov.standard), ("warning", ov.warning)) if v is not None}
    )
    try:
        Rule.model_validate(merged)
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(
                RuleError(
                    file, located.line_of(where), dotted(where), f"{label}：覆盖后阈值不合规：" + explain(err, "")
                )
            )
    if ov.entity in out.setdefault(ov.rule, {}):
        problems.append(
            RuleError(
                file,
                located.line_of(where + ("entity",)),
                dotted(where + ("entity",)),
                f"{label}：同一单位的第二条覆盖（second override of {ov.rule} for {ov.entity}）",
            )
        )
    if not problems:
        out[ov.rule][ov.entity] = ov
    return problems


def _label(path: Path, folder: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
