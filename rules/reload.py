"""Rulebook hot reload: watch the folder, swap the running ``RuleSet`` only for one that loads.

The quality office edits YAML while workers run. ``RulebookWatcher.check()`` (the worker calls it
on a timer) looks at the folder's ``*.yaml`` names, sizes and modification times; when they
change it loads the whole folder. A rulebook that loads replaces the running one in a single
reference swap (a ``RuleSet`` is immutable, so an evaluation in progress finishes on the old
one). A rulebook that does not load is refused: every located error is logged (file, line,
field — the quality office's words, no personal data) and counted, and the running rules go on
evaluating. The refused state is remembered, so the same broken files are reported once, and a
later save — fixed or not — is looked at again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from zhengai.ingest import metrics
from zhengai.rules.loader import RulebookError, RuleSet, default_rulebook_path, load_rulebook

__all__ = ["RulebookWatcher"]

log = logging.getLogger("zhengai.rules.reload")

Fingerprint = tuple[tuple[str, int, int], ...]


class RulebookWatcher:
    def __init__(self, folder: Path | str | None = None, *, loader: Callable[[Path], RuleSet] = load_rulebook):
        self.folder = Path(folder) if folder is not None else default_rulebook_path()
        self._loader = loader
        self._fingerprint = self._scan()
        # At start a broken rulebook is fatal: a worker never runs without rules.
        self.rules: RuleSet = loader(self.folder)
        metrics.RULES_LOADED.set(sum(len(v) for v in self.rules.by_metric.values()))
        log.info("rulebook %s loaded: %d rules, version %s", self.folder, len(self.rules.rules), self.rules.version)

    def _scan(self) -> Fingerprint:
        try:
            paths = sorted(self.folder.glob("*.yaml"))
            return tuple((p.name, (st := p.stat()).st_mtime_ns, st.st_size) for p in paths)
        except OSError:
            return ()

    def __call__(self) -> RuleSet:
        """The running rules (a callable, as ``WarningService`` takes them)."""
        return self.rules

    def check(self) -> bool | None:
        """Reload if the folder changed. True = a new rulebook runs, False = the change was refused
        (the old one runs), None = nothing to do."""
        fingerprint = self._scan()
        if fingerprint == self._fingerprint:
            return None
        self._fingerprint = fingerprint
        try:
            new = self._loader(self.folder)
        except RulebookError as exc:
            metrics.RULEBOOK_RELOADS.labels(result="refused").inc()
            metrics.RULEBOOK_ERRORS.inc(len(exc.errors))
            for error in exc.errors:
                log.error("rulebook change refused: %s", error)
            log.error("rulebook change in %s refused with %d error(s); still running version %s",
                      self.folder, len(exc.errors), self.rules.version)
            return False
        if new.version == self.rules.version:
            return None  # touched, not changed
        old, self.rules = self.rules, new
        metrics.RULEBOOK_RELOADS.labels(result="loaded").inc()
        metrics.RULES_LOADED.set(sum(len(v) for v in new.by_metric.values()))
        log.info("rulebook reloaded: version %s → %s, %d rules", old.version, new.version, len(new.rules))
        return True
