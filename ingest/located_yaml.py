"""YAML with line numbers: configuration files that people edit report every error located.

Used by the rulebook (rules/) and the connector configuration (connectors/): each parses a file
with ``parse_located`` and turns pydantic errors into ``LocatedError`` rows (file, line, field,
message) with ``validation_errors``, so a file with five mistakes shows all five at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

__all__ = ["LocatedError", "Located", "Path_", "parse_located", "validation_errors", "dotted"]


@dataclass(frozen=True, order=True)
class LocatedError:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


Path_ = tuple[Any, ...]  # a path into the parsed data: keys and list indexes


class Located:
    """Python values from a YAML node tree, plus the line of every path (1-based)."""

    def __init__(self, file: str):
        self.file = file
        self.lines: dict[Path_, int] = {}
        self.errors: list[LocatedError] = []

    def convert(self, node: yaml.Node, path: Path_ = ()) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.convert(key_node, path + ("<key>",))
                if not isinstance(key, (str, int, float, bool)):
                    self.errors.append(
                        LocatedError(self.file, key_node.start_mark.line + 1, dotted(path), "a key must be a plain value")
                    )
                    continue
                if key in out:
                    self.errors.append(
                        LocatedError(
                            self.file,
                            key_node.start_mark.line + 1,
                            dotted(path + (key,)),
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


def dotted(path: Path_) -> str:
    parts: list[str] = []
    for p in path:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(file)"


def parse_located(path: Path, label: str, *, top_keys: tuple[str, ...] | None = None, lists: tuple[str, ...] = ()) -> tuple[dict, Located]:
    """Parse one YAML file. Errors (unreadable, syntax, duplicate keys, unknown top-level keys,
    non-list values for ``lists``) are collected in ``located.errors``; the data is what parsed."""
    located = Located(label)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        located.errors.append(LocatedError(label, 1, "(file)", f"cannot read: {exc}"))
        return {}, located
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        located.errors.append(LocatedError(label, line, "(syntax)", str(getattr(exc, "problem", exc))))
        return {}, located
    if node is None:
        return {}, located
    data = located.convert(node)
    if not isinstance(data, dict):
        located.errors.append(LocatedError(label, 1, "(file)", "the file must be a mapping"))
        return {}, located
    for key in data:
        if top_keys is not None and key not in top_keys:
            located.errors.append(
                LocatedError(label, located.line_of((key,)), str(key), f"unknown top-level key (allowed: {', '.join(top_keys)})")
            )
    for key in lists:
        if key in data and not isinstance(data[key], list):
            located.errors.append(LocatedError(label, located.line_of((key,)), key, "must be a list"))
            data[key] = []
    return data, located


def validation_errors(exc: ValidationError, located: Located, prefix: Path_) -> list[LocatedError]:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # Drop pydantic's union-variant tags (e.g. 'float', 'tuple[float, float]') from the field.
        clean = tuple(p for p in loc if isinstance(p, int) or not any(c in str(p) for c in "[]") and p not in ("float", "int", "bool", "str", "function-after"))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling)"
        path = prefix + clean
        out.append(LocatedError(located.file, located.line_of(path), dotted(path), message))
    return out


