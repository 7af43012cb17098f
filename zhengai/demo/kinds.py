"""The demo college's anomalies of the rule kinds beyond one value (issue 15), one per kind:

* ``trend``     course CB (already red on its pass rate last term) passed everyone two terms ago and
                all but student SC one term ago: three falling terms (100 % → 99.x % → 7x %). The
                earlier terms are graded in the 教务 grades table (last term's roster).
* ``progress``  the 2026 budget: 实践教学经费 executed at 40 % of its budget, so spending as a whole
                is behind the share of the year elapsed when the 财务 export was taken (the demo's
                clock: the export's file time is set to it).
* ``composite`` student SC: failed courses and GPA both red → 2 of 4 components (yellow). The
                rule ships disabled; the demo enables it (``demo_rulebook``).
* ``control``   course CD: 100 % attendance for seven weeks, then 95.x % in the last — still above
                the fixed 预警值 95 %, but below its own control limit (4σ, σ at least 1 point): red.

Each expected band is computed here with the real judges over the generated numbers, and the
generator refuses a college where one is not clearly inside its band (like ``checks.verify``).
"""

from __future__ import annotations

import math
import os
from datetime import datetime, time, timedelta
from pathlib import Path

from zhengai.demo.structure import (
    BUDGET_YEAR,
    CST,
    FIRST_MONDAY,
    PREVIOUS_TERM,
    SCHOOL_ID,
    Build,
    PlantedAnomaly,
    stamp,
)
from zhengai.ingest.aggregate import PASS
from zhengai.ingest.records import Band, Level
from zhengai.rules.calendar import china_date
from zhengai.rules.evaluator import as_number
from zhengai.rules.kinds import ControlRule, ProgressRule, TrendRule
from zhengai.rules.kinds_eval import judge_control, judge_progress, judge_trend
from zhengai.rules.loader import RuleSet, load_rulebook

__all__ = [
    "plant_kinds",
    "history_grade_rows",
    "kinds_anomalies",
    "demo_as_of",
    "stamp_export",
    "demo_rulebook",
    "HISTORY_TERMS",
    "DEMO_ENABLED",
]

HISTORY_TERMS = (
    ("2024-2025-2", datetime(2025, 7, 10, 10, 0, tzinfo=CST)),
    ("2025-2026-1", datetime(2026, 1, 20, 10, 0, tzinfo=CST)),
)
PRACTICE_EXECUTED = 0.40  # 实践教学经费: executed share of its budget
DEMO_ENABLED = ("student.composite_risk",)  # disabled in the shipped rulebook, enabled for the demo


def demo_as_of(c: Build) -> datetime:
    """The demo's clock: the end of the last generated week (``College.as_of``)."""
    return datetime.combine(FIRST_MONDAY + timedelta(weeks=len(c.weeks) - 1, days=6), time(23, 59, 59), CST)


def demo_rulebook(rules: RuleSet | None = None) -> RuleSet:
    """The shipped rulebook with the demo's extra rules enabled (student composite risk)."""
    rules = rules or load_rulebook()
    changed = {rid: rules.rules[rid].model_copy(update={"enabled": True}) for rid in DEMO_ENABLED if rid in rules.rules}
    if not changed:
        return rules
    return RuleSet.of(
        {**rules.rules, **changed},
        rules.overrides,
        f"{rules.version}+demo",
        files=rules.files,
        override_lines=rules.override_lines,
    )


def plant_kinds(c: Build) -> None:
    _course_history(c)
    _budget_behind(c)
    _control_drop(c)


def _course_history(c: Build) -> None:
    cb, sc = c.special["CB"], c.special["SC"]
    roster = sorted(s for (s, k) in c.grades if k == cb and s != sc)
    c.grade_history.clear()
    for i, (term, _) in enumerate(HISTORY_TERMS):
        # Earlier terms: last term's passers kept their score (the excellent share stays as it was),
        # its failers passed with 75–85; one term ago student SC took it too and failed.
        rng = c.rng(f"history-{term}")
        for s in roster:
            score = c.grades.get((s, cb), 0)
            c.grade_history.append((s, cb, term, score if score >= PASS else rng.randint(75, 85)))
        if i == 1:
            c.grade_history.append((sc, cb, term, rng.randint(40, 55)))


