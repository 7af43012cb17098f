"""Subcommands of `zhengai`, one module each.

The contract of a command module ``zhengai/commands/<name>.py``
----------------------------------------------------------------
1. The work is a plain function taking plain parameters (or an attribute bag ``args``) and
   returning an exit code: 0 fine, 1 refused/failed, 2 invalid configuration or input.
2. The module offers ``register(cli: click.Group) -> None``, which adds its command (or group)
   to ``cli``::

       import click
       from zhengai.commands._options import json_option, namespace, store_option

       def register(cli: click.Group) -> None:
           @cli.command("reports", help="…")
           @click.argument("term")
           @store_option                      # --store: never a new name for the same thing
           @json_option                       # --json for list/show output
           def reports(**params) -> int:
               return _reports(namespace(**params))   # args.store, args.term … resolved

3. The name is listed in :data:`COMMAND_MODULES`. A listed module that is missing or has no
   ``register`` stops the CLI with an error (it never silently vanishes).
4. Shared things use the shared options of ``_options.py`` (``--store``, ``--broker``,
   ``--rulebook``, ``--topic-prefix``, ``--json``); choices come from the enums
   (``choice_of(Status)``); output people read is Chinese first and masked
   (``zhengai.ingest.privacy.mask_text``). ``tests/test_cli.py`` checks every command's ``--help``.

Converting an argparse module (``register(subparsers)`` with ``add_parser``/``add_argument``)
-----------------------------------------------------------------------------------------
Keep the work functions as they are (they read ``args.x``); replace only ``register``:

- ``sub.add_parser("x", help=H)`` → ``@cli.command("x", help=H)`` (with subcommands:
  ``g = click.Group("x", help=H); cli.add_command(g)`` and ``@g.command(...)``);
- ``add_argument("name")`` → ``@click.argument("name")`` (``nargs="?"`` → ``required=False``,
  ``nargs="*"`` → ``nargs=-1``); ``add_argument("--opt", type=int, default=D, help=H)`` →
  ``@click.option("--opt", type=int, default=D, help=H)``; ``action="store_true"`` →
  ``is_flag=True``; ``action="append"`` → ``multiple=True``; ``required=True`` stays;
  ``choices=[…]`` → ``type=choice_of(TheEnum)`` where an enum exists;
- ``--store``/``--broker``/``--rulebook``/``--topic-prefix``/``--json`` → the decorators from
  ``_options.py`` (rename ``--store-url``, ``--rules``, ``--rules-dir`` to these);
- ``set_defaults(func=_work)`` → the decorated function's body ``return _work(namespace(**params))``.

Until converted, an argparse module still works: :func:`load_command_module` wraps a
``register(subparsers)`` (first parameter named ``sub``/``subparsers`` or annotated with argparse)
in a Click command that hands its arguments to argparse (``zhengai x --help`` shows argparse's help).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
from types import ModuleType, SimpleNamespace
from typing import Any

import click

__all__ = ["COMMAND_MODULES", "CommandModuleError", "load_command_module"]

# Subcommand modules under zhengai/commands/, each with register(cli).
COMMAND_MODULES = ("worker", "connectors", "warnings", "notify", "web", "forms", "status_data", "report", "portrait")


class CommandModuleError(RuntimeError):
    """A listed command module cannot be imported or has no ``register``."""


def load_command_module(name: str) -> Any:
    """The module ``zhengai.commands.<name>`` (or an adapter with ``register(cli)`` for an
    argparse-style one)."""
    try:
        module = importlib.import_module(f"zhengai.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"zhengai.commands.{name}":
            raise CommandModuleError(f"zhengai.commands.{name} (listed in COMMAND_MODULES, not installed)") from exc
        raise
    register = getattr(module, "register", None)
    if not callable(register):
        raise CommandModuleError(f"zhengai.commands.{name} has no register(cli)")
    if _is_argparse(register):
        return SimpleNamespace(register=lambda cli: _adapt(module, cli))
    return module


def _is_argparse(register: Any) -> bool:
    params = list(inspect.signature(register).parameters.values())
    if not params:
        return False
    first = params[0]
    return first.name in ("sub", "subparsers") or "argparse" in str(first.annotation)


def _adapt(module: ModuleType, cli: click.Group) -> None:
    parser = argparse.ArgumentParser(prog="zhengai")
    sub = parser.add_subparsers(dest="command", required=True)
    module.register(sub)
    for name, subparser in sub.choices.items():

        def run(ctx: click.Context, _parser: argparse.ArgumentParser = subparser) -> int:
            args = _parser.parse_args(ctx.args)
            if not hasattr(args, "verbose"):
                args.verbose = bool(ctx.find_root().params.get("verbose"))
            return args.func(args)

        cli.add_command(
            click.Command(
                name,
                callback=click.pass_context(run),
                help=subparser.description or f"(argparse) {name}",
                context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
                add_help_option=False,
            )
        )
