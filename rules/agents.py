"""Rules in the worker: the rulebook, reloaded while the worker runs.

Evaluation itself runs inside the one-hop judge (``zhengai.warnings.judge``), which reads the
current rulebook through :func:`current_rules`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from zhengai.ingest.app import get_app, settings
from zhengai.ingest.stream import run_blocking
from zhengai.rules.loader import RuleSet
from zhengai.rules.reload import RulebookWatcher

__all__ = ["watcher", "current_rules", "reload_rules", "use_source"]

log = logging.getLogger("zhengai.rules")
app = get_app()
_s = settings()


_source: Callable[[RulebookWatcher], Any] | None = None


def use_source(source: Callable[[RulebookWatcher], Any] | None) -> None:
    """Register what runs instead of the bare folder (the composition root: the published rulebook,
    ``zhengai.warnings.publications.PublishedRules``, given the folder's watcher)."""
    global _source
    _source = source
    watcher.cache_clear()


@lru_cache(maxsize=1)
def watcher() -> RulebookWatcher:
    folder = RulebookWatcher(_s.rulebook)
    return _source(folder) if _source is not None else folder


def current_rules() -> RuleSet:
    return watcher().rules


@app.timer(_s.rules_poll_interval)
async def reload_rules() -> None:
    await run_blocking(watcher().check)
