"""Publishing is the gate (real PostgreSQL): the first publish is a baseline (one line, not 80
首次发布); a saved file changes nothing the worker runs until it is published; versions, diff and
restore; until anything is published the folder runs with hot reload, as before."""

from __future__ import annotations

import shutil

import pytest

from zhengai.cli import main
from zhengai.rules.loader import default_rulebook_path, load_rulebook
from zhengai.rules.reload import RulebookWatcher
from zhengai.warnings.publications import PublishedRules, publications
from zhengai.warnings.store import WarningStore


@pytest.fixture
def folder(tmp_path):
    shutil.copytree(default_rulebook_path(), tmp_path / "rb")
    return tmp_path / "rb"


def _edit(folder, old: str, new: str) -> None:
    path = folder / "student.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _publish(folder, pg_url, reason: str) -> int:
    return main(["rules", "publish", str(folder), "--author", "质量办 王老师", "--reason", reason, "--store", pg_url])


def test_publish_is_the_gate_with_baseline_versions_diff_and_restore(folder, pg_url, capsys):
    store = WarningStore(pg_url)
    store.create_schema()
    running = PublishedRules(store, RulebookWatcher(folder))
    # nothing published yet: the folder runs, hot-reloaded
    _edit(folder, "warning: 95", "warning: 93")
    assert running.check() is True and running.rules.rules["student.attendance_rate"].warning == 93
    _edit(folder, "warning: 93", "warning: 95")
    running.check()

    assert _publish(folder, pg_url, "首次发布") == 0
    out = capsys.readouterr().out
    assert (
        out.startswith(f"基线发布 #1：{len(load_rulebook().rules)} 条规则")
        and "首次发布" in out
        and out.count("\n") == 1
    )
    assert running.check() is True
    baseline = running.rules.version

    # a saved file does not go live…
    _edit(folder, "warning: 95", "warning: 94")
    assert running.check() is None and running.rules.version == baseline
    assert running.rules.rules["student.attendance_rate"].warning == 95
    # …until it is published, with the change listed
    assert _publish(folder, pg_url, "口径调整") == 0
    out = capsys.readouterr().out
    assert "student.attendance_rate 预警值 warning：95.0 → 94.0" in out
    assert "已发布 1 条规则的新版本（第 2 版" in out
    assert running.check() is True and running.rules.rules["student.attendance_rate"].warning == 94
    assert _publish(folder, pg_url, "再发一次") == 0 and "未发布新版本" in capsys.readouterr().out

    assert main(["rules", "versions", "--store", pg_url]) == 0
    out = capsys.readouterr().out
    assert (
        "#1 基线" in out
        and f"{len(load_rulebook().rules)} 条规则" in out
        and "#2 修改" in out
        and "1 处改动" in out
        and "运行第 2 版" in out
    )

    assert main(["rules", "diff", "1", "2", "--store", pg_url]) == 0
    assert "第 1 版 → 第 2 版：1 处改动" in capsys.readouterr().out
    _edit(folder, "standard: 90", "standard: 91")  # saved, not published: diff against the folder shows it
    assert main(["rules", "diff", "2", "--rulebook", str(folder), "--store", pg_url]) == 0
    out = capsys.readouterr().out
    assert "规则库目录（未发布）：1 处改动" in out and "标准值 standard：90.0 → 91.0" in out

    before = (default_rulebook_path() / "student.yaml").read_text(encoding="utf-8")
    assert (
        main(
            [
                "rules",
                "restore",
                "1",
                "--author",
                "质量办 王老师",
                "--reason",
                "回到基线",
                "--rulebook",
                str(folder),
                "--store",
                pg_url,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "已恢复第 1 版为第 3 版" in out and "预警值 warning：94.0 → 95.0" in out
    assert (folder / "student.yaml").read_text(encoding="utf-8") == before  # byte for byte, comments and all
    assert running.check() is True and running.rules.version == baseline
    rows = publications(store)
    assert [(r.kind, r.restored_from) for r in rows] == [("baseline", None), ("change", None), ("restore", 1)]
    assert (
        main(["rules", "restore", "9", "--author", "x", "--reason", "y", "--rulebook", str(folder), "--store", pg_url])
        == 1
    )
    assert "没有第 9 版发布" in capsys.readouterr().err


def test_a_rulebook_that_does_not_load_is_never_published(folder, pg_url, capsys):
    _edit(folder, "warning: 95", "warning: 九十五")
    assert _publish(folder, pg_url, "试试") == 1
    assert "规则库未通过校验，未发布。" in capsys.readouterr().err
    assert publications(WarningStore(pg_url)) == []
