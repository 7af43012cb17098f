"""The deploy files, checked without a container engine: the compose file against the Compose
Specification's JSON schema (vendored, deploy/schemas/), the Kubernetes manifests against the
Kubernetes schemas (kubernetes-validate, strict: unknown fields refused), the embedded Prometheus
config with promtool, and what the manifests must hold to be complete."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.32.0"


def _errors(validator: jsonschema.protocols.Validator, doc: object) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(doc)]


def _compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_the_compose_file_follows_the_compose_specification():
    doc = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text(encoding="utf-8"))
    assert _errors(_compose_validator(), doc) == []
    # every file a service mounts from the repository exists
    for name, service in doc["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / "compose" / source).resolve().exists(), f"{name}: {source}"


def test_the_compose_schema_refuses_a_broken_file():
    doc = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text(encoding="utf-8"))
    doc["services"]["worker"]["restart_policy"] = "always"  # not a service key
    doc["services"]["web"]["ports"] = "8080"  # must be a list
    errors = _errors(_compose_validator(), doc)
    assert any("restart_policy" in e for e in errors) and any(e.startswith("services/web") for e in errors)


def _manifests() -> list[dict]:
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "zhengai.yaml").read_text(encoding="utf-8")))
    return [d for d in docs if d]


def test_every_kubernetes_manifest_is_valid_against_the_schemas():
    docs = _manifests()
    assert len(docs) > 10
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {'/'.join(map(str, exc.path))}: {exc.message}")


def test_the_kubernetes_validator_refuses_a_broken_manifest():
    doc = next(d for d in _manifests() if d["kind"] == "Deployment")
    doc["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": ["1"]}}
    doc["spec"]["replicaz"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in _manifests() if d["kind"] == kind}


def test_the_kubernetes_manifests_are_complete():
    deployments = _by_kind("Deployment")
    assert {
        "zhengai-worker",
        "zhengai-connectors",
        "zhengai-notifier",
        "zhengai-web",
        "zhengai-grafana",
        "zhengai-prometheus",
    } <= set(deployments)
    services = _by_kind("Service")
    assert {"zhengai-web", "zhengai-grafana", "zhengai-prometheus", "zhengai-worker"} <= set(services)
    pdbs = _by_kind("PodDisruptionBudget")
    assert any(p["spec"]["selector"] == deployments["zhengai-worker"]["spec"]["selector"] for p in pdbs.values())
    for name, d in {**deployments, **_by_kind("Job")}.items():
        for c in d["spec"]["template"]["spec"]["containers"]:
            assert c.get("resources", {}).get("requests"), f"{name}/{c['name']}: no resource requests"
            if d["kind"] == "Deployment":
                assert "livenessProbe" in c, f"{name}/{c['name']}: no liveness probe"
            # secrets only from Secret objects: no literal password, token or URL with credentials
            for env in c.get("env", []):
                assert "value" not in env or not any(
                    w in env["name"] for w in ("PASSWORD", "SECRET", "TOKEN", "URL")
                ), f"{name}: {env['name']} set literally"
    for cm in _by_kind("ConfigMap").values():
        for key, value in cm.get("data", {}).items():
            secretish = any(w in key for w in ("PASSWORD", "TOKEN", "SECRET")) and not key.endswith("_FILE")
            assert not secretish, f"{cm['metadata']['name']}: {key} belongs in a Secret"
            assert "://" not in value or "@" not in value, f"{cm['metadata']['name']}: {key} holds credentials"


def test_the_kubernetes_prometheus_config_passes_promtool(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: deploy/local/browser.sh up installs Debian's prometheus package"
    config = _by_kind("ConfigMap")["zhengai-prometheus"]["data"]["prometheus.yml"]
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", rules / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/rules/", f"{rules}/"), encoding="utf-8")
    done = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
