"""The options every command shares, one definition each, named and described from the settings.

===================  =================================  ==========================================
option               setting (``zhengai.ingest.settings``)  environment variable
===================  =================================  ==========================================
``--store URL``      ``Settings.store_url``             ``ZHENGAI_STORE_URL`` (default: the demo's
                                                        SQLite file, ``DEFAULT_STORE_URL``)
``--broker B``       ``Settings.broker``                ``ZHENGAI_BROKER``
``--rulebook DIR``   ``Settings.rulebook``              ``ZHENGAI_RULEBOOK`` (default: shipped)
``--topic-prefix P`` ``Settings.topic_prefix``          ``ZHENGAI_TOPIC_PREFIX``
``--json``           —                                  — (machine output of list/show commands)
===================  =================================  ==========================================

An option left out falls back to the same option given to the enclosing group (``zhengai warnings
--store URL list`` and ``zhengai warnings list --store URL`` mean the same), then to the
environment variable, then to the setting's default — so every command reads the same store.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from enum import Enum
from types import SimpleNamespace
from typing import Any, TypeVar

import click

from zhengai.ingest.privacy import mask_text
from zhengai.ingest.settings import DEFAULT_STORE_URL, Settings, store_url

__all__ = [
    "SHARED",
    "broker_option",
    "choice_of",
    "echo_json",
    "json_option",
    "namespace",
    "resolve",
    "rulebook_option",
    "store_option",
    "topic_prefix_option",
]

F = TypeVar("F", bound=Callable[..., Any])

# option → (parameter name, Settings field, environment variable)
SHARED: dict[str, tuple[str, str, str]] = {
    "--store": ("store", "store_url", "ZHENGAI_STORE_URL"),
    "--broker": ("broker", "broker", "ZHENGAI_BROKER"),
    "--rulebook": ("rulebook", "rulebook", "ZHENGAI_RULEBOOK"),
    "--topic-prefix": ("topic_prefix", "topic_prefix", "ZHENGAI_TOPIC_PREFIX"),
}


def _help(option: str, extra: str = "") -> str:
    _, field, env = SHARED[option]
    description = Settings.model_fields[field].description or ""
    return f"{description} (env {env}){extra}"


def store_option(f: F) -> F:
    return click.option(
        "--store", metavar="URL", default=None, help=_help("--store", f"; default {DEFAULT_STORE_URL}")
    )(f)


def broker_option(f: F) -> F:
    return click.option("--broker", metavar="HOST:PORT", default=None, help=_help("--broker"))(f)


def rulebook_option(f: F) -> F:
    return click.option("--rulebook", metavar="DIR", default=None, help=_help("--rulebook"))(f)


def topic_prefix_option(f: F) -> F:
    return click.option("--topic-prefix", metavar="PREFIX", default=None, help=_help("--topic-prefix"))(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="JSON output for scripts (personal data masked)")(f)


def resolve(name: str, value: Any = None) -> Any:
    """A shared option's value: the command's own, else the enclosing groups', else the
    environment's, else the default (the store: ``DEFAULT_STORE_URL``)."""
    if value is not None:
        return value
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        given = ctx.params.get(name)
        if given is not None:
            return given
        ctx = ctx.parent
    if name == "store":
        return store_url()
    if name == "rulebook":
        return os.environ.get("ZHENGAI_RULEBOOK") or None
    return None  # broker, topic prefix: the settings objects read their environment variables


def namespace(**params: Any) -> SimpleNamespace:
    """The parameters as the attribute bag the command functions take (``args.store`` …), shared
    options resolved, ``-v`` from the top level."""
    for name, _, _ in SHARED.values():
        if name in params:
            params[name] = resolve(name, params[name])
    root = click.get_current_context(silent=True)
    params.setdefault("verbose", bool(root and root.find_root().params.get("verbose")))
    return SimpleNamespace(**params)


def choice_of(enum: type[Enum]) -> click.Choice:
    """A choice of the enum's values (the one list; never copied by hand)."""
    return click.Choice([m.value for m in enum])


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value


def echo_json(value: Any) -> None:
    """Print ``value`` as JSON (dates as ISO 8601), every string masked like the text output."""
    text = json.dumps(_masked(value), ensure_ascii=False, indent=2, default=_default)
    sys.stdout.write(text + "\n")


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
