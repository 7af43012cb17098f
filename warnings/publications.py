"""Publishing is the gate: the rulebook that runs is the one last published.

``publish`` stores the whole rulebook folder as it is (every file's text: comments, overrides and
all) with who, why and when, after it loads clean. The first publication is the *baseline* — one
row, not eighty 首次发布 changes — and every later one records what changed against the previous
(rule fields and overrides, old → new). ``restore`` writes an earlier publication's files back into
the folder and publishes them again as a *restore* (history only grows).

``PublishedRules`` is what the worker runs: the latest publication in the store, polled on the
worker's rules timer — saving a file changes nothing until it is published. Until anything has
been published it runs the folder with hot reload, as before (a new deployment works at once,
and the first ``publish`` takes over).

Each publication also records the per-rule versions (``WarningStore.record_rule_versions``), so
verdicts name a rule version the quality office can look up, and 误报 can be counted per version.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from zhengai.rules.loader import RulebookError, RuleSet, load_rulebook
from zhengai.warnings.publication_schema import PublicationRow
from zhengai.warnings.schema import RuleVersionRow

__all__ = [
    "Published",
    "latest_publication_rules",
    "publish",
    "publications",
    "publication",
    "rules_of",
    "diff_rules",
    "restore",
    "PublishedRules",
]

log = logging.getLogger("zhengai.warnings.publications")
_FIELDS = (
    "name",
    "direction",
    "target",
    "standard",
    "warning",
    "expected",
    "enabled",
    "cycle",
    "freshness",
    "responsible",
    "office",
    "floor",
    "lifecycle",
    "inclusive",
    "unit",
)


@dataclass(frozen=True)
class Published:
    id: int | None  # None: nothing new (the folder is what was last published)
    kind: str
    version: str
    rules: int
    changes: list


def _files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.yaml"))}


def rules_of(files: dict[str, str]) -> RuleSet:
    """The RuleSet a publication holds (loaded exactly as the folder was)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        return load_rulebook(Path(tmp))


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, tuple):
        return list(value)
    return value.value if hasattr(value, "value") else value


def diff_rules(old: RuleSet | None, new: RuleSet) -> list[list]:
    """[rule id, field, old, new] for every difference (``override@ENTITY`` for overrides)."""
    if old is None:
        return []
    out: list[list] = []
    for rid in sorted(set(old.rules) | set(new.rules)):
        a, b = old.rules.get(rid), new.rules.get(rid)
        if a is None or b is None:
            out.append([rid, "(rule)", None if a is None else a.name, None if b is None else b.name])
            continue
        for f in _FIELDS:
            x, y = _plain(getattr(a, f)), _plain(getattr(b, f))
            if x != y:
                out.append([rid, f, x, y])
        oa, ob = old.overrides_for(rid), new.overrides_for(rid)
        for entity in sorted(set(oa) | set(ob)):
            x = oa[entity].model_dump(mode="json") if entity in oa else None
            y = ob[entity].model_dump(mode="json") if entity in ob else None
            if x != y:
                out.append([rid, f"override@{entity}", x, y])
    return out


def publications(store) -> list[PublicationRow]:
    with store.session() as s:
        return list(s.scalars(select(PublicationRow).order_by(PublicationRow.id)))


def publication(store, pub_id: int) -> PublicationRow | None:
    with store.session() as s:
        return s.get(PublicationRow, pub_id)


def _latest(store) -> PublicationRow | None:
    with store.session() as s:
        return s.scalars(select(PublicationRow).order_by(PublicationRow.id.desc()).limit(1)).first()


def _record(
    store, files: dict[str, str], *, author: str, reason: str, at: datetime, restored_from: int | None = None
) -> Published:
    if not author.strip() or not reason.strip():
        raise ValueError("发布须写明作者和原因（publishing needs an author and a reason）")
    rules = rules_of(files)  # raises RulebookError: nothing unloadable is ever published
    prev = _latest(store)
    if prev is not None and prev.version == rules.version:
        return Published(None, "unchanged", rules.version, len(rules.rules), [])
    kind = "baseline" if prev is None else ("restore" if restored_from is not None else "change")
    changes = diff_rules(rules_of(prev.files) if prev is not None else None, rules)
    _record_rule_versions(store, rules, author=author, reason=reason, at=at)
    with store.session() as s, s.begin():
        row = PublicationRow(
            kind=kind,
            version=rules.version,
            files=files,
            rules=len(rules.rules),
            changes=changes,
            restored_from=restored_from,
            author=author.strip(),
            reason=reason.strip(),
            published_at=at,
        )
        s.add(row)
        s.flush()
        pub_id = row.id
    return Published(pub_id, kind, rules.version, len(rules.rules), changes)


