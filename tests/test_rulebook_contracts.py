"""The rulebook loader's closed contract (issue 9): whatever the files hold, ``load_rulebook``
raises only ``RulebookError`` with located errors, resource limits come before the work, and
``zhengai rules lint`` never prints a traceback. Property-based over generated hostile YAML and
mutated copies of the shipped rulebook, plus the issue's cases as a regression corpus."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zhengai.cli import main
from zhengai.ingest.durations import parse_duration
from zhengai.ingest.located_yaml import MAX_FILE_BYTES
from zhengai.rules.loader import RulebookError, RuleSet, default_rulebook_path, load_rulebook

FAST = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
LOCATED = re.compile(r"^.+:\d+: .+: .+$")
SHIPPED = {p.name: p.read_text(encoding="utf-8") for p in sorted(default_rulebook_path().glob("*.yaml"))}

RULE = """rules:
  - id: course.attendance_rate
    name: 学生到课率
    name_en: {name_en}
    metric: course.attendance_rate
    level: course
    direction: higher_is_better
    target: 98
    standard: 90
    warning: 95
    cycle: week
    freshness: {freshness}
    responsible: course_teacher
"""


def rule(name_en: str = "Attendance", freshness: str = "21d") -> str:
    return RULE.format(name_en=name_en, freshness=freshness)


def alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\nrules: [*a{levels - 1}]\n"


def load_closed(folder: Path) -> RuleSet | RulebookError:
    try:
        return load_rulebook(folder)
    except RulebookError as exc:
        assert exc.errors, "a refusal names at least one error"
        for e in exc.errors:
            assert LOCATED.match(str(e).replace("\n", " ")), str(e)
            assert e.line >= 1
        return exc


def folder_with(tmp: Path, files: dict[str, str | bytes]) -> Path:
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name, content in files.items():
        (tmp / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return tmp


CORPUS = {  # id → (file text, a fragment of the located error)
    "name_en_bad_date": (rule(name_en="2026-13-45"), "a.yaml:4: rules[0].name_en"),
    "freshness_overflow": (rule(freshness="99999999999d"), "a.yaml:12: rules[0].freshness"),
    "python_name_tag": (rule(name_en="!!python/name:os.system"), "a.yaml:4: rules[0].name_en"),
    "python_object_tag": (rule(name_en="!!python/object/apply:os.system ['id']"), "a.yaml:4"),
    "timestamp_yesterday": (rule(name_en="!!timestamp 'yesterday'"), "a.yaml:4: rules[0].name_en"),
    "binary_garbage": (rule(name_en="!!binary '%%%'"), "a.yaml:4"),
    "deep_nesting": ("rules: " + "[" * 5000 + "]" * 5000 + "\n", "(syntax)"),
    "deep_block_nesting": ("rules:\n" + "".join("  " * i + "- \n" for i in range(300)), "(syntax)"),
    "alias_bomb": (alias_bomb(), "(aliases)"),
    "alias_cycle": ("rules: &r\n  - *r\n", "a.yaml:"),
    "empty_file": ("", "a.yaml:1: (file)"),
    "only_comments": ("# rules come later\n", "a.yaml:1: (file)"),
    "null_document": ("~\n", "a.yaml:1"),
    "a_list": ("- 1\n- 2\n", "a.yaml:1: (file)"),
    "huge_int": (rule(name_en="x").replace("target: 98", "target: " + "9" * 5000), "a.yaml:8: rules[0].target"),
    "tab_indent": ("rules:\n\t- id: x\n", "(syntax)"),
    "not_utf8": (b"rules: \xff\xfe\n", "a.yaml:1: (file)"),
    "duplicate_keys": ("rules: []\nrules: []\n", "duplicate key"),
    "unknown_override_rule": (
        "overrides:\n  - rule: no.such\n    entity: D1\n    standard: 80\n    reason: 口径不同\n",
        "unknown rule",
    ),
}


@pytest.mark.parametrize("text, where", list(CORPUS.values()), ids=list(CORPUS))
def test_corpus_each_broken_file_is_a_located_refusal(tmp_path, text, where):
    out = load_closed(folder_with(tmp_path / "rb", {"a.yaml": text}))
    assert isinstance(out, RulebookError), f"accepted: {out}"
    assert any(where in str(e) for e in out.errors), [str(e) for e in out.errors]


def test_alias_bomb_is_refused_before_expanding(tmp_path):
    text = alias_bomb(12)  # 9**12 values if expanded
    assert len(text) < 3000
    out = load_closed(folder_with(tmp_path / "rb", {"a.yaml": text}))
    assert isinstance(out, RulebookError) and "aliases expand" in str(out)


def test_oversized_file_is_refused_before_reading(tmp_path):
    big = rule() + "#" + "x" * MAX_FILE_BYTES + "\n"
    out = load_closed(folder_with(tmp_path / "rb", {"a.yaml": big}))
    assert isinstance(out, RulebookError) and "file too large" in str(out)


def test_shipped_rulebook_and_a_small_alias_still_load(tmp_path):
    rules = load_rulebook().rules  # 82 threshold rules and the six rules of the other kinds (rules/kinds.py)
    assert len(rules) == 88 and sum(getattr(r, "kind", "threshold") != "threshold" for r in rules.values()) == 6
    text = rule().replace("    cycle: week\n", "    cycle: &c week\n") + rule().split("rules:\n")[1].replace(
        "course.attendance_rate", "course.attendance_rate2", 1
    ).replace("cycle: week", "cycle: *c")
    rs = load_closed(
        folder_with(
            tmp_path / "rb",
            {"a.yaml": text.replace("metric: course.attendance_rate2", "metric: course.attendance_rate")},
        )
    )
    assert isinstance(rs, RuleSet) and len(rs.rules) == 2


def test_durations_are_bounded():
    with pytest.raises(ValueError, match="exceed"):
        parse_duration("99999999999d")
    assert parse_duration("3650d").days == 3650


# --- generated hostile YAML -----------------------------------------------------------------------

SCALARS = st.sampled_from(
    [
        "2026-13-45",
        "99999999999d",
        "!!python/name:os.system",
        "!!timestamp 'yesterday'",
        "!!binary 'x'",
        "*undefined",
        "&a x",
        "!!int 'x'",
        "!!float 'y'",
        "1e999",
        "-.inf",
        ".nan",
        "9" * 400,
        "~",
        "[",
        "{",
        "'",
        '"',
        "|",
        ">",
        "? x",
        "!!set {a, b}",
        "!!omap [a: 1]",
        "!!str",
        "<<: *a",
        "0x",
        "0o9",
        "yes",
        "2026-02-31",
        "14d",
        "1h30m",
        "%YAML 1.1",
    ]
)
TOKENS = st.one_of(
    SCALARS,
    st.sampled_from(
        ["\n", "  ", "- ", ": ", "rules:", "overrides:", "id:", "target:", "&a ", "*a", "[", "]", "{", "}", ",", "#"]
    ),
    st.text(max_size=6),
)


@FAST
@given(st.lists(TOKENS, max_size=60).map("".join))
def test_loader_generated_yaml(tmp_path, text):
    load_closed(folder_with(tmp_path / "rb", {"a.yaml": text}))


@FAST
@given(st.sampled_from(sorted(SHIPPED)), st.data())
def test_loader_mutated_shipped_rulebook(tmp_path, name, data):
    lines = SHIPPED[name].splitlines(keepends=True)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        i = data.draw(st.integers(min_value=0, max_value=len(lines) - 1))
        how = data.draw(st.sampled_from(["drop", "dup", "value", "indent", "truncate", "tag"]))
        if how == "drop":
            del lines[i]
        elif how == "dup":
            lines.insert(i, lines[i])
        elif how == "value" and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {data.draw(SCALARS)}\n"
        elif how == "indent":
            lines[i] = " " + lines[i]
        elif how == "truncate":
            lines = lines[:i]
        elif how == "tag" and ":" in lines[i]:
            key, value = lines[i].split(":", 1)
            tag = data.draw(st.sampled_from(["!!python/name:os.system", "!!timestamp", "!!int", "!!binary"]))
            lines[i] = f"{key}: {tag} {value.strip()}\n"
        if not lines:
            break
    load_closed(folder_with(tmp_path / "rb", {name: "".join(lines)}))  # the mutated file alone: fast


# --- lint -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["name_en_bad_date", "freshness_overflow", "python_name_tag", "timestamp_yesterday", "deep_nesting", "alias_bomb"],
)
def test_lint_never_prints_a_traceback(tmp_path, capsys, case):
    folder = folder_with(tmp_path / "rb", dict(SHIPPED) | {"course.yaml": CORPUS[case][0]})
    assert main(["rules", "lint", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "规则库未通过校验" in err and LOCATED.search(err.splitlines()[1].strip())


def test_lint_flags_overrides_of_unknown_entities_against_the_store(tmp_path, capsys, pg_url):
    from zhengai.ingest.records import Entity, EntityKind
    from zhengai.warnings.store import WarningStore

    store = WarningStore(pg_url)
    store.create_schema()
    store.directory.upsert(
        [
            Entity(id="SCH", kind=EntityKind.school, name="学校"),
            Entity(id="D01", kind=EntityKind.department, name="学院", parent_id="SCH"),
        ]
    )
    override = (
        "overrides:\n  - rule: course.attendance_rate\n    entity: {e}\n    standard: 88\n    reason: 实训周口径不同\n"
    )
    folder = folder_with(tmp_path / "rb", dict(SHIPPED) | {"zz.yaml": override.format(e="D01")})
    assert main(["rules", "lint", str(folder), "--store", pg_url]) == 0
    (folder / "zz.yaml").write_text(override.format(e="D99"), encoding="utf-8")
    assert main(["rules", "lint", str(folder)]) == 0, "without a directory the entity cannot be checked"
    assert main(["rules", "lint", str(folder), "--store", pg_url]) == 1
    err = capsys.readouterr().err
    assert re.search(r"zz\.yaml:3: entity: 目录中没有实体 'D99'", err), err
    assert main(["rules", "lint", str(folder), "--store", "postgresql+psycopg2://nobody:secret@127.0.0.1:1/x"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "secret" not in err
