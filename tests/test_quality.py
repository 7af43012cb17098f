"""Quality gates in `make test` (CI runs only `make test`): ruff (lint and format check) over the
repository and mypy over the whole package, configured in pyproject.toml.

mypy cannot follow the editable install's package-dir mapping (the folders ingest/, rules/,
warnings/, connectors/ are the packages zhengai.ingest …): it is run on a tree of symbolic links
laid out as the installed package (zhengai/ with zhengai/ingest → ../ingest …), so every module
is checked under its real name. By hand: `.venv/bin/python tests/test_quality.py mypy`."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MAPPED = ("ingest", "rules", "warnings", "connectors")  # folder → zhengai.<folder> (pyproject package-dir)


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=600)


def package_tree(into: Path) -> Path:
    """``into``/zhengai laid out as the installed package, made of links to the working tree."""
    pkg = into / "zhengai"
    pkg.mkdir()
    for entry in (ROOT / "zhengai").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for folder in MAPPED:
        (pkg / folder).symlink_to(ROOT / folder)
    return pkg


def run_mypy() -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="zhengai-mypy-") as tmp:
        package_tree(Path(tmp))
        return _run(
            str(BIN / "mypy"),
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(Path(tmp) / ".mypy_cache"),
            "-p",
            "zhengai",
            cwd=Path(tmp),
        )


def test_ruff_lint_is_clean():
    done = _run(str(BIN / "ruff"), "check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr


def test_ruff_format_is_clean():
    done = _run(str(BIN / "ruff"), "format", "--check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr


def test_mypy_is_clean_over_the_whole_package():
    done = run_mypy()
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr
    assert "Success: no issues found" in done.stdout
    checked = int(done.stdout.rsplit("in ", 1)[1].split()[0])
    modules = [p for folder in ("zhengai", *MAPPED) for p in (ROOT / folder).rglob("*.py")]
    assert checked >= len(modules)  # every module, not a subset


if __name__ == "__main__":
    if sys.argv[1:] == ["mypy"]:
        result = run_mypy()
        print(result.stdout + result.stderr, end="")
        sys.exit(result.returncode)