def _record_rule_versions(store, rules: RuleSet, *, author: str, reason: str, at: datetime) -> None:
    """One ``rule_versions`` row per rule version not recorded before (as
    ``WarningStore.record_rule_versions``, but a restored version that exists already is not
    written twice: verdicts name it, and its row holds its content)."""
    with store.session() as s, s.begin():
        latest: dict[str, RuleVersionRow] = {}
        known: set[tuple[str, str]] = set()
        for row in s.scalars(select(RuleVersionRow).order_by(RuleVersionRow.id)):
            latest[row.rule_id] = row
            known.add((row.rule_id, row.version))
        for rule in rules.rules.values():
            prev = latest.get(rule.id)
            if (rule.id, rule.version) in known:
                continue
            content = rule.model_dump(mode="json")
            changes = (
                {}
                if prev is None
                else {
                    k: [prev.content.get(k), content.get(k)]
                    for k in sorted(set(prev.content) | set(content))
                    if prev.content.get(k) != content.get(k)
                }
            )
            s.add(
                RuleVersionRow(
                    rule_id=rule.id,
                    version=rule.version,
                    content=content,
                    changes=changes,
                    author=author.strip(),
                    reason=reason.strip(),
                    published_at=at,
                )
            )


def publish(store, folder: Path, *, author: str, reason: str, at: datetime) -> Published:
    """Publish the folder as it is now (see the module docstring)."""
    return _record(store, _files(Path(folder)), author=author, reason=reason, at=at)


def restore(store, pub_id: int, folder: Path, *, author: str, reason: str, at: datetime) -> Published:
    """Write publication ``pub_id``'s files into ``folder`` and publish them as a restore. A rule
    file of the folder that the publication did not have is kept aside as ``<name>.before-restore``
    (the loader reads only ``*.yaml``), never deleted."""
    row = publication(store, pub_id)
    if row is None:
        raise KeyError(f"没有第 {pub_id} 版发布（no publication #{pub_id}）")
    rules_of(row.files)  # the stored version still loads under today's model, or nothing is touched
    folder = Path(folder)
    for path in folder.glob("*.yaml"):
        if path.name not in row.files:
            path.rename(path.with_name(path.name + ".before-restore"))
    for name, text in row.files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return _record(store, dict(row.files), author=author, reason=reason, at=at, restored_from=pub_id)


def latest_publication_rules(engine) -> RuleSet | None:
    """The latest publication's rules, or None when there is none (or its table is not there yet)."""
    from sqlalchemy import inspect
    from sqlalchemy.orm import Session

    if not inspect(engine).has_table(PublicationRow.__tablename__):
        return None
    with Session(engine) as s:
        row = s.scalars(select(PublicationRow).order_by(PublicationRow.id.desc()).limit(1)).first()
    return rules_of(row.files) if row is not None else None


class PublishedRules:
    """The running rules as the latest publication; the folder (hot reload) until one exists.

    The same surface as ``rules.reload.RulebookWatcher``: ``.rules``, ``check()``, callable."""

    def __init__(self, store, folder_watcher):
        self.store, self._folder = store, folder_watcher
        self._id: int | None = None
        self.rules: RuleSet | None = folder_watcher.rules if folder_watcher is not None else None
        self._check()  # at start a store that cannot be read is an error, as a folder that does not load
        if self.rules is None:
            raise LookupError("nothing published and no rulebook folder")

    def __call__(self) -> RuleSet:
        assert self.rules is not None  # __init__ refuses to start without rules; later checks only replace them
        return self.rules

    def check(self) -> bool | None:
        """True = a newly published rulebook runs; False = it could not be read (the running one
        stays); None = nothing new. The store being down is not fatal: the rules keep running."""
        try:
            return self._check()
        except RulebookError as exc:
            log.error(
                "the latest published rulebook does not load (%d error(s)); still running version %s",
                len(exc.errors),
                self.rules.version if self.rules else None,
            )
        except Exception as exc:  # noqa: BLE001 — the store may be unreachable for a while
            log.error(
                "cannot read the published rulebook (%s); still running version %s",
                type(exc).__name__,
                self.rules.version if self.rules else None,
            )
        return False

    def _check(self) -> bool | None:
        with self.store.session() as s:
            latest = s.scalar(select(func.max(PublicationRow.id)))
        if latest is None:
            if self._folder is None:
                return None
            changed = self._folder.check()
            self.rules = self._folder.rules
            return changed
        if latest == self._id:
            return None
        row = publication(self.store, latest)
        assert row is not None
        self.rules, self._id = rules_of(row.files), latest
        log.info("running published rulebook #%s (%s, version %s, %d rules)", row.id, row.kind, row.version, row.rules)
        return True
