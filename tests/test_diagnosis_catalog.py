"""The 诊断项目/诊断要素 catalog (004 附件1) and its cadences (004:376–484) against the default rulebook."""

import pytest

from zhengai.ingest.records import Level
from zhengai.rules.diagnosis import CatalogError, load_catalog
from zhengai.rules.loader import load_rulebook


def test_every_default_rule_has_an_element_and_every_catalog_rule_exists():
    catalog = load_catalog()
    rules = load_rulebook()
    assert catalog.check_rules(rules.rules) == []
    for rule_id in rules.rules:
        el = catalog.element_of(rule_id)
        assert el is not None and el.level is Level(rule_id.split(".")[0])
        assert el.code.startswith(el.project_code + ".")


def test_seven_projects_thirty_six_elements_as_the_seed_counts():
    catalog = load_catalog()  # 004:778 本表设 7 个诊断项目，36 个诊断要素
    assert len(catalog.projects) == 7
    assert len(catalog.elements) == 36
    assert catalog.element("3.5").name == "专业教学团队"
    assert [p.name for p in catalog.projects][-1] == "体系运行效果"


def test_cadences_follow_the_seed_table():
    catalog = load_catalog()
    for level in (Level.major, Level.course, Level.teacher):
        assert catalog.cadences[level].self_cadence == "month"  # 004:406, 004:430, 004:457
    assert catalog.cadences[Level.major].assessment.assessor == "教务处"
    assert catalog.cadences[Level.teacher].assessment.cadence == "term"
    assert catalog.cadences[Level.teacher].assessment.assessor == "二级学院"
    assert catalog.cadences[Level.school].assessment.assessor == "质量办"
    assert all(c.comprehensive == "year" for c in catalog.cadences.values())
    el = catalog.element_of("course.attendance_rate")
    assert (el.code, el.cadence, el.assessor, el.assessment_cadence) == ("4.4", "month", "教务处", "term")
    assert catalog.element_of("school.unknown_rule") is None


def test_a_rule_added_to_the_rulebook_without_an_element_is_reported():
    catalog = load_catalog()
    problems = catalog.check_rules([*load_rulebook().rules, "major.new_indicator"])
    assert problems == ["规则未归入诊断要素：major.new_indicator（rule has no element）"]


def test_bad_catalog_is_rejected_with_every_error(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text(
        "projects:\n  - {code: '1', name: 甲, elements: [{code: '2.1', name: 乙}]}\n"
        "cadences: {school: {self: monthly, assessment: {cadence: year}, comprehensive: year}}\n"
        "rules:\n  school.x: {element: '9.9'}\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogError) as err:
        load_catalog(bad)
    text = "\n".join(err.value.errors)
    for needle in (
        "2.1 不属于诊断项目 1",
        "cadences.school.self",
        "缺少考核主体",
        "缺少层面 major",
        "9.9 不在诊断项目表中",
    ):
        assert needle in text
