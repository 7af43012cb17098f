"""Aggregation formulas on hand-made records with known answers."""

from datetime import UTC, datetime

import pytest

from zhengai.ingest.aggregate import attendance_metrics, directory_metrics, finance_metrics, grade_metrics
from zhengai.ingest.directory import Directory
from zhengai.ingest.records import AttendanceEvent, Entity, FinanceEvent, GradeEvent, Person

T = datetime(2026, 10, 9, 10, tzinfo=UTC)


def att(student, course, week, scheduled, attended, excused=0, n=0):
    return AttendanceEvent(
        student_id=student,
        course_id=course,
        week=week,
        scheduled=scheduled,
        attended=attended,
        excused=excused,
        occurred_at=T,
        source="t",
        key=f"a|{student}|{course}|{week}|{n}",
    )


def values(observations):
    return {(o.metric, o.entity_id, o.period): o.value for o in observations}


def test_attendance_rates_and_absence_hours():
    events = [
        att("S1", "C1", "2026-W40", 2, 2),
        att("S2", "C1", "2026-W40", 2, 1),
        att("S1", "C2", "2026-W40", 2, 0, excused=2),
        att("S1", "C1", "2026-W41", 2, 1),
    ]
    v = values(attendance_metrics(events, "2026-2027-1"))
    assert v[("course.attendance_rate", "C1", "2026-W40")] == 75.0
    assert v[("course.attendance_rate", "C2", "2026-W40")] == 0.0
    assert v[("student.attendance_rate", "S1", "2026-W40")] == 50.0
    assert v[("student.absence_hours", "S1", "2026-2027-1")] == 2  # only the unexcused session of W41
    assert v[("student.absence_hours", "S2", "2026-2027-1")] == 2


def test_a_corrected_tally_replaces_the_first():
    first = att("S1", "C1", "2026-W40", 2, 0, n=1)
    fixed = first.model_copy(update={"attended": 2, "occurred_at": T.replace(hour=12)})
    v = values(attendance_metrics([first, fixed], "2026-2027-1"))
    assert v[("course.attendance_rate", "C1", "2026-W40")] == 100.0


def test_grades():
    def g(s, c, score, credits=2.0):
        return GradeEvent(
            student_id=s,
            course_id=c,
            term="2025-2026-2",
            score=score,
            credits=credits,
            occurred_at=T,
            source="t",
            key=f"g|{s}|{c}",
        )

    v = values(grade_metrics([g("S1", "C1", 95), g("S2", "C1", 55), g("S1", "C2", 75, 4.0), g("S2", "C2", 59)]))
    assert v[("course.pass_rate", "C1", "2025-2026-2")] == 50.0
    assert v[("course.excellent_rate", "C1", "2025-2026-2")] == 50.0
    assert v[("student.failed_courses", "S2", "2025-2026-2")] == 2
    assert v[("student.gpa", "S1", "2025-2026-2")] == pytest.approx((4.0 * 2 + 2.5 * 4) / 6, abs=1e-4)
    assert v[("student.gpa", "S2", "2025-2026-2")] == 0.0


def directory():
    def p(i):
        return Person(id=i, name=f"人{i}")

    recs = [
        Entity(id="SCH", kind="school", name="示范学院"),
        Entity(id="D1", kind="department", name="智能制造学院", parent_id="SCH"),
        Entity(id="M1", kind="major", name="机电一体化技术", parent_id="D1"),
        Entity(id="K1", kind="class", name="机电2401", parent_id="M1", responsible={"counsellor": p("P1")}),
        Entity(id="K2", kind="class", name="机电2402", parent_id="M1", responsible={"counsellor": p("P1")}),
    ]
    recs += [Entity(id=f"S{i}", kind="student", name=f"学生{i}", parent_id="K1" if i % 2 else "K2") for i in range(10)]
    recs.append(Entity(id="S99", kind="student", name="休学生", parent_id="K1", attributes={"status": "休学"}))
    recs += [
        Entity(
            id="T1",
            kind="teacher",
            name="甲",
            parent_id="D1",
            attributes={
                "fulltime": True,
                "degree": "博士",
                "title": "教授",
                "birth_year": 1975,
                "dual_qualified": True,
                "major_id": "M1",
            },
        ),
        Entity(
            id="T2",
            kind="teacher",
            name="乙",
            parent_id="D1",
            attributes={
                "fulltime": True,
                "degree": "学士",
                "title": "讲师",
                "birth_year": 1990,
                "dual_qualified": False,
                "major_id": "M1",
            },
        ),
        Entity(
            id="T3",
            kind="teacher",
            name="丙",
            parent_id="D1",
            attributes={"fulltime": False, "degree": "硕士", "title": "高级工程师"},
        ),
        Entity(
            id="C1",
            kind="course",
            name="机械制图",
            parent_id="M1",
            responsible={"course_teacher": p("T1")},
            attributes={"weekly_hours": 4},
        ),
        Entity(
            id="C2",
            kind="course",
            name="电工基础",
            parent_id="M1",
            responsible={"course_teacher": p("T1")},
            attributes={"weekly_hours": 6},
        ),
    ]
    return Directory(recs)


def test_directory_ratios():
    v = values(directory_metrics(directory(), year="2026", term="2026-2027-1", as_of=T))
    assert v[("school.student_teacher_ratio", "SCH", "2026")] == 5.0  # 10 enrolled / 2 full-time
    assert v[("school.postgrad_degree_teacher_ratio", "SCH", "2026")] == 50.0
    assert v[("school.senior_title_teacher_ratio", "SCH", "2026")] == 50.0
    assert v[("school.counselor_student_ratio", "SCH", "2026-2027-1")] == 10.0
    assert v[("major.enrolled_students", "M1", "2026")] == 10
    assert v[("major.dual_qualified_ratio", "M1", "2026")] == 50.0
    assert v[("teacher.weekly_hours", "T1", "2026-2027-1")] == 10
    assert v[("teacher.senior_prof_teaching", "T1", "2026-2027-1")] == 2
    assert ("teacher.senior_prof_teaching", "T2", "2026-2027-1") not in v  # a 讲师 is not observed


def test_finance_ratios_count_each_line_once():
    def f(cat, actual, code):
        return FinanceEvent(
            school_id="SCH",
            year="2026",
            category=cat,
            item=code,
            budget=actual,
            actual=actual,
            occurred_at=T,
            source="t",
            key=f"f|{code}",
        )

    lines = [
        f("appropriation", 150000.0, "4002"),
        f("tuition", 50000.0, "4001"),
        f("teaching", 30000.0, "5003"),
        f("teaching", 20000.0, "5004"),
        f("public_funds", 100000.0, "5001"),
        f("teacher_training", 5500.0, "5002"),
    ]
    v = values(finance_metrics(lines + lines[:1], directory()))
    assert v[("school.fiscal_appropriation_per_student", "SCH", "2026")] == 15000.0
    assert v[("school.teaching_investment_ratio", "SCH", "2026")] == 25.0
    assert v[("school.teacher_training_budget_ratio", "SCH", "2026")] == 5.5


def test_directory_routing_walks_up_and_merges_contacts():
    d = directory()
    d.add(Person(id="P1", name="人P1", mobile="13812345678", email="p1@example.edu.cn"))
    person, via = d.responsible("S3", "counsellor")
    assert (person.id, via, person.mobile) == ("P1", "K1", "13812345678")
    assert d.lineage("S3") == ("SCH", "D1", "M1", "K1", "S3")
