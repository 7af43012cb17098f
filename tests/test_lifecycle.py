"""The first-version warning lifecycle: pure transitions, then the same through the SQL store."""

from datetime import datetime, timedelta, timezone

import pytest

from zhengai.ingest.records import Band, Direction, Thresholds, Verdict
from zhengai.warnings.lifecycle import Status, TransitionKind, step
from zhengai.warnings.schema import WarningEventRow, WarningRow
from zhengai.warnings.store import OutboxItem, WarningStore

T0 = datetime(2026, 10, 1, tzinfo=timezone.utc)
TH = Thresholds(direction=Direction.higher_is_better, target=98, standard=90, warning=95)


def verdict(period: str, band: Band, value: float = 80.0, rule="course.attendance_rate", entity="C0001", key=None, day=0):
    return Verdict(rule_id=rule, rule_version="v1", level="course", entity_id=entity, metric=rule, period=period,
                   value=value, thresholds=TH, band=band, reason=f"{band.value} {value}", observed_at=T0,
                   evaluated_at=T0 + timedelta(days=day), observation_key=key or f"obs|{entity}|{period}")


def run(bands):
    state, kinds = None, []
    for i, (period, band) in enumerate(bands):
        state, ts = step(state, verdict(period, band, day=i))
        kinds += [t.kind for t in ts]
    return state, kinds


@pytest.mark.parametrize(
    "series, kinds, final",
    [
        ([("2026-W40", Band.normal)], [], None),
        ([("2026-W40", Band.yellow)], [TransitionKind.opened], Status.open),
        ([("2026-W40", Band.yellow), ("2026-W41", Band.yellow)], [TransitionKind.opened], Status.open),
        ([("2026-W40", Band.yellow), ("2026-W41", Band.red)], [TransitionKind.opened, TransitionKind.severity_up], Status.open),
        ([("2026-W40", Band.red), ("2026-W41", Band.yellow)], [TransitionKind.opened, TransitionKind.severity_down], Status.open),
        ([("2026-W40", Band.red), ("2026-W41", Band.excellent)], [TransitionKind.opened, TransitionKind.resolved], Status.resolved),
        ([("2026-W40", Band.red), ("2026-W41", Band.stale)], [TransitionKind.opened], Status.open),  # no data ≠ recovery
        ([("2026-W41", Band.red), ("2026-W40", Band.normal)], [TransitionKind.opened], Status.open),  # late old data
        ([("2026-W40", Band.red), ("2026-W40", Band.red)], [TransitionKind.opened], Status.open),  # replay
    ],
)
def test_transitions(series, kinds, final):
    state, got = run(series)
    assert got == kinds
    assert (state.status if state else None) is final


def test_new_episode_after_recovery():
    state, kinds = run([("2026-W40", Band.red), ("2026-W41", Band.normal), ("2026-W42", Band.yellow)])
    assert kinds == [TransitionKind.opened, TransitionKind.resolved, TransitionKind.opened]
    assert state.episode == 2 and state.opened_period == "2026-W42"
    # an old breach arriving late changes nothing
    again, ts = step(state, verdict("2026-W39", Band.red))
    assert ts == [] and again is state
    resolved, _ = run([("2026-W40", Band.red), ("2026-W41", Band.normal)])
    after, ts = step(resolved, verdict("2026-W40", Band.red, key="late"))
    assert ts == [] and after is resolved


@pytest.fixture
def store(tmp_path):
    s = WarningStore(f"sqlite:///{tmp_path / 'w.sqlite'}")
    s.create_schema()
    return s


def apply(store, verdicts):
    return store.apply_verdicts(
        verdicts, rule_names={"course.attendance_rate": "学生到课率"},
        responsible=lambda v: ("course_teacher", "T0001"), due_date=lambda v: v.evaluated_at + timedelta(days=7),
        on_transition=lambda row, t: [OutboxItem("memory", "T0001", f"{t.kind.value}", "body")],
    )


def test_store_one_warning_per_episode_and_idempotent_replay(store):
    series = [verdict("2026-W40", Band.yellow), verdict("2026-W41", Band.red), verdict("2026-W42", Band.normal),
              verdict("2026-W43", Band.red)]
    applied = apply(store, series)
    assert [a.transition.kind for a in applied] == [TransitionKind.opened, TransitionKind.severity_up,
                                                     TransitionKind.resolved, TransitionKind.opened]
    assert apply(store, series) == []  # the same verdicts again: nothing new
    # re-evaluating the same observations (new evaluation time, same keys) changes nothing either
    assert apply(store, [verdict("2026-W43", Band.red, day=5)]) == []
    rows = store.warnings()
    assert [(w.episode, w.status, w.band, w.worst_band) for w in rows] == [(1, "resolved", "normal", "red"), (2, "open", "red", "red")]
    assert store.count(WarningEventRow) == 4
    assert len(store.pending_notifications("memory")) == 4
    first = rows[0]
    assert first.responsible_person_id == "T0001" and first.due_date == T0 + timedelta(days=7)
    assert [e.kind for e in store.events(first.id)] == ["opened", "severity_up", "resolved"]


def test_store_batch_is_atomic(store):
    class Boom(Exception):
        pass

    def explode(row, t):
        raise Boom()

    with pytest.raises(Boom):
        store.apply_verdicts([verdict("2026-W40", Band.red)], rule_names={}, responsible=lambda v: (None, None),
                             due_date=lambda v: None, on_transition=explode)
    assert store.count(WarningRow) == 0
    assert apply(store, [verdict("2026-W40", Band.red)])  # the verdict was not half-stored


def test_a_corrected_value_is_a_new_verdict_but_a_replay_is_not(store):
    apply(store, [verdict("2026-W40", Band.red, value=80.0)])
    assert apply(store, [verdict("2026-W40", Band.red, value=80.0, day=3)]) == []
    corrected = apply(store, [verdict("2026-W40", Band.normal, value=96.0, day=3)])
    assert [a.transition.kind for a in corrected] == [TransitionKind.resolved]


def test_observations_latest_wins(store):
    from zhengai.ingest.records import Observation
    from zhengai.warnings.schema import ObservationRow

    def obs(value):
        return Observation(level="course", entity_id="C1", metric="course.pass_rate", value=value, period="2025-2026-2",
                           observed_at=T0, source="t", key="k1")

    assert store.add_observations([obs(70.0)]) == 1
    assert store.add_observations([obs(70.0)]) == 0
    assert store.add_observations([obs(85.0)]) == 1
    with store.session() as s:
        assert [r.value for r in s.query(ObservationRow)] == [85.0]
