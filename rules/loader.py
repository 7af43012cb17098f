"""Load and lint the rulebook: YAML → typed models, every error located in one pass.

A rulebook is a folder of ``*.yaml`` files. Loading either returns a complete ``RuleSet`` or
raises ``RulebookError`` carrying *all* problems found — each with file, line and field — so the
quality office fixes a file once, not once per error. A rejected rulebook changes nothing: the
caller keeps running the previous ``RuleSet``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml
from pydantic import ValidationError

from zhengai.ingest.records import Direction
from zhengai.rules.model import Override, Rule

__all__ = ["RuleError", "RulebookError", "RuleSet", "load_rulebook", "default_rulebook_path"]


def default_rulebook_path() -> Path:
    return Path(__file__).resolve().parent / "rulebook"


@dataclass(frozen=True, order=True)
class RuleError:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class RulebookError(Exception):
    """The rulebook was rejected whole. ``errors`` lists every problem, sorted by file and line."""

    def __init__(self, errors: Iterable[RuleError]):
        self.errors = sorted(errors)
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"rulebook rejected with {len(self.errors)} error(s):\n{lines}")


@dataclass(frozen=True)
class RuleSet:
    """An immutable, validated rulebook."""

    rules: Mapping[str, Rule]
    overrides: Mapping[str, Mapping[str, Override]]  # rule id → entity id → override
    version: str
    files: tuple[str, ...] = ()
    by_metric: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)

    def for_metric(self, metric: str) -> tuple[Rule, ...]:
        return self.by_metric.get(metric, ())

    def overrides_for(self, rule_id: str) -> Mapping[str, Override]:
        return self.overrides.get(rule_id, {})


# --- YAML with line numbers -------------------------------------------------------------------

Path_ = tuple[Any, ...]


class _Located:
    """Python values from a YAML node tree, plus the line of every path (1-based)."""

    def __init__(self, file: str):
        self.file = file
        self.lines: dict[Path_, int] = {}
        self.errors: list[RuleError] = []

    def convert(self, node: yaml.Node, path: Path_ = ()) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.convert(key_node, path + ("<key>",))
                if not isinstance(key, (str, int, float, bool)):
                    self.errors.append(
                        RuleError(self.file, key_node.start_mark.line + 1, _dotted(path), "a key must be a plain value")
                    )
                    continue
                if key in out:
                    self.errors.append(
                        RuleError(
                            self.file,
                            key_node.start_mark.line + 1,
                            _dotted(path + (key,)),
                            f"duplicate key {key!r} (first at line {self.lines[path + (key,)]})",
                        )
                    )
                    continue
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                out[key] = self.convert(value_node, path + (key,))
                self.lines[path + (key,)] = key_node.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
        return yaml.SafeLoader.construct_object(_CONSTRUCTOR, node, deep=True)

    def line_of(self, path: Path_) -> int:
        """Line of the longest known prefix of ``path`` (pydantic locs may add union tags)."""
        probe = tuple(path)
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), 1)


_CONSTRUCTOR = yaml.SafeLoader("")


def _dotted(path: Path_) -> str:
    parts: list[str] = []
    for p in path:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(file)"


def _parse_file(path: Path, label: str) -> tuple[dict, _Located]:
    located = _Located(label)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        located.errors.append(RuleError(label, 1, "(file)", f"cannot read: {exc}"))
        return {}, located
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        located.errors.append(RuleError(label, line, "(syntax)", str(getattr(exc, "problem", exc))))
        return {}, located
    if node is None:
        return {}, located
    data = located.convert(node)
    if not isinstance(data, dict):
        located.errors.append(RuleError(label, 1, "(file)", "a rule file must be a mapping with `rules:` and/or `overrides:`"))
        return {}, located
    for key in data:
        if key not in ("rules", "overrides"):
            located.errors.append(
                RuleError(label, located.line_of((key,)), str(key), "unknown top-level key (allowed: rules, overrides)")
            )
    for key in ("rules", "overrides"):
        if key in data and not isinstance(data[key], list):
            located.errors.append(RuleError(label, located.line_of((key,)), key, "must be a list"))
            data[key] = []
    return data, located


def _validation_errors(exc: ValidationError, located: _Located, prefix: Path_) -> list[RuleError]:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # Drop pydantic's union-variant tags (e.g. 'float', 'tuple[float, float]') from the field.
        clean = tuple(p for p in loc if isinstance(p, int) or not any(c in str(p) for c in "[]") and p not in ("float", "int", "bool", "str", "function-after"))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see rules/model.py for the allowed keys)"
        path = prefix + clean
        out.append(RuleError(located.file, located.line_of(path), _dotted(path), message))
    return out


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

    Raises ``RulebookError`` with every error found; nothing is partially loaded.
    """
    folder = Path(folder) if folder is not None else default_rulebook_path()
    paths = sorted(files) if files is not None else sorted(folder.glob("*.yaml"))
    errors: list[RuleError] = []
    if not paths:
        raise RulebookError([RuleError(str(folder), 1, "(folder)", "no *.yaml rule files found")])

    rules: dict[str, Rule] = {}
    first_seen: dict[str, tuple[str, int]] = {}
    raw_overrides: list[tuple[dict, _Located, Path_]] = []
    digest = hashlib.sha256()
    for path in paths:
        label = _label(path, folder)
        data, located = _parse_file(path, label)
        errors.extend(located.errors)
        digest.update(path.read_bytes() if path.exists() else b"")
        for i, raw in enumerate(data.get("rules", [])):
            where = ("rules", i)
            if not isinstance(raw, dict):
                errors.append(RuleError(label, located.line_of(where), _dotted(where), "a rule must be a mapping"))
                continue
            # Duplicate ids are checked on the raw value so a rule with other mistakes still counts.
            rid = raw.get("id")
            if isinstance(rid, str) and rid in first_seen:
                f, ln = first_seen[rid]
                errors.append(
                    RuleError(label, located.line_of(where + ("id",)), _dotted(where + ("id",)), f"duplicate rule id {rid!r} (first defined at {f}:{ln})")
                )
                continue
            if isinstance(rid, str):
                first_seen[rid] = (label, located.line_of(where + ("id",)))
            try:
                rule = Rule.model_validate(raw)
            except ValidationError as exc:
                errors.extend(_validation_errors(exc, located, where))
                continue
            rules[rule.id] = rule
        for i, raw in enumerate(data.get("overrides", [])):
            raw_overrides.append((raw, located, ("overrides", i)))

    overrides: dict[str, dict[str, Override]] = {}
    for raw, located, where in raw_overrides:
        errors.extend(_check_override(raw, located, where, rules, overrides))

    if errors:
        raise RulebookError(errors)
    by_metric: dict[str, list[Rule]] = {}
    for rule in rules.values():
        if rule.enabled:
            by_metric.setdefault(rule.metric, []).append(rule)
    return RuleSet(
        rules=rules,
        overrides=overrides,
        version=digest.hexdigest()[:12],
        files=tuple(_label(p, folder) for p in paths),
        by_metric={k: tuple(v) for k, v in by_metric.items()},
    )


