"""`zhengai notify`: the shipped config lints clean; a pass escalates overdue warnings and sends
them through the pipeline (after the group wait), each exactly once."""

import subprocess
import sys

import pytest

from zhengai.demo.run import run_demo

CONF = """
timezone: Asia/Shanghai
links: {base_url: https://zhengai.example.edu.cn}
channels:
  console: {type: console}
"""


def zg(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "zhengai", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PYTHONSAFEPATH": "1", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


def test_shipped_notify_config_lints_clean():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    r = zg("notify", "--config", str(root / "deploy" / "notify" / "notify.yaml"), "lint")
    assert r.returncode == 0, r.stderr
    assert "通知配置校验通过" in r.stdout


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    import io

    out = tmp_path_factory.mktemp("n") / "out"
    run_demo(out, "small", out=io.StringIO(), progress=False)
    return f"sqlite:///{out / 'zhengai.sqlite'}", out


def test_notify_passes_escalate_and_send_once(demo_store, tmp_path):
    url, _ = demo_store
    (tmp_path / "n.yaml").write_text(CONF, encoding="utf-8")
    base = ("notify", "--config", str(tmp_path / "n.yaml"), "--store", url, "once")
    first = zg(*base, "--now", "2026-12-30T09:00")
    assert first.returncode == 0, first.stderr
    assert "sent=0" in first.stdout  # grouped: the group wait has not passed yet
    second = zg(*base, "--now", "2026-12-30T09:02")
    assert second.returncode == 0, second.stderr
    assert "逾期升级督办" in second.stdout and "lifecycle transitions: 0" in second.stdout
    sent = int(second.stdout.rsplit("sent=", 1)[1].split(",")[0])
    assert sent > 0
    third = zg(*base, "--now", "2026-12-30T09:30")
    assert third.returncode == 0 and "admitted=0" in third.stdout  # nothing new, nothing twice
    assert "逾期升级督办" not in third.stdout
