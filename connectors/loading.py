"""Read ``deploy/connectors/<name>.yaml`` into a :class:`ConnectorConfig`, every error located.

Like the rulebook loader, loading either returns a complete, typed configuration or raises
:class:`ConfigError` carrying *all* problems found — file, line and field each — so campus IT
fixes a file once: YAML syntax and duplicate keys, unknown keys (everywhere), wrong types and
values, a ``${VAR}`` that is not set, a secret variable (``*_env``) that is not set or whose
``*_FILE`` cannot be read, an unknown system, a source of the wrong kind for the system, unknown
stream names. Messages never contain a secret's value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from zhengai.ingest.located_yaml import Located, LocatedError, Path_, dotted, parse_located

from .base import Connector
from .config import ConnectorConfig
from .registry import CONNECTORS

__all__ = ["ConfigError", "load_config", "load_configs", "build_connector", "config_path"]

_TOP_KEYS = tuple(k for k in ConnectorConfig.model_fields if k != "file")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A configuration was rejected whole; ``errors`` lists every problem, sorted."""

    def __init__(self, errors: Iterable[LocatedError]) -> None:
        self.errors = sorted(errors)
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"connector configuration rejected with {len(self.errors)} error(s):\n{lines}")


def config_path(name: str, folder: Path) -> Path:
    return Path(folder) / f"{name}.yaml"


def _interpolate(
    value: Any, path: Path_, located: Located, environ: Mapping[str, str], errors: list[LocatedError]
) -> Any:
    """``${VAR}`` / ``${VAR:-default}`` in every string value."""
    if isinstance(value, dict):
        return {k: _interpolate(v, path + (k,), located, environ, errors) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, path + (i,), located, environ, errors) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        errors.append(
            LocatedError(
                located.file,
                located.line_of(path),
                dotted(path),
                f"environment variable {name} is not set (write ${{{name}:-default}} for a default)",
            )
        )
        return m.group(0)

    return _VAR.sub(sub, value)


def _errors(exc: ValidationError, located: Located, prefix: Path_, data: Any) -> list[LocatedError]:
    """Like ``located_yaml.validation_errors``, and also drops the tags pydantic puts in the
    location of a discriminated union (``source.sql.url`` → ``source.url``), found by walking
    the data: a step that is not a key of the node but is the node's ``kind``."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        path: list[Any] = []
        node = data
        for part in err["loc"]:
            if isinstance(node, dict) and part not in node and node.get("kind") == part:
                continue  # the union's tag
            if isinstance(part, str) and ("[" in part or part.startswith("function-")):
                continue  # a validator's or a type's name, not a key
            path.append(part)
            if isinstance(node, dict):
                node = node.get(part)
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                node = None
        message = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        ctx = err.get("ctx") or {}
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling)"
        elif err["type"] == "missing":
            message = "is required"
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            key = str(ctx.get("discriminator", "kind")).strip("'")
            path.append(key)
            tag = ctx.get("tag")
            message = (
                f"{tag!r} is not one of {ctx.get('expected_tags')}"
                if tag is not None
                else f"is required: one of {ctx.get('expected_tags')}"
            )
        full = prefix + tuple(path)
        out.append(LocatedError(located.file, located.line_of(full), dotted(full), message))
    return out


def load_config(
    path: Path | str, *, environ: Mapping[str, str] | None = None, label: str | None = None
) -> ConnectorConfig:
    """One connector file → its validated configuration (``options`` typed by the system)."""
    path = Path(path)
    env = os.environ if environ is None else environ
    label = label or str(path)
    data, located = parse_located(path, label, top_keys=_TOP_KEYS)
    errors = list(located.errors)
    if errors and not data:
        raise ConfigError(errors)
    data = _interpolate(data, (), located, env, errors)
    context = {"environ": env}
    common: ConnectorConfig | None = None
    try:
        common = ConnectorConfig.model_validate(
            {k: v for k, v in data.items() if k in _TOP_KEYS and k != "options"}, context=context
        )
    except ValidationError as exc:
        errors.extend(_errors(exc, located, (), data))

    name = data.get("connector")
    cls = CONNECTORS.get(name) if isinstance(name, str) else None
    options: Any = None
    if isinstance(name, str) and cls is None:
        errors.append(
            LocatedError(
                label,
                located.line_of(("connector",)),
                "connector",
                f"unknown system {name!r}; known: {', '.join(sorted(CONNECTORS))}",
            )
        )
    if cls is not None:
        raw_options = data.get("options")
        if raw_options is None:
            raw_options = {}
        try:
            options = cls.options_model.model_validate(raw_options, context=context)  # type: ignore[attr-defined]
        except ValidationError as exc:
            errors.extend(_errors(exc, located, ("options",), raw_options))
        kind = data.get("source", {}).get("kind") if isinstance(data.get("source"), dict) else None
        want = cls.source_kind  # type: ignore[attr-defined]
        if isinstance(kind, str) and kind != want:
            errors.append(
                LocatedError(
                    label,
                    located.line_of(("source", "kind")),
                    "source.kind",
                    f"the {name} connector reads a {want!r} source, not {kind!r}",
                )
            )
        streams = data.get("streams")
        known = getattr(options, "stream_names", None) or cls.stream_names  # type: ignore[attr-defined]
        if isinstance(streams, list) and (known or options is not None):
            for i, s in enumerate(streams):
                if s not in known:
                    errors.append(
                        LocatedError(
                            label,
                            located.line_of(("streams", i)),
                            f"streams[{i}]",
                            f"unknown stream {s!r}; {name} has: {', '.join(known)}",
                        )
                    )
    if errors or common is None:
        raise ConfigError(errors)
    return common.model_copy(update={"options": options, "file": label})


def load_configs(paths: Iterable[Path], *, environ: Mapping[str, str] | None = None) -> list[ConnectorConfig]:
    """Several files; every error of every file in one ConfigError."""
    configs, errors = [], []
    for p in paths:
        try:
            configs.append(load_config(p, environ=environ))
        except ConfigError as exc:
            errors.extend(exc.errors)
    if errors:
        raise ConfigError(errors)
    names = [c.connector for c in configs]
    for c in configs:
        if names.count(c.connector) > 1:
            errors.append(LocatedError(c.file, 1, "connector", f"{c.connector!r} is configured in more than one file"))
    if errors:
        raise ConfigError(errors)
    return configs


def build_connector(config: ConnectorConfig) -> Connector:
    """The connector a configuration describes, limited to its ``streams`` if listed."""
    cls = CONNECTORS[config.connector]
    connector = cls.from_config(config)  # type: ignore[attr-defined]
    if config.streams is not None:
        connector.streams = tuple(s for s in connector.streams if s.name in config.streams)
    return connector