def history_grade_rows(c: Build, start: int):
    """Rows of the 教务 grades table for the earlier terms (id, student, course, term, score, credits, at)."""
    posted = dict(HISTORY_TERMS)
    for i, (s, k, term, score) in enumerate(c.grade_history, start=start):
        yield (i, s, k, term, float(score), c.courses[k].credits, stamp(posted[term], i))


def _budget_behind(c: Build) -> None:
    for i, row in enumerate(c.finance):
        if row[1] == "5004" and row[2] == "实践教学经费":
            actual = float(row[4])
            c.finance[i] = (row[0], row[1], row[2], math.ceil(actual / PRACTICE_EXECUTED / 1000) * 1000, actual, row[5])


def stamp_export(path: Path, at: datetime) -> None:
    """The 财务 export was taken at the demo's clock (connectors read a file's time as its rows' time)."""
    ts = at.timestamp()
    os.utime(path, (ts, ts))


# Where the last week's rate may land: red below the 4σ line (96 %), yellow below the 3σ one (97 %),
# and always at or above the fixed 预警值 95 %.
_DROPS = ((95.3, 95.8), (96.2, 96.8))


def _control_drop(c: Build) -> None:
    """The first planted course (quiet: full attendance every week) whose size allows a drop into
    the red window, else into the yellow one; it becomes ``special["CK"]``."""
    last = len(c.weeks) - 1
    choice = None
    for lo, hi in _DROPS:
        for key in ("CD", "CE", "CF", "CB", "CC"):
            k = c.courses[c.special[key]]
            size = c.n_current[k.id] * k.sessions
            m = next((m for m in range(1, size) if lo <= 100 * (1 - m / size) <= hi), None)
            if m is not None:
                choice = (k, m)
                break
        if choice:
            break
    if choice is None:
        raise ValueError("no planted course is large enough to plant an attendance drop to 95–97 %")
    cd, missed = choice
    c.special["CK"] = cd.id
    skippers = sorted(s.id for s in c.current_students() if cd.id in s.courses and s.id not in c.special.values())
    for s in skippers:
        if missed <= 0:
            break
        n = min(cd.sessions, missed)
        u, e = c.absences.get((s, cd.id, last), (0, 0))
        c.absences[(s, cd.id, last)] = (u + n, e)
        missed -= n


def _rate(scores: list[float]) -> float:
    return 100.0 * sum(x >= PASS for x in scores) / len(scores)


