"""Every enabled rule of the default rulebook has a data route, and the demo college feeds it.

A route is a connector mapping (a shipped table mapping, or a coded connector's stream), an
aggregation (a stream processor) or — on the `forms` branch — a template or a register. The test
runs the small demo college once, through every connector and processor, and reads where each
metric's observations came from.
"""

from __future__ import annotations

import io
from collections import defaultdict

import pytest
import sqlalchemy as sa

from zhengai.connectors.loading import load_config
from zhengai.demo.run import run_demo
from zhengai.demo.systems import SystemSources, config_files
from zhengai.ingest.systems import SYSTEM_METRICS
from zhengai.rules.loader import load_rulebook

# Fed by the `forms` branch (填报/Excel templates, the task table and the incident register), not
# by a system: the lead removes this list when that branch is merged.
EXPECTED_GAPS: frozenset[str] = frozenset()  # every enabled rule is fed (the 填报 metrics by zhengai.forms)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return run_demo(tmp_path_factory.mktemp("routes") / "out", "small", out=io.StringIO(), progress=False)


def configured_metrics(tmp_path) -> dict[str, set[str]]:
    """metric → the shipped table mappings (system.table) that produce it."""
    env = SystemSources(tmp_path, {}).environ("http://127.0.0.1:1")
    out: dict[str, set[str]] = defaultdict(set)
    for name, path in config_files().items():
        for table in load_config(path, environ=env).options.tables:
            for metric in table.metrics:
                out[metric].add(f"{name}.{table.name}")
    return out


def observed_sources(demo) -> dict[str, set[str]]:
    with demo.store.engine.connect() as c:
        rows = c.execute(sa.text("SELECT DISTINCT metric, source FROM observations")).all()
    out: dict[str, set[str]] = defaultdict(set)
    for metric, source in rows:
        out[metric].add(source)
    return out


def test_every_enabled_rule_has_a_route_and_the_demo_college_feeds_it(demo, tmp_path):
    rules = [r for r in load_rulebook().rules.values() if r.enabled]
    configured = configured_metrics(tmp_path)
    observed = observed_sources(demo)
    unrouted, unfed = [], []
    for rule in rules:
        if rule.metric in EXPECTED_GAPS:
            continue
        routes = configured.get(rule.metric, set()) | observed.get(rule.metric, set())
        if rule.metric in SYSTEM_METRICS:
            routes.add(f"processor:{SYSTEM_METRICS[rule.metric]}")
        if not routes:
            unrouted.append(rule.id)
        if not observed.get(rule.metric):
            unfed.append(rule.id)
    assert unrouted == [], f"rules with no data route: {unrouted}"
    assert unfed == [], f"rules the demo college gives no observation: {unfed}"
    # The gap list names real rules, and nothing else is missing.
    assert EXPECTED_GAPS <= {r.metric for r in rules}
    # (metrics, not rules: a trend or control rule watches a metric a threshold rule judges too)
    assert len({r.metric for r in rules} - EXPECTED_GAPS) == len({r.metric for r in rules if r.metric in observed})
    # A configured mapping is really what produced its metric in the demo.
    for metric, tables in configured.items():
        if metric in {r.metric for r in rules}:
            assert observed[metric] & tables, (metric, observed[metric], tables)


def test_the_demo_finds_the_anomalies_planted_in_the_new_routes(demo):
    systems = {a.rule_id for a in demo.college.systems.planted}
    assert {
        "student.dropout_rate",
        "student.card_inactivity_days",
        "teacher.evaluation_bottom_rank",
        "school.practice_space_per_student",
        "major.internship_insured",
        "course.supervisor_rating",
    } <= systems
    missed = [(c.anomaly.rule_id, c.anomaly.entity_id, c.detail) for c in demo.planted if not c.found]
    assert missed == []
    assert demo.healthy_breaches == {}
    found = {c.anomaly.rule_id for c in demo.planted if c.found}
    assert systems <= found
    # The 资产 export's title, unit, signature and note lines were not dead-lettered.
    assert not [d for d in demo.result.dead_letters if d.source.startswith("zichan.")]
