"""Publishing is the gate, in the real worker (Kafka + PostgreSQL): a saved rulebook file changes
nothing the worker judges by until `zhengai rules publish`; then the worker takes the publication
whole on its rules timer."""

from __future__ import annotations

import shutil
import time

import pytest
from streamkit import LAST_WEEK, NOW, college, produce, wait_until  # tests/ is on sys.path (conftest)

from zhengai.cli import main
from zhengai.ingest.records import Level, Observation
from zhengai.ingest.topics import ENTITIES, OBSERVATIONS
from zhengai.rules.loader import default_rulebook_path, load_rulebook

pytestmark = pytest.mark.integration


def test_the_worker_runs_the_published_rulebook_not_the_saved_one(env):
    rulebook = env.workdir / "rulebook"
    shutil.copytree(default_rulebook_path(), rulebook)
    produce(env.bootstrap, env.topic(ENTITIES), college(students_per_class=3))
    assert (
        main(["rules", "publish", str(rulebook), "--author", "质量办", "--reason", "基线", "--store", env.store_url])
        == 0
    )
    baseline = load_rulebook(rulebook).rules["student.attendance_rate"].version
    w = env.worker(rulebook=rulebook).start()  # the gate is on by default

    def observe(entity_id: str) -> None:
        produce(
            env.bootstrap,
            env.topic(OBSERVATIONS),
            [
                Observation(
                    level=Level.student,
                    entity_id=entity_id,
                    metric="student.attendance_rate",
                    value=93.0,
                    period=LAST_WEEK,
                    observed_at=NOW,
                    source="test",
                )
            ],
        )

    def verdict(entity_id: str):
        return env.scalar("SELECT rule_version || ' ' || band FROM verdicts WHERE entity_id = :e", e=entity_id)

    observe("S1001")  # 93 is below the warning value 95: yellow
    assert wait_until(lambda: verdict("S1001"), 30, "the first verdict", w) == f"{baseline} yellow"

    # The quality office saves a lower warning value and does not publish it.
    path = rulebook / "student.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("warning: 95", "warning: 92", 1), encoding="utf-8")
    time.sleep(2.0)  # four rules-timer polls: time to (wrongly) take the saved file
    observe("S1002")
    assert wait_until(lambda: verdict("S1002"), 30, "a verdict after the save", w) == f"{baseline} yellow"

    assert (
        main(
            [
                "rules",
                "publish",
                str(rulebook),
                "--author",
                "质量办",
                "--reason",
                "预警值下调",
                "--store",
                env.store_url,
            ]
        )
        == 0
    )
    changed = load_rulebook(rulebook).rules["student.attendance_rate"].version
    wait_until(lambda: "running published rulebook #2" in w.log_text(), 30, "the publication taken", w)
    observe("S1003")  # 93 meets the published warning value 92 and the standard 90
    assert wait_until(lambda: verdict("S1003"), 30, "a verdict on the publication", w) == f"{changed} normal"