def kinds_anomalies(c: Build, m: dict[tuple[str, str, str], float]) -> tuple[PlantedAnomaly, ...]:
    rules, sp, out, errors = load_rulebook().rules, c.special, [], []

    def expect(rule_id: str, judged, band: Band, margin: float, what: str) -> None:
        if judged is None or judged.band is not band:
            errors.append(f"{rule_id}: {what} is {judged.band.value if judged else 'not judged'}, not {band.value}")
        elif margin < 0.3:
            errors.append(f"{rule_id}: {what} is within 0.3 of a line")

    # trend: course CB, three falling terms
    cb = c.courses[sp["CB"]]
    series = {t: _rate([float(x) for s, k, term, x in c.grade_history if term == t]) for t, _ in HISTORY_TERMS}
    now = m[("course.pass_rate", cb.id, PREVIOUS_TERM)]
    trend_rule = rules["course.pass_rate_trend"]
    assert isinstance(trend_rule, TrendRule)
    trend = judge_trend(trend_rule, PREVIOUS_TERM, now, series)
    rates = [*series.values(), now]
    expect(
        "course.pass_rate_trend",
        trend,
        Band.yellow,
        3 * min(a - b for a, b in zip(rates, rates[1:], strict=False)),
        "CB",
    )
    out.append(
        PlantedAnomaly(
            "course.pass_rate_trend",
            Level.course,
            cb.id,
            Band.yellow,
            PREVIOUS_TERM,
            "course_teacher",
            cb.teacher_id,
            f"{cb.name}（{cb.id}）：及格率连续 3 学期下降 " + " → ".join(f"{r:.1f}%" for r in rates),
        )
    )

    # progress: the school's 2026 budget execution at the export's time
    spend = [(r[3], r[4]) for r in c.finance if r[1] in ("5001", "5003", "5004") and isinstance(r[4], float)]
    rate = 100 * sum(float(a) for _, a in spend) / sum(b for b, _ in spend)
    rule = rules["school.budget_execution_progress"]
    assert isinstance(rule, ProgressRule)
    progress = judge_progress(rule, BUDGET_YEAR, rate, demo_as_of(c))
    th = progress.thresholds
    margin = min(as_number(th.warning) - rate, rate - as_number(th.standard))
    expect(rule.id, progress, Band.yellow, margin, "budget execution")
    out.append(
        PlantedAnomaly(
            rule.id,
            Level.school,
            SCHOOL_ID,
            Band.yellow,
            BUDGET_YEAR,
            "office:财务处",
            c.offices["财务处"],
            f"截至 {china_date(demo_as_of(c)):%m-%d} 预算执行 {rate:.1f}%，按时间应执行 {th.target:.1f}%"
            f"（实践教学经费只执行了预算的 {PRACTICE_EXECUTED:.0%}）",
        )
    )

    # composite: student SC (failed courses and GPA red; attendance normal)
    s = c.students[sp["SC"]]
    bands = [m.get(("student.failed_courses", s.id, PREVIOUS_TERM)), m.get(("student.gpa", s.id, PREVIOUS_TERM))]
    if None in bands:
        errors.append("student.composite_risk: SC has no grades")
    last = c.weeks[-1]
    out.append(
        PlantedAnomaly(
            "student.composite_risk",
            Level.student,
            s.id,
            Band.yellow,
            last,
            "counsellor",
            c.classes[s.class_id].counsellor_id,
            f"学生{s.name}（{s.id}）：不及格课程与学分绩点两项红色预警，4 项中 2 项 → 综合风险黄色",
        )
    )

    # control: course CK, last week below its own control limit
    cd = c.courses[sp["CK"]]
    weeks = {w: m[("course.attendance_rate", cd.id, w)] for w in c.weeks}
    control_rule = rules["course.attendance_control"]
    assert isinstance(control_rule, ControlRule)
    control = judge_control(control_rule, last, weeks[last], weeks)
    band = control.band if control else Band.normal
    if control is not None:
        th = control.thresholds
        lines = (as_number(th.standard), as_number(th.warning))  # the 4σ and 3σ lines
        expect(
            "course.attendance_control",
            control,
            band if band.is_breach else Band.red,
            min(abs(weeks[last] - x) for x in lines),
            "CK's last week",
        )
    else:
        errors.append("course.attendance_control: CK not judged")
    if weeks[last] < 95:
        errors.append("course.attendance_control: CK's last week must still meet the fixed 预警值 95 %")
    out.append(
        PlantedAnomaly(
            "course.attendance_control",
            Level.course,
            cd.id,
            band,
            last,
            "course_teacher",
            cd.teacher_id,
            f"{cd.name}（{cd.id}）：前 {len(c.weeks) - 1} 周到课率均为 100%，{last} 周降至 {weeks[last]:.1f}%——"
            "仍高于预警值 95%，但低于本课程自己的控制下限",
        )
    )
    if errors:
        raise RuntimeError("demo college does not hold its planted promises (rule kinds):\n  " + "\n  ".join(errors))
    return tuple(out)
