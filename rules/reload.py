"""Rulebook hot reload: the running rules change only as a whole, valid set.

The quality office edits YAML while workers run. ``RulebookWatcher.check()`` (the worker calls it
on a timer) looks at the folder's ``*.yaml`` names, sizes and modification times; when they
change it loads the whole folder. The new rulebook replaces the running one in a single
reference swap (a ``RuleSet`` is immutable, so an evaluation in progress finishes on the old one)
only if it is a whole set:

* every file loads (a broken file, an empty file — what a non-atomic editor save leaves for a
  moment — refuse the change: ``load_rulebook`` reports them, located);
* no file of the running rulebook disappeared (deleted, or renamed to ``.yml``, which is not read);
* the number of rules does not drop. To retire a rule set ``enabled: false``; a smaller rulebook
  is accepted by restarting the worker (a deliberate act, not an editor's half-saved state).

A refused change is logged at ERROR (every located error: file, line, field — the quality
office's words, no personal data) and counted, and the running rules go on evaluating. The
refused state is remembered, so the same broken files are reported once; a later save is looked
at again.

At start a folder that does not load is not fatal when the composition root registered a
*fallback* (``use_fallback``; the worker registers the last version published with ``zhengai
rules publish``): the worker starts on it, says so at ERROR, and takes the folder as soon as it
loads. Without a fallback the ``RulebookError`` stands: a worker never runs without rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from zhengai.ingest import metrics
from zhengai.rules.loader import RulebookError, RuleError, RuleSet, default_rulebook_path, load_rulebook

__all__ = ["RulebookWatcher", "use_fallback"]

log = logging.getLogger("zhengai.rules.reload")

Fingerprint = tuple[tuple[str, int, int], ...]
Fallback = Callable[[], "RuleSet | None"]

_fallback: Fallback | None = None


def use_fallback(fallback: Fallback | None) -> None:
    """Register where a watcher finds the rules to start on when the folder does not load (the
    composition root knows the store; rules/ does not import the floors above it)."""
    global _fallback
    _fallback = fallback


class RulebookWatcher:
    """``.rules`` is the running ``RuleSet``; ``.check()`` reloads when the folder changed."""

    def __init__(
        self,
        folder: Path | str | None = None,
        *,
        loader: Callable[[Path], RuleSet] = load_rulebook,
        fallback: Fallback | None = None,
    ):
        self.folder = Path(folder) if folder is not None else default_rulebook_path()
        self._loader = loader
        self._fingerprint = self._scan()
        self.on_fallback = False  # running a published version because the folder did not load
        try:
            self.rules: RuleSet = loader(self.folder)
        except RulebookError as exc:
            published = self._published(fallback if fallback is not None else _fallback)
            if published is None:
                raise
            _log_errors(exc.errors)
            self.rules, self.on_fallback = published, True
            log.error(
                "rulebook %s does not load (%d error(s)); starting on the last published version %s (%d rules). "
                "The folder is taken as soon as it loads.",
                self.folder,
                len(exc.errors),
                published.version,
                len(published.rules),
            )
        metrics.RULES_LOADED.set(sum(len(v) for v in self.rules.by_metric.values()))
        log.info("rulebook %s loaded: %d rules, version %s", self.folder, len(self.rules.rules), self.rules.version)

    @staticmethod
    def _published(fallback: Fallback | None) -> RuleSet | None:
        if fallback is None:
            return None
        try:
            return fallback()
        except Exception as exc:  # noqa: BLE001 — the store may be down too; then the load error stands
            log.error("the last published rulebook cannot be read (%s)", type(exc).__name__)
            return None

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
            return self._refuse(exc.errors)
        problems = [] if self.on_fallback else self._shrinks(new)
        if problems:
            return self._refuse(problems)
        if new.version == self.rules.version:
            return None  # touched, not changed
        old, self.rules, self.on_fallback = self.rules, new, False
        metrics.RULEBOOK_RELOADS.labels(result="loaded").inc()
        metrics.RULES_LOADED.set(sum(len(v) for v in new.by_metric.values()))
        log.info("rulebook reloaded: version %s → %s, %d rules", old.version, new.version, len(new.rules))
        return True

    def _shrinks(self, new: RuleSet) -> list[RuleError]:
        """A loadable rulebook that is not the whole set: a running file is gone, or rules are."""
        where = str(self.folder)
        problems = []
        present = {Path(f).name for f in new.files}
        for name in sorted({Path(f).name for f in self.rules.files} - present):
            renamed = [p.name for p in self.folder.glob(Path(name).stem + ".*") if p.name != name]
            hint = f"（改名为 {', '.join(renamed)}？只读取 *.yaml）" if renamed else "（已删除？）"
            problems.append(
                RuleError(
                    str(self.folder / name),
                    1,
                    "(file)",
                    f"运行中的规则文件消失{hint} running rule file {name} disappeared",
                )
            )
        dropped = sorted(set(self.rules.rules) - set(new.rules))
        if len(new.rules) < len(self.rules.rules):
            shown = ", ".join(dropped[:8]) + (" …" if len(dropped) > 8 else "")
            problems.append(
                RuleError(
                    where,
                    1,
                    "(rules)",
                    f"规则数将从 {len(self.rules.rules)} 减少到 {len(new.rules)}（缺少 {shown}）；"
                    f"停用规则请用 enabled: false，"
                    "确需删除请重启 worker（rule count would drop）",
                )
            )
        return problems

    def _refuse(self, errors: Iterable[RuleError]) -> bool:
        errors = sorted(errors)
        metrics.RULEBOOK_RELOADS.labels(result="refused").inc()
        metrics.RULEBOOK_ERRORS.inc(len(errors))
        _log_errors(errors)
        log.error(
            "rulebook change in %s refused with %d error(s); still running version %s (%d rules)",
            self.folder,
            len(errors),
            self.rules.version,
            len(self.rules.rules),
        )
        return False


def _log_errors(errors: Iterable[RuleError]) -> None:
    for error in errors:
        log.error("rulebook change refused: %s", error)
