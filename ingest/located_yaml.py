"""YAML with line numbers: configuration files that people edit report every error located.

Used by the rulebook (rules/) and the connector configuration (connectors/): each parses a file
with ``parse_located`` and turns pydantic errors into ``LocatedError`` rows (file, line, field,
message) with ``validation_errors``, so a file with five mistakes shows all five at once.

Closed contract: ``parse_located`` never raises for what a file contains — every problem is a
``LocatedError``. Limits are checked before the work: the file size before reading
(``MAX_FILE_BYTES``), the nesting depth while composing (``MAX_DEPTH``), and the size the
aliases would expand to (``MAX_NODES``) on the node graph *before* anything is expanded — a
2 KB alias bomb is refused in milliseconds instead of growing to gigabytes. A value YAML cannot
construct (``!!python/name:…``, ``2026-13-45`` read as a date, ``!!timestamp 'yesterday'``) is
an error at its line, not an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

__all__ = [
    "LocatedError",
    "Located",
    "Path_",
    "parse_located",
    "validation_errors",
    "dotted",
    "MAX_FILE_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
]

MAX_FILE_BYTES = 1024 * 1024  # the shipped rulebook's largest file is ~30 KB
MAX_DEPTH = 64  # nesting of mappings and lists (a rule nests 4)
MAX_NODES = 200_000  # values after alias expansion (the shipped rulebook has ~4,000)


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
                        LocatedError(
                            self.file, key_node.start_mark.line + 1, dotted(path), "a key must be a plain value"
                        )
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
        try:
            value = yaml.SafeLoader.construct_object(_CONSTRUCTOR, node, deep=True)
            if isinstance(value, bytes):  # !!binary: never meant in a file people edit
                raise ValueError("binary data is not a value here")
            return value
        except Exception as exc:  # noqa: BLE001 — ConstructorError, ValueError, AttributeError …
            _CONSTRUCTOR.constructed_objects.clear()
            _CONSTRUCTOR.recursive_objects.clear()
            shown = node.value if isinstance(node.value, str) else ""
            self.errors.append(
                LocatedError(
                    self.file,
                    node.start_mark.line + 1,
                    dotted(path),
                    f"值无法读取（cannot read {shown[:40]!r} as {node.tag.rsplit(':', 1)[-1]}: {_why(exc)}）",
                )
            )
            return None

    def line_of(self, path: Path_) -> int:
        """Line of the longest known prefix of ``path`` (pydantic locs may add union tags)."""
        probe = tuple(path)
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), 1)


_CONSTRUCTOR = yaml.SafeLoader("")


def _why(exc: BaseException) -> str:
    problem = getattr(exc, "problem", None)
    return str(problem if problem else exc or type(exc).__name__)[:120]


class _TooDeep(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark):
        self.problem_mark, self.problem = mark, f"嵌套超过 {MAX_DEPTH} 层（nesting deeper than {MAX_DEPTH} levels）"


class _DepthLimitedLoader(yaml.SafeLoader):
    """Composes nodes (never constructs them) and stops at MAX_DEPTH — PyYAML's composer recurses."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expansion_problem(root: yaml.Node) -> tuple[yaml.Node, str] | None:
    """Walk the node graph once per distinct node (aliases share node objects): the number of
    values and the depth the tree would have once aliases are expanded, and alias cycles —
    all without expanding anything."""
    sizes: dict[int, tuple[int, int]] = {}
    on_path: set[int] = set()
    # iterative post-order walk, so a deep graph cannot exhaust the Python stack here either
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            size = 1 + sum(sizes[id(c)][0] for c in children)
            depth = 1 + max((sizes[id(c)][1] for c in children), default=0)
            sizes[key] = (size, depth)
            if size > MAX_NODES:
                return node, f"别名展开后超过 {MAX_NODES} 个值（aliases expand to more than {MAX_NODES} values）"
            if depth > MAX_DEPTH:
                return node, f"别名展开后嵌套超过 {MAX_DEPTH} 层（aliases nest deeper than {MAX_DEPTH} levels）"
            continue
        if key in sizes:
            continue
        if key in on_path:
            return node, "别名引用了自身（an alias refers to itself）"
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                return child, "别名引用了自身（an alias refers to itself）"
            if id(child) not in sizes:
                stack.append((child, False))
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def dotted(path: Path_) -> str:
    parts: list[str] = []
    for p in path:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(file)"


def parse_located(
    path: Path, label: str, *, top_keys: tuple[str, ...] | None = None, lists: tuple[str, ...] = ()
) -> tuple[dict, Located]:
    """Parse one YAML file. Errors (unreadable, syntax, duplicate keys, unknown top-level keys,
    non-list values for ``lists``) are collected in ``located.errors``; the data is what parsed."""
    located = Located(label)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            located.errors.append(
                LocatedError(label, 1, "(file)", f"文件过大：{size} 字节，上限 {MAX_FILE_BYTES}（file too large）")
            )
            return {}, located
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        located.errors.append(LocatedError(label, 1, "(file)", f"cannot read: {exc}"))
        return {}, located
    loader = _DepthLimitedLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        located.errors.append(LocatedError(label, line, "(syntax)", str(getattr(exc, "problem", None) or exc)[:300]))
        return {}, located
    except (RecursionError, MemoryError, ValueError) as exc:  # the depth limit makes these unlikely
        located.errors.append(LocatedError(label, 1, "(syntax)", f"文件无法解析（cannot parse: {type(exc).__name__}）"))
        return {}, located
    finally:
        loader.dispose()
    if node is None:
        return {}, located
    problem = _expansion_problem(node)
    if problem is not None:
        where, message = problem
        located.errors.append(LocatedError(label, where.start_mark.line + 1, "(aliases)", message))
        return {}, located
    data = located.convert(node)
    if not isinstance(data, dict):
        located.errors.append(LocatedError(label, 1, "(file)", "the file must be a mapping"))
        return {}, located
    for key in data:
        if top_keys is not None and key not in top_keys:
            located.errors.append(
                LocatedError(
                    label, located.line_of((key,)), str(key), f"unknown top-level key (allowed: {', '.join(top_keys)})"
                )
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
        clean = tuple(
            p
            for p in loc
            if isinstance(p, int)
            or not any(c in str(p) for c in "[]")
            and p not in ("float", "int", "bool", "str", "function-after")
        )
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling)"
        path = prefix + clean
        out.append(LocatedError(located.file, located.line_of(path), dotted(path), message))
    return out