def _check_override(raw: Any, located: _Located, where: Path_, rules: Mapping[str, Rule], out: dict) -> list[RuleError]:
    file = located.file
    if not isinstance(raw, dict):
        return [RuleError(file, located.line_of(where), _dotted(where), "an override must be a mapping")]
    try:
        ov = Override.model_validate(raw)
    except ValidationError as exc:
        return _validation_errors(exc, located, where)
    rule = rules.get(ov.rule)
    if rule is None:
        return [RuleError(file, located.line_of(where + ("rule",)), _dotted(where + ("rule",)), f"unknown rule {ov.rule!r}")]
    problems: list[RuleError] = []
    if rule.direction is Direction.boolean:
        return [RuleError(file, located.line_of(where), _dotted(where), "a boolean rule has no thresholds to override")]
    if rule.floor and ov.standard is not None and _looser(rule.direction, ov.standard, rule.standard):
        path = where + ("standard",)
        problems.append(
            RuleError(file, located.line_of(path), _dotted(path), f"rule {rule.id} has floor: true — the standard may not be looser than the school's {rule.standard}")
        )
    merged = rule.model_dump()
    merged.update({k: v for k, v in (("target", ov.target), ("standard", ov.standard), ("warning", ov.warning)) if v is not None})
    try:
        Rule.model_validate(merged)
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(
                RuleError(file, located.line_of(where), _dotted(where), "with this override " + err["msg"].removeprefix("Value error, "))
            )
    if ov.entity in out.setdefault(ov.rule, {}):
        problems.append(RuleError(file, located.line_of(where + ("entity",)), _dotted(where + ("entity",)), f"second override of {ov.rule} for {ov.entity}"))
    if not problems:
        out[ov.rule][ov.entity] = ov
    return problems


def _label(path: Path, folder: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
