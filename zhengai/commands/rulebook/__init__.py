"""The quality office's workbench under `zhengai rules`: backtest, 一览表 export/import, schemas,
versions/diff/restore, 误报 and tuning. Each command lives in its own module here; ``register``
adds them all to the ``rules`` group (``zhengai/cli.py``)."""

from __future__ import annotations

import importlib

import click

__all__ = ["register"]

_MODULES = ("backtest", "schemas", "workbook", "versions", "tuning")


def register(rules: click.Group) -> None:
    for name in _MODULES:
        importlib.import_module(f"zhengai.commands.rulebook.{name}").register(rules)
