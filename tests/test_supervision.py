"""Stoppages made visible: the stall gauge (pure, table-driven) and the alert rules that read it."""

from __future__ import annotations

from pathlib import Path

import yaml

from zhengai.ingest.supervision import STALLED_SECONDS, StallWatch

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"


def test_stall_counts_only_while_messages_wait_and_nothing_is_taken():
    w = StallWatch()
    steps = [  # (t, lag, taken) → stalled seconds of zg.events
        (0, 0, 0, 0.0),  # idle: nothing waits
        (10, 50, 0, 0.0),  # messages arrive: the clock starts
        (20, 40, 10, 0.0),  # taken: moving
        (30, 40, 10, 10.0),  # nothing taken since t=20
        (90, 40, 10, 70.0),  # … still nothing: 70 s stalled
        (400, 40, 10, 380.0),
        (410, 0, 10, 0.0),  # drained (e.g. the lag measurement caught up): no stall
        (420, 5, 10, 0.0),  # waiting again: the clock starts now
        (500, 5, 10, 80.0),
    ]
    for t, lag, taken, want in steps:
        got = w.observe(t, {"zg.events": lag}, {"zg.events": taken})
        assert got["zg.events"] == want, (t, got)
    assert STALLED_SECONDS.labels(topic="zg.events")._value.get() == 80.0


def test_topics_stall_independently():
    w = StallWatch()
    w.observe(0, {"zg.events": 5, "zg.observations": 5}, {"zg.events": 0, "zg.observations": 0})
    got = w.observe(100, {"zg.events": 5, "zg.observations": 5}, {"zg.events": 0, "zg.observations": 7})
    assert got == {"zg.events": 100.0, "zg.observations": 0.0}


def test_prometheus_loads_the_alert_rules_and_they_read_metrics_the_worker_exports():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["alerts.yml"]
    rules = [
        r for g in yaml.safe_load((DEPLOY / "alerts.yml").read_text(encoding="utf-8"))["groups"] for r in g["rules"]
    ]
    by_name = {r["alert"]: r for r in rules}
    assert "zhengai_consumer_stalled_seconds" in by_name["ZhengaiStreamStalled"]["expr"]
    assert "zhengai_agent_crashes_total" in by_name["ZhengaiAgentCrashed"]["expr"]
    for r in rules:
        assert r["labels"]["team"] == "信息中心"
        assert any("\u4e00" <= ch <= "\u9fff" for ch in r["annotations"]["summary"]), "a Chinese summary"
