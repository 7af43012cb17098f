"""The service's own Prometheus alerts (deploy/prometheus/alerts.yml): promtool checks the rules
and runs alerts_test.yml, where every alert has a case that fires and one that stays quiet; every
metric an alert reads is one the code defines."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROM = ROOT / "deploy" / "prometheus"


def _promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool missing: deploy/local/browser.sh up installs Debian's prometheus package"
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_promtool(), *args], cwd=PROM, capture_output=True, text=True, timeout=120)


def _alerts() -> list[dict]:
    doc = yaml.safe_load((PROM / "alerts.yml").read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_checks_the_rules_and_the_prometheus_configs():
    done = _run("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in done.stdout
    # promtool check config also loads rule_files: the compose config points at alerts.yml
    done = _run("check", "config", "--syntax-only", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass():
    done = _run("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_firing_and_a_quiet_case():
    cases = yaml.safe_load((PROM / "alerts_test.yml").read_text(encoding="utf-8"))["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert names - fires == set(), "alerts never shown to fire"
    assert names - quiet == set(), "alerts never shown to stay quiet"
    assert (fires | quiet) - names == set(), "tests of alerts that do not exist"


def test_a_broken_rule_fails_its_unit_test(tmp_path):
    # the unit tests are not vacuous: raise one threshold and its firing case fails
    text = (PROM / "alerts.yml").read_text(encoding="utf-8")
    broken = text.replace(
        "zhengai_connector_consecutive_failures) >= 3", "zhengai_connector_consecutive_failures) >= 30"
    )
    assert broken != text
    (tmp_path / "alerts.yml").write_text(broken, encoding="utf-8")
    shutil.copy(PROM / "alerts_test.yml", tmp_path / "alerts_test.yml")
    done = subprocess.run(
        [_promtool(), "test", "rules", "alerts_test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and "ZhengaiConnectorFailing" in done.stdout + done.stderr


def _defined_metrics() -> set[str]:
    names: set[str] = set()
    for folder in ("ingest", "connectors", "warnings", "zhengai"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for kind, name in re.findall(r"\b(Counter|Gauge|Histogram)\(\s*\"(zhengai_[a-z_]+)\"", text):
                names.add(name + "_total" if kind == "Counter" else name)
    return names


def test_every_metric_an_alert_reads_exists_in_the_code():
    defined = _defined_metrics() | {"process_start_time_seconds", "up"}  # prometheus_client / Prometheus itself
    used: set[str] = set()
    for alert in _alerts():
        used |= set(
            re.findall(r"\b(zhengai_[a-z_]+|process_start_time_seconds|up)\b(?=\s*[{\[)]|\s*$|\s*[><=])", alert["expr"])
        )
    assert used, "no metric found in the alert expressions"
    assert used - defined == set()
