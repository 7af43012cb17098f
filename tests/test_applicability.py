"""Applicability: a rule tagged by institution type or province indicator set is judged only where
it applies; elsewhere its metric is still known (stored, not dead-lettered) but not judged. The
school's type and province come from its configuration (ZHENGAI_INSTITUTION_TYPE / _PROVINCE)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from zhengai.ingest.records import Level, Observation
from zhengai.rules.applicability import AppliesTo, Institution, applies, institution
from zhengai.rules.engine import evaluate_batch
from zhengai.rules.loader import RulebookError, default_rulebook_path, load_rulebook
from zhengai.warnings.notify.testing import sample_college

TAGS = {
    "course.attendance_rate": "    applies_to: {not_institution_types: [新建院校]}\n",  # "*": not for 新建院校
    "course.pass_rate": "    applies_to: {institution_types: [国家示范, 省级示范]}\n",  # "**": 省级以上示范 only
    "course.excellent_rate": "    applies_to: {provinces: [浙江]}\n",  # in 浙江's indicator set only
}


@pytest.mark.parametrize(
    ("kind", "province", "judged"),
    [
        (None, None, {"course.attendance_rate", "course.pass_rate", "course.excellent_rate"}),  # unknown school: all
        ("新建院校", "江苏", set()),
        ("省级示范", "浙江", {"course.attendance_rate", "course.pass_rate", "course.excellent_rate"}),
        ("其他", "浙江", {"course.attendance_rate", "course.excellent_rate"}),
    ],
)
def test_tagged_rules_are_judged_only_where_they_apply(tmp_path, monkeypatch, kind, province, judged):
    text = (default_rulebook_path() / "course.yaml").read_text(encoding="utf-8")
    for rule_id, tag in TAGS.items():
        head = f"  - id: {rule_id}\n"
        assert head in text
        text = text.replace(head, head + tag, 1)
    (tmp_path / "course.yaml").write_text(text, encoding="utf-8")
    for name, value in (("ZHENGAI_INSTITUTION_TYPE", kind), ("ZHENGAI_PROVINCE", province)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    institution.cache_clear()
    try:
        rules = load_rulebook(tmp_path)
    finally:
        institution.cache_clear()
    assert set(TAGS) <= set(rules.rules)  # every rule is kept …
    assert {rid for rid in TAGS if rules.for_metric(rules.rules[rid].metric)} == judged  # … judged where it applies
    college = sample_college(courses=1)
    at = datetime(2026, 10, 12, tzinfo=UTC)
    obs = [
        Observation(
            level=Level.course,
            entity_id="C001",
            metric=rules.rules[rid].metric,
            value=50.0,
            period="2026-W41",
            observed_at=at,
            source="test",
        )
        for rid in TAGS
    ]
    result = evaluate_batch(rules, obs, college.directory, at)
    assert {v.rule_id for v in result.verdicts} == judged and result.dead_letters == []


def test_applies_is_a_pure_function_of_tags_and_school():
    school = Institution(institution_type="新建院校", province="浙江")
    assert applies(None, school)
    assert not applies(AppliesTo(not_institution_types=("新建院校",)), school)
    assert applies(AppliesTo(provinces=("浙江",)), school) and not applies(AppliesTo(provinces=("江苏",)), school)


def test_a_misspelt_applicability_key_is_a_located_chinese_error(tmp_path):
    text = (default_rulebook_path() / "course.yaml").read_text(encoding="utf-8")
    head = "  - id: course.attendance_rate\n"
    (tmp_path / "course.yaml").write_text(
        text.replace(head, head + "    applies_to: {institution_type: [新建院校]}\n", 1), encoding="utf-8"
    )
    with pytest.raises(RulebookError) as info:
        load_rulebook(tmp_path)
    (error,) = info.value.errors
    assert error.field.endswith("applies_to.institution_type")
    assert error.message.startswith("规则 course.attendance_rate「学生到课率」：未知字段 'institution_type'")


def test_the_shipped_star_diagnosis_point_is_not_judged_in_a_new_college(tmp_path, monkeypatch):
    """004:781: points marked "*" are not diagnosis indicators for 新建高职院校; 社会服务 (004:694) is
    one — teacher.service_income. Every other shipped rule is judged there as anywhere."""
    import shutil

    from zhengai.rules.loader import default_rulebook_path, load_rulebook

    monkeypatch.delenv("ZHENGAI_PROVINCE", raising=False)
    monkeypatch.delenv("ZHENGAI_INSTITUTION_TYPE", raising=False)
    for name in ("anywhere", "new"):  # a folder each: the loader keeps what it read per folder
        shutil.copytree(default_rulebook_path(), tmp_path / name)
    institution.cache_clear()  # the school's type is read once per process
    everywhere = {r.id for rs in load_rulebook(tmp_path / "anywhere").by_metric.values() for r in rs}
    monkeypatch.setenv("ZHENGAI_INSTITUTION_TYPE", "新建院校")
    institution.cache_clear()
    try:
        shipped = load_rulebook(tmp_path / "new")
    finally:
        institution.cache_clear()
    new_college = {r.id for rs in shipped.by_metric.values() for r in rs}
    assert everywhere - new_college == {"teacher.service_income"}
    assert "teacher.service_income" in shipped.rules  # known (stored, shown), not judged


def test_lint_says_which_rules_this_school_does_not_judge():
    import os
    import subprocess
    import sys

    def lint(**env: str) -> str:
        clean = {k: v for k, v in os.environ.items() if k not in ("ZHENGAI_INSTITUTION_TYPE", "ZHENGAI_PROVINCE")}
        done = subprocess.run(
            [sys.executable, "-m", "zhengai", "rules", "lint"],
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "不适用" not in lint()  # nothing configured: every rule is judged, nothing to say
    said = lint(ZHENGAI_INSTITUTION_TYPE="新建院校")
    assert "本校（新建院校）不适用、不评估的规则 1 条：teacher.service_income" in said
