"""Errors people understand: every shipped YAML validates against the JSON Schema generated from
its model (and the committed schema is what the models give today); each file's header names its
schema and cites only documents that exist; lint messages name the rule by id and 中文名, Chinese
first, with the offending value and what is allowed."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from zhengai.cli import main
from zhengai.rules.loader import RulebookError, load_rulebook
from zhengai.schemas import SCHEMAS, render

ROOT = Path(__file__).resolve().parents[1]
BROKEN = ROOT / "tests" / "fixtures" / "broken_rulebook"


def _plain(value):
    """YAML values as JSON sees them (YAML reads 2026-10-01 as a date; JSON has strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def _shipped() -> list[tuple[str, Path]]:
    return [(name, path) for name, (_, _, pattern) in SCHEMAS.items() for path in sorted(ROOT.glob(pattern))]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_committed_schema_is_what_the_models_give(name):
    _, rel, _ = SCHEMAS[name]
    committed = (ROOT / rel).read_text(encoding="utf-8")
    assert committed == render(name), f"{rel} is stale: run `zhengai rules schema`"
    jsonschema.Draft202012Validator.check_schema(json.loads(committed))


def test_every_shipped_yaml_validates_against_its_schema_named_in_its_header():
    shipped = _shipped()
    assert len(shipped) == 22  # 5 rule files, 15 connectors (11 metric-table systems), notify.yaml, calendar.yaml
    for name, path in shipped:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        m = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
        assert m, f"{path}: the first line names the schema"
        schema_path = (path.parent / m.group(1)).resolve()
        assert schema_path == (ROOT / SCHEMAS[name][1]).resolve()
        validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text(encoding="utf-8")))
        errors = [
            f"{list(e.path)}: {e.message}"
            for e in validator.iter_errors(_plain(yaml.safe_load(path.read_text("utf-8"))))
        ]
        assert errors == [], f"{path}: {errors}"


def test_the_schema_catches_what_an_editor_should_flag():
    validator = jsonschema.Draft202012Validator(json.loads(render("rulebook")))
    bad = _plain(yaml.safe_load((BROKEN / "a.yaml").read_text(encoding="utf-8")))
    messages = [e.message for e in validator.iter_errors(bad)]
    assert any("treshold" in m for m in messages), messages  # the misspelt key
    rule = {
        "id": "course.x",
        "name": "甲",
        "metric": "course.x",
        "level": "course",
        "direction": "upwards",
        "target": 1,
        "standard": 1,
        "warning": 1,
        "cycle": "week",
        "responsible": "course_teacher",
    }
    assert [list(e.path) for e in validator.iter_errors({"rules": [rule]})] == [["rules", 0, "direction"]]


def test_headers_cite_documents_that_exist():
    for _, path in _shipped():
        head = [line for line in path.read_text(encoding="utf-8").splitlines()[:60] if line.startswith("#")]
        for cited in re.findall(r"[\w./-]+\.md", "\n".join(head)):
            assert (ROOT / cited).exists(), f"{path.name} cites {cited}, which is not in the project"


def test_lint_messages_name_the_rule_and_are_chinese_first(capsys):
    with pytest.raises(RulebookError) as info:
        load_rulebook(BROKEN)
    by_field = {e.field: e.message for e in info.value.errors}
    for message in by_field.values():
        assert not message[0].isascii(), f"not Chinese first: {message}"
        zh, _, en = message.partition("（")
        assert en, f"no English after the Chinese: {message}"
    assert by_field["rules[0].treshold"].startswith("规则 course.attendance_rate「学生到课率」：未知字段 'treshold'")
    assert by_field["rules[0].direction"] == (
        "规则 student.gpa「学期平均学分绩点」：方向 direction 为 'upwards'，应为其中之一：'higher_is_better', "
        "'lower_is_better', 'boolean' or 'range'"
        "（Input should be 'higher_is_better', 'lower_is_better', 'boolean' or 'range'）"
    )
    assert "目标值 80.0、标准值 90.0、预警值 85.0" in by_field["rules[1]"]
    assert by_field["overrides[0].standard"].startswith(
        "规则 student.failed_courses「学期不及格课程门数」 @ D01：标准值 5.0 比学校标准值 3.0 更宽松"
    )
    assert main(["rules", "lint", str(BROKEN)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("规则库有 8 处错误，未载入") and "规则库未通过校验：8 处错误" in err


def test_a_number_that_is_not_a_number_names_value_and_what_is_allowed(tmp_path):
    text = (ROOT / "rules" / "rulebook" / "course.yaml").read_text(encoding="utf-8")
    (tmp_path / "course.yaml").write_text(
        text.replace("    standard: 90\n", "    standard: 九十\n", 1), encoding="utf-8"
    )
    with pytest.raises(RulebookError) as info:
        load_rulebook(tmp_path)
    (error,) = info.value.errors
    assert error.field.endswith(".standard")
    assert error.message.startswith("规则 course.attendance_rate「学生到课率」：标准值 standard 为 '九十'，应为数字")


def test_schema_command_check_passes_on_the_committed_tree():
    assert main(["rules", "schema", "--check", "--out", str(ROOT)]) == 0
