"""The `zhengai` command line: one name per thing across every command, read from the same settings
and environment; --version, --json, shell completion, Chinese-first errors, a closed pipe ending
quietly, and a missing command module that is an error (not a command that vanished)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import types
from importlib.metadata import version

import click
import pytest
from click.testing import CliRunner

from zhengai.cli import EXIT_BROKEN_PIPE, build_cli, main
from zhengai.commands import COMMAND_MODULES, CommandModuleError, load_command_module
from zhengai.commands._options import SHARED, resolve
from zhengai.connectors.settings import ConnectorSettings
from zhengai.demo.run import run_demo
from zhengai.ingest.settings import DEFAULT_STORE_URL, Settings

# Environment variables an option may advertise beyond the settings objects' fields; each is read
# where the option is defined (grep the name).
OTHER_ENV = {
    "ZHENGAI_LOG_FORMAT",
    "ZHENGAI_NOTIFY_CONFIG",
    "ZHENGAI_SECRETS_DIR",
    "ZHENGAI_NOTIFY_METRICS_PORT",
    "ZHENGAI_WEB_USER_HEADER",
    "ZHENGAI_WEB_TRUSTED_PROXIES",
    "ZHENGAI_EVALUATE_AS_OBSERVED",
    "ZHENGAI_FORMS",
}
# Names issue 17 found for the same things; none may come back.
RETIRED = {"--store-url", "--rules", "--rules-dir", "--rule-book", "--kafka", "--prefix"}


def _walk(group: click.Group, path: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, (*path, name))


def _commands():
    return list(_walk(build_cli()))


def _settings_envs() -> set[str]:
    return {f"ZHENGAI_{n.upper()}" for n in (*Settings.model_fields, *ConnectorSettings.model_fields)}


def test_every_command_module_is_loaded_and_every_module_is_listed():
    from pathlib import Path

    import zhengai.commands

    folder = Path(zhengai.commands.__file__).parent
    on_disk = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    assert on_disk == set(COMMAND_MODULES), "a command module is not listed in COMMAND_MODULES (or listed, absent)"
    assert {m.replace("_", "-") for m in COMMAND_MODULES} <= set(build_cli().commands)  # status_data → status-data


def test_the_same_option_names_everywhere():
    commands = _commands()
    assert len(commands) > 20
    seen: dict[str, set[str]] = {}
    for path, cmd in commands:
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                assert opt not in RETIRED, f"zhengai {' '.join(path)}: {opt}"
                seen.setdefault(opt, set()).add(param.name or "")
    for opt, (name, _, _) in SHARED.items():
        assert seen.get(opt) == {name}, f"{opt} is not the one shared option"
    # where a store, broker or rulebook is used, it is these options
    by_path = {" ".join(p): {o for prm in c.params for o in getattr(prm, "opts", [])} for p, c in commands}
    for path in (
        "worker",
        "web",
        "rules publish",
        "warnings list",
        "warnings migrate",
        "notify serve",
        "warnings silence add",
    ):
        assert "--store" in by_path[path], path
    for path in ("worker", "web", "warnings list", "notify once"):
        assert "--rulebook" in by_path[path], path
    for path in ("worker", "connectors run"):
        assert {"--broker", "--topic-prefix"} <= by_path[path], path


def test_every_help_lists_only_options_of_the_command_or_the_settings():
    runner = CliRunner()
    fields = {"--" + n.replace("_", "-") for n in (*Settings.model_fields, *ConnectorSettings.model_fields)}
    settings_envs = _settings_envs()
    for path, cmd in _commands():
        result = runner.invoke(build_cli(), [*path, "--help"], prog_name="zhengai")
        assert result.exit_code == 0, (path, result.output)
        listed = set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z-]*)", result.output, flags=re.M))
        declared = {o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
        declared |= {"--help"}
        for opt in listed:
            assert opt in declared or opt in fields, f"zhengai {' '.join(path)} --help lists {opt}"
        # every environment variable a help names is one the settings or the command read
        for env in re.findall(r"ZHENGAI_[A-Z_]+", re.sub(r"\s+", "", result.output)):
            assert env in settings_envs | OTHER_ENV, f"zhengai {' '.join(path)} --help names {env}: nothing reads it"


def test_version():
    runner = CliRunner()
    result = runner.invoke(build_cli(), ["--version"], prog_name="zhengai")
    assert result.exit_code == 0 and result.output.strip() == f"zhengai {version('zhengai')}"


def test_the_same_default_store_everywhere(monkeypatch):
    monkeypatch.delenv("ZHENGAI_STORE_URL", raising=False)
    assert resolve("store") == Settings().store_url.get_secret_value() == DEFAULT_STORE_URL
    monkeypatch.setenv("ZHENGAI_STORE_URL", "sqlite:///elsewhere.sqlite")
    assert resolve("store") == Settings().store_url.get_secret_value() == "sqlite:///elsewhere.sqlite"


def test_errors_are_chinese_first_with_the_english_term(capsys):
    assert main(["warnings", "list", "--status", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("参数值无效 (invalid value)") and "zhengai warnings list --help" in err
    assert main(["warnings", "migrate", "--stor", "x"]) == 2
    assert capsys.readouterr().err.startswith(
        "没有这个选项 (no such option)：--stor；您是否要用 (did you mean)：--store"
    )
    assert main(["warnings", "ack", "1"]) == 2
    assert capsys.readouterr().err.startswith("缺少必需的参数 (missing parameter)：'--by'")
    assert main(["nosuch"]) == 2
    assert capsys.readouterr().err.startswith("没有这个命令 (no such command)")


def test_choices_come_from_the_enums():
    from zhengai.ingest.records import Level
    from zhengai.warnings.lifecycle import Status

    cmd = build_cli().commands["warnings"].commands["list"]  # type: ignore[attr-defined]
    types_ = {p.name: p.type for p in cmd.params}
    assert list(types_["status"].choices) == [s.value for s in Status]
    assert list(types_["level"].choices) == [lv.value for lv in Level]


def test_shell_completion(capsys):
    assert main(["completion", "bash"]) == 0
    out = capsys.readouterr().out
    assert "_ZHENGAI_COMPLETE" in out and "complete " in out
    done = subprocess.run(
        [sys.executable, "-m", "zhengai"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "_ZHENGAI_COMPLETE": "bash_complete",
            "COMP_WORDS": "zhengai warnings li",
            "COMP_CWORD": "2",
            "PATH": "/usr/bin:/bin",
            "PYTHONSAFEPATH": "1",
        },
    )
    assert "list" in done.stdout


def test_a_missing_command_module_is_an_error(capsys):
    with pytest.raises(CommandModuleError, match="zhengai.commands.nosuch"):
        load_command_module("nosuch")
    with pytest.raises(CommandModuleError):
        build_cli(("worker", "nosuch"))


def test_an_argparse_style_module_still_runs_until_converted(monkeypatch, capsys):
    legacy = types.ModuleType("zhengai.commands._legacy_example")

    def _hello(args) -> int:
        print(f"hello {args.name} {args.store}")
        return 3

    def register(subparsers) -> None:
        p = subparsers.add_parser("hello")
        p.add_argument("name")
        p.add_argument("--store", default="s")
        p.set_defaults(func=_hello)

    legacy.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "zhengai.commands._legacy_example", legacy)
    group = click.Group("zhengai")
    load_command_module("_legacy_example").register(group)
    assert group.main(["hello", "T1", "--store", "u"], standalone_mode=False) == 3
    assert capsys.readouterr().out == "hello T1 u\n"


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "out"
    run_demo(out, "small", out=io.StringIO(), progress=False)
    return f"sqlite:///{out / 'zhengai.sqlite'}"


def test_json_output_of_list_and_show(demo_store, capsys):
    assert main(["warnings", "list", "--store", demo_store, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {"id", "rule_id", "status", "band", "entity_id", "level", "due_date"} <= set(rows[0])
    assert main(["warnings", "--store", demo_store, "list", "--json", "--level", "student"]) == 0
    students = json.loads(capsys.readouterr().out)
    assert students and all(r["level"] == "student" for r in students)
    # student ids are masked in JSON as in text
    assert all(not re.search(r"\d{8,}", r["entity_id"]) for r in students)
    first = rows[0]["id"]
    assert main(["warnings", "show", str(first), "--json", "--store", demo_store]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == first and shown["events"] and isinstance(shown["improvements"], list)
    assert main(["warnings", "silence", "list", "--json", "--store", demo_store, "--all"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)


def test_a_closed_pipe_ends_quietly(demo_store):
    # the reader is gone before the command writes: every write meets a closed pipe
    proc = subprocess.Popen(
        [sys.executable, "-m", "zhengai", "warnings", "list", "--store", demo_store],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PYTHONSAFEPATH": "1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == EXIT_BROKEN_PIPE
    assert err == ""
    # and `| head` in a shell: the first lines, no traceback
    done = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m zhengai warnings list --store '{demo_store}' | head -n 2"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONSAFEPATH": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2 and "Traceback" not in done.stderr
