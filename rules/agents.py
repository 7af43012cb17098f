"""Rules in the worker: the rulebook, reloaded while the worker runs.

Evaluation itself runs inside the one-hop judge (``zhengai.warnings.judge``), which reads the
current rulebook through :func:`current_rules`.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from zhengai.ingest.app import get_app, settings
from zhengai.ingest.stream import run_blocking
from zhengai.rules.loader import RuleSet
from zhengai.rules.reload import RulebookWatcher

__all__ = ["watcher", "current_rules", "reload_rules"]

log = logging.getLogger("zhengai.rules")
app = get_app()
_s = settings()


@lru_cache(maxsize=1)
def watcher() -> RulebookWatcher:
    return RulebookWatcher(_s.rulebook)


def current_rules() -> RuleSet:
    return watcher().rules


@app.timer(_s.rules_poll_interval)
async def reload_rules() -> None:
    await run_blocking(watcher().check)
