"""The last published rulebook, read back from the store (``zhengai rules publish`` writes it).

``record_rule_versions`` stores one row per rule version that changed, with the rule's whole
content; the latest row of every rule is therefore the rulebook as last published. The worker
starts on it when its rulebook folder does not load (``zhengai.rules.reload.use_fallback``).

Since whole publications are stored (``publications.py``, ``zhengai rules publish``), the latest
one is the published rulebook, overrides included. Only a store with rule versions from before
them falls back to the rows here: rules without overrides, and a rule deleted from the folder
after it was published still part of the set.
"""

from __future__ import annotations

import hashlib
import logging

from pydantic import ValidationError
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from zhengai.rules.kinds import parse_rule
from zhengai.rules.loader import RuleSet
from zhengai.rules.model import Rule
from zhengai.warnings.schema import RuleVersionRow

__all__ = ["published_rulebook"]

log = logging.getLogger("zhengai.warnings.published")


def published_rulebook(url: str) -> RuleSet | None:
    """The latest published version of every rule, or None when nothing was ever published.
    Where whole publications exist (``publications.publish``) the latest one, overrides included."""
    engine = create_engine(url)
    try:
        from zhengai.warnings.publications import latest_publication_rules

        whole = latest_publication_rules(engine)
        if whole is not None:
            return whole
        with Session(engine) as s:
            latest: dict[str, RuleVersionRow] = {}
            for row in s.scalars(select(RuleVersionRow).order_by(RuleVersionRow.id)):
                latest[row.rule_id] = row
    finally:
        engine.dispose()
    rules: dict[str, Rule] = {}
    for rule_id, row in sorted(latest.items()):
        try:
            rules[rule_id] = parse_rule(row.content)  # any kind
        except ValidationError as exc:  # published under an older model: skip it, say so
            log.error(
                "published rule %s version %s no longer validates (%d error(s)); left out",
                rule_id,
                row.version,
                exc.error_count(),
            )
    if not rules:
        return None
    digest = hashlib.sha256("|".join(f"{r.id}@{r.version}" for r in rules.values()).encode()).hexdigest()[:12]
    return RuleSet.of(rules, {}, f"published-{digest}")
