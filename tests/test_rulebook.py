"""The rulebook loader: the shipped rulebook loads clean; a broken one reports every mistake
with file, line and field, and nothing of it is loaded."""

import shutil
from pathlib import Path

import pytest

from zhengai.ingest.records import Level
from zhengai.rules.loader import RulebookError, default_rulebook_path, load_rulebook

BROKEN = Path(__file__).parent / "fixtures" / "broken_rulebook"


def test_default_rulebook_loads_clean_and_covers_five_levels():
    rs = load_rulebook()
    assert len(rs.rules) >= 50
    per_level = {lvl: sum(1 for r in rs.rules.values() if r.level is lvl) for lvl in Level}
    assert all(n >= 5 for n in per_level.values()), per_level
    assert all(r.name and not r.name.isascii() for r in rs.rules.values()), "rule names are Chinese-first"


def test_every_default_rule_carries_a_provenance_comment():
    for path in sorted(default_rulebook_path().glob("*.yaml")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("- id:"):
                above = "\n".join(lines[max(0, i - 6) : i])
                assert "#" in above, f"{path.name}:{i + 1} has no provenance comment above it"


def test_broken_rulebook_reports_all_errors_located():
    with pytest.raises(RulebookError) as info:
        load_rulebook(BROKEN)
    found = {(e.file.split("/")[-1], e.line, e.field) for e in info.value.errors}
    text = str(info.value)
    expected = {
        ("a.yaml", 13, "rules[0].treshold"),  # unknown key (typo)
        ("a.yaml", 14, "rules[1]"),  # target below the standard for higher_is_better
        ("a.yaml", 24, "rules[2].id"),  # duplicate id
        ("b.yaml", 6, "rules[0].direction"),  # not a direction
        ("b.yaml", 10, "rules[0].cycle"),  # not a cycle
        ("b.yaml", 11, "rules[0].freshness"),  # not a duration
        ("b.yaml", 28, "overrides[0].standard"),  # below the floor
        ("b.yaml", 30, "overrides[1].rule"),  # unknown rule
    }
    assert expected <= found, f"missing: {expected - found}\n{text}"
    assert len(info.value.errors) == len(expected), text
    assert "first defined at" in text and "floor: true" in text and "unknown key" in text


def test_a_broken_change_leaves_the_previous_rules_untouched(tmp_path):
    shutil.copytree(default_rulebook_path(), tmp_path / "rb")
    good = load_rulebook(tmp_path / "rb")
    (tmp_path / "rb" / "zz_bad.yaml").write_text("rules:\n  - id: x\n", encoding="utf-8")
    with pytest.raises(RulebookError) as info:
        load_rulebook(tmp_path / "rb")
    assert info.value.errors[0].file.endswith("zz_bad.yaml") and info.value.errors[0].line == 2
    assert len(good.rules) >= 50  # the loaded RuleSet is immutable and still whole


def test_yaml_syntax_error_and_duplicate_keys_are_located(tmp_path):
    (tmp_path / "s.yaml").write_text("rules:\n  - id: a\n    id: b\n  - [unclosed\n", encoding="utf-8")
    with pytest.raises(RulebookError) as info:
        load_rulebook(tmp_path)
    assert info.value.errors[0].field == "(syntax)"
    (tmp_path / "s.yaml").write_text("rules:\n  - id: a\n    id: b\n", encoding="utf-8")
    with pytest.raises(RulebookError) as info:
        load_rulebook(tmp_path)
    assert any(e.line == 3 and "duplicate key" in e.message for e in info.value.errors)
