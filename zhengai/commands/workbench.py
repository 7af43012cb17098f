"""The quality office's workbench under `zhengai rules`: backtest, 一览表 export/import, schemas,
versions/diff/restore, tuning. Each command lives in its own module; this one registers them."""

from __future__ import annotations

import argparse
import importlib

__all__ = ["register_rules"]

_MODULES = ("backtest", "schemas", "workbook", "versions", "tuning")


def register_rules(rules_subparsers: argparse._SubParsersAction) -> None:
    for name in _MODULES:
        importlib.import_module(f"zhengai.commands.{name}").register(rules_subparsers)
