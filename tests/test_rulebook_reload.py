"""The rulebook changes only as a whole valid set (issue 9): each kind of broken change is refused
live at ERROR while the old rules keep running, and a watcher started on a broken folder runs the
last version published to the (real PostgreSQL) store."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import pytest

from zhengai.cli import main
from zhengai.rules import reload
from zhengai.rules.loader import RulebookError, default_rulebook_path
from zhengai.rules.reload import RulebookWatcher
from zhengai.warnings.published import published_rulebook


@pytest.fixture
def folder(tmp_path) -> Path:
    target = tmp_path / "rulebook"
    shutil.copytree(default_rulebook_path(), target)
    return target


def touch_later(path: Path) -> None:
    """Make sure the change is seen even on a coarse-mtime file system."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


def drop_first_rule(text: str) -> str:
    head, first, rest = text.partition("\n  - id: ")
    return head + "\n  - id: " + rest.split("\n  - id: ", 1)[1]


BREAKS = {  # kind → (how to break the folder, what the ERROR log must say)
    "broken_yaml": (
        lambda f: (f / "student.yaml").write_text("rules:\n  - id: [unclosed\n", encoding="utf-8"),
        r"student\.yaml:\d+: ",
    ),
    "empty_file": (
        lambda f: (f / "student.yaml").write_text("", encoding="utf-8"),
        r"student\.yaml:1: \(file\): 文件为空",
    ),
    "disappeared": (
        lambda f: (f / "student.yaml").unlink(),
        r"student\.yaml:1: \(file\): 运行中的规则文件消失（已删除？）",
    ),
    "renamed_to_yml": (lambda f: (f / "student.yaml").rename(f / "student.yml"), r"改名为 student\.yml"),
    # (teacher.yaml: the first student rule is a component of the student composite, whose lint would refuse it first)
    "count_drop": (
        lambda f: (f / "teacher.yaml").write_text(
            drop_first_rule((f / "teacher.yaml").read_text(encoding="utf-8")), encoding="utf-8"
        ),
        r"规则数将从 88 减少到 87",
    ),
    "folder_gone": (lambda f: shutil.rmtree(f), r"no \*\.yaml rule files found"),
}


@pytest.mark.parametrize("kind", list(BREAKS))
def test_a_broken_change_is_refused_live_and_the_old_rules_keep_running(folder, caplog, kind):
    watcher = RulebookWatcher(folder)
    running = watcher.rules
    assert len(running.rules) == 88  # 82 threshold rules and 6 of the other kinds
    break_it, says = BREAKS[kind]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="zhengai.rules.reload"):
        break_it(folder)
        assert watcher.check() is False
    assert watcher.rules is running, "the old rulebook keeps running"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(re.search(says, m) for m in errors), errors
    assert any("still running version " + running.version in m for m in errors)
    assert watcher.check() is None, "the same broken state is reported once"


def test_a_fixed_folder_is_taken_and_a_new_rule_file_is_fine(folder):
    watcher = RulebookWatcher(folder)
    (folder / "student.yaml").rename(folder / "student.yml")
    assert watcher.check() is False
    (folder / "student.yml").rename(folder / "student.yaml")
    touch_later(folder / "student.yaml")
    assert watcher.check() in (None, True)  # back to the running content: nothing to swap
    extra = (default_rulebook_path() / "course.yaml").read_text(encoding="utf-8").split("\n  - id: ")[1]
    (folder / "zz_extra.yaml").write_text(
        "rules:\n  - id: " + extra.replace("course.attendance_rate", "course.attendance_rate_lab", 1), encoding="utf-8"
    )
    assert watcher.check() is True and len(watcher.rules.rules) == 89


def test_a_broken_folder_at_start_runs_the_last_published_version(folder, pg_url, capsys, caplog):
    # Nothing published yet: a broken folder at start is fatal, as before.
    (folder / "course.yaml").write_text("", encoding="utf-8")
    reload.use_fallback(lambda: published_rulebook(pg_url))
    try:
        with pytest.raises(RulebookError):
            RulebookWatcher(folder)
        # The quality office publishes the good rulebook (the real command, the real store)…
        good = default_rulebook_path()
        assert (
            main(["rules", "publish", str(good), "--author", "质量办", "--reason", "首次发布", "--store", pg_url]) == 0
        )
        # …then a later change to the thresholds is published too: the latest version wins.
        changed = folder.parent / "changed"
        shutil.copytree(good, changed)
        text = (changed / "student.yaml").read_text(encoding="utf-8")
        assert "warning: 95" in text
        (changed / "student.yaml").write_text(text.replace("warning: 95", "warning: 94", 1), encoding="utf-8")
        assert (
            main(["rules", "publish", str(changed), "--author", "质量办", "--reason", "口径调整", "--store", pg_url])
            == 0
        )
        assert "已发布 1 条规则的新版本" in capsys.readouterr().out

        with caplog.at_level(logging.ERROR, logger="zhengai.rules.reload"):
            watcher = RulebookWatcher(folder)
        assert watcher.on_fallback
        published = published_rulebook(pg_url)
        from zhengai.rules.loader import load_rulebook

        latest = load_rulebook(changed)
        assert {r.id: r.version for r in watcher.rules.rules.values()} == {
            r.id: r.version for r in latest.rules.values()
        }
        assert watcher.rules.version == published.version and watcher.rules.by_metric.keys() == latest.by_metric.keys()
        assert any("starting on the last published version" in r.getMessage() for r in caplog.records)

        # The folder is fixed: taken live, even with fewer rules than published would allow.
        (folder / "course.yaml").write_text((good / "course.yaml").read_text(encoding="utf-8"), encoding="utf-8")
        assert watcher.check() is True and not watcher.on_fallback and len(watcher.rules.rules) == 88
    finally:
        reload.use_fallback(None)


def test_an_unreachable_store_leaves_the_load_error_standing(folder):
    (folder / "course.yaml").write_text("", encoding="utf-8")
    with pytest.raises(RulebookError):
        RulebookWatcher(folder, fallback=lambda: published_rulebook("postgresql+psycopg2://x:y@127.0.0.1:1/none"))
