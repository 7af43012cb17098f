"""The demo college's 填报: filled workbooks in a drop folder, as offices would hand them in —
保卫处's 校园安全稳定 form, three monthly versions of the 部门工作任务完成情况一览表, and 督导处's 质量事故
register — with their due dates, one of which (the July task update) never arrived.

Planted (each found by ``make demo``):

- school.task_ontime_completion 2026-10 red: 8 of the 10 部门 tasks due in October done on time;
- teacher.plan_completion red (2026-10, 2026-11): one teacher finished 2 of the 4 personal tasks due;
- course.teaching_incidents red: one course with two 一般 教学事故 this term;
- school.quality_incident_count red: three 一般 教学/质量事故 this term (标准值 2);
- school.campus_stability_events red: one 校园不稳定事件 reported by 保卫处 (零容忍);
- school.data_collection_quality red: 4 of the 5 submissions due in the last 90 days arrived on time.
"""

from __future__ import annotations

import os
from datetime import date, datetime, time, timedelta
from pathlib import Path

from openpyxl import load_workbook

from zhengai.demo.structure import BUDGET_YEAR, CST, CURRENT_TERM, SCHOOL_ID, Build, PlantedAnomaly
from zhengai.forms.templates import MONTHS, write_form, write_incidents, write_tasks
from zhengai.ingest.records import Band, Level

__all__ = ["FORMS_METRICS", "compute", "anomalies", "write", "ISSUES", "take_in"]

FORMS_METRICS = (
    "school.serious_incident_count",  # fed by the register; 0 in the demo (nothing serious this term)
    "school.task_ontime_completion",
    "school.quality_incident_count",
    "school.campus_stability_events",
    "school.data_collection_quality",
    "teacher.plan_completion",
    "course.teaching_incidents",
)
YEAR = int(BUDGET_YEAR)
AS_OF_DAY = "2026-11-01"  # the demo clock's day (the end of teaching week 8)


def _at(day: str, hour: int = 10) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(hour), CST)


# (form, office, period, due day, file submitted on — None: never arrived)
ISSUES = (
    ("tasks", "党政办", f"{YEAR}-07", f"{YEAR}-08-05", None),
    ("tasks", "党政办", f"{YEAR}-08", f"{YEAR}-09-05", f"{YEAR}-09-03"),
    ("tasks", "党政办", f"{YEAR}-09", f"{YEAR}-10-05", f"{YEAR}-10-04"),
    ("tasks", "党政办", f"{YEAR}-10", f"{YEAR}-11-05", f"{YEAR}-11-01"),  # not yet due on the demo's day
    ("baowei.stability", "保卫处", BUDGET_YEAR, f"{YEAR}-10-20", f"{YEAR}-10-19"),
    ("incidents", "督导处", CURRENT_TERM, f"{YEAR}-10-31", f"{YEAR}-10-30"),
)


def _picks(c: Build) -> tuple[str, str, list[str]]:
    """The planted course and teacher (none of the other planted roles) and the teachers with plans."""
    taken = set(c.special.values()) | set(c.roles.values())
    course = next(k for k in sorted(c.courses) if k not in taken and c.courses[k].teacher_id not in taken)
    teachers = sorted(t.id for t in c.staff.values() if t.type == "teacher" and t.id not in taken)
    teacher = teachers[0]
    return course, teacher, [teacher, c.special["HT"], *teachers[1:11]]


def _dept_tasks(c: Build) -> list[tuple[str, str, str, str, date, bool]]:
    """(unit, title, 属性, owner, due, done on time): three a month, ten in October."""
    offices = sorted(c.offices.items())
    out = []
    for m in (1, 2, 3, 4, 5, 6, 9, 10, 11, 12):
        n = 10 if m == 10 else 3
        for i in range(n):
            unit, owner = offices[(m * 7 + i) % len(offices)]
            due = date(YEAR, m, 15 if i % 2 else 28)
            out.append(
                (
                    unit,
                    f"{m} 月重点工作 {i + 1}",
                    "重点" if i % 3 == 0 else "常规",
                    owner,
                    due,
                    not (m == 10 and i in (3, 6)),
                )
            )
    return out


def _plan_tasks(c: Build) -> list[tuple[str, str, date, bool]]:
    """(teacher, title, due, done): the planted teacher misses the two October tasks."""
    _, planted, teachers = _picks(c)
    out = []
    for t in teachers:
        out += [
            (t, "完成企业实践 1 个月", date(YEAR, 6, 30), True),
            (t, "听课评课 8 次", date(YEAR, 9, 30), True),
            (t, "发表教研论文 1 篇", date(YEAR, 10, 15), t != planted),
            (t, "完成 1 门课程资源建设", date(YEAR, 10, 31), t != planted),
            (t, "指导学生技能竞赛", date(YEAR, 12, 20), False),
        ]
    return out


def _month_done(due: date, done: bool, upto: int) -> dict[int, object]:
    """Completion by month column up to ``upto``: 100 in the due month when done on time."""
    cells: dict[int, object] = {}
    for m in MONTHS:
        if m > upto:
            break
        if m < due.month:
            cells[m] = "50%" if m == due.month - 1 else None
        elif m == due.month:
            cells[m] = "100%" if done else "60%"
        else:
            cells[m] = "完成" if done else "80%"
    return cells


def _task_rows(c: Build, upto: int) -> list[list]:
    rows: list[list] = []
    for unit, title, attr, owner, due, done in _dept_tasks(c):
        cells = _month_done(due, done, upto)
        rows.append(
            [
                len(rows) + 1,
                unit,
                title,
                attr,
                "部门",
                due.isoformat(),
                *(cells.get(m) for m in MONTHS),
                owner,
                c.staff[owner].name,
            ]
        )
    for t, title, due, done in _plan_tasks(c):
        cells = _month_done(due, done, upto)
        rows.append(
            [
                len(rows) + 1,
                c.staff[t].department_id or "",
                title,
                "常规",
                "个人",
                due.isoformat(),
                *(cells.get(m) for m in MONTHS),
                t,
                c.staff[t].name,
            ]
        )
    return rows


def _incidents(c: Build) -> list[tuple]:
    course, _, _ = _picks(c)
    dept = c.majors[c.courses[course].major_id].department_id
    return [
        ("JX-2026-001", "2026-09-22 08:20", dept, course, "教学事故", "一般", "否", "任课教师迟到 15 分钟", "通报批评"),
        (
            "JX-2026-002",
            "2026-10-13 14:00",
            dept,
            course,
            "教学事故",
            "一般",
            "否",
            "未经批准擅自调课",
            "扣发当月课时津贴",
        ),
        ("ZL-2026-001", "2026-10-21 09:00", dept, None, "质量事故", "一般", "否", "期中试卷命题重复率超标", "重新命题"),
    ]


def compute(c: Build) -> dict[tuple[str, str, str], float]:
    """The six metrics as the forms route must compute them from the files below."""
    from zhengai.forms.incidents import Incident, incident_values, parse_time
    from zhengai.forms.tasks import Task, parse_completion, task_values

    as_of = datetime.combine(date.fromisoformat(AS_OF_DAY), time(23, 59, 59), CST)
    tasks = []
    for i, r in enumerate(_task_rows(c, 10)):
        months = {m: v for m, v in zip(MONTHS, r[6:16], strict=True) if v is not None}
        tasks.append(
            Task(
                str(i),
                YEAR,
                r[1],
                r[2],
                r[3],
                r[4],
                date.fromisoformat(r[5]),
                r[16],
                {m: p for m, v in months.items() if (p := parse_completion(v)) is not None},
            )
        )
    m = {(v.metric, v.entity_id, v.period): v.value for v in task_values(tasks, SCHOOL_ID, as_of)}
    incidents = [
        Incident(r[0], at, r[2], r[3], r[4], r[5], r[6] == "是") for r in _incidents(c) if (at := parse_time(r[1]))
    ]
    m |= {
        (v.metric, v.entity_id, v.period): v.value
        for v in incident_values(incidents, SCHOOL_ID, terms=[CURRENT_TERM], courses=sorted(c.courses))
    }
    m[("school.campus_stability_events", SCHOOL_ID, BUDGET_YEAR)] = 1.0
    due = [i for i in ISSUES if i[3] <= AS_OF_DAY]
    m[("school.data_collection_quality", SCHOOL_ID, AS_OF_DAY)] = (
        100 * sum(1 for i in due if i[4] is not None and i[4] <= i[3]) / len(due)
    )
    return m


def anomalies(c: Build, m: dict[tuple[str, str, str], float]) -> tuple[PlantedAnomaly, ...]:
    course, teacher, _ = _picks(c)
    k = c.courses[course]
    ontime = ("school.task_ontime_completion", SCHOOL_ID, f"{YEAR}-10")
    quality = ("school.data_collection_quality", SCHOOL_ID, AS_OF_DAY)

    def school(metric: str, period: str, office: str, note: str) -> PlantedAnomaly:
        return PlantedAnomaly(
            metric, Level.school, SCHOOL_ID, Band.red, period, f"office:{office}", c.offices[office], note
        )

    plan = [
        PlantedAnomaly(
            "teacher.plan_completion",
            Level.teacher,
            teacher,
            Band.red,
            p,
            "teacher",
            teacher,
            f"教师{c.staff[teacher].name}（{teacher}）：个人发展计划截至 {p} 应完成 4 项、完成 2 项"
            f"（{m[('teacher.plan_completion', teacher, p)]:.0f}%），10 月两项任务逾期",
        )
        for p in (f"{YEAR}-10", f"{YEAR}-11")
    ]
    return (
        school(
            "school.task_ontime_completion",
            f"{YEAR}-10",
            "党政办",
            f"10 月到期的 10 项部门工作任务按期完成 8 项（{m[ontime]:.0f}%），低于标准值 85%（任务一览表逐月导入）",
        ),
        *plan,
        PlantedAnomaly(
            "course.teaching_incidents",
            Level.course,
            course,
            Band.red,
            CURRENT_TERM,
            "course_teacher",
            k.teacher_id,
            f"{k.name}（{course}）：本学期认定一般教学事故 2 起（迟到、擅自调课），高于标准值 1 起",
        ),
        school(
            "school.quality_incident_count",
            CURRENT_TERM,
            "督导处",
            "本学期一般教学/质量事故 3 起（质量事故登记表导入），高于标准值 2 起",
        ),
        school(
            "school.campus_stability_events",
            BUDGET_YEAR,
            "保卫处",
            "保卫处填报表报告本年度校园不稳定事件 1 起（零容忍）",
        ),
        school(
            "school.data_collection_quality",
            AS_OF_DAY,
            "信息中心",
            f"近 90 天到期的 5 份填报中 7 月任务进展未提交，按时率 {m[quality]:.0f}%",
        ),
    )


def write(c: Build, folder: Path) -> Path:
    """The filled workbooks, each with the modification time of when its office dropped it."""
    from zhengai.forms.spec import load_forms
    from zhengai.rules.loader import load_rulebook

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    submitted = {(f, p): s for f, _, p, _, s in ISSUES}
    due = {(f, p): _at(d, 23) for f, _, p, d, _ in ISSUES}
    head = c.offices
    files = []
    for month in (8, 9, 10):
        period = f"{YEAR}-{month:02d}"
        path = write_tasks(
            folder / f"党政办-任务一览表-{period}.xlsx",
            YEAR,
            "党政办",
            due[("tasks", period)],
            _task_rows(c, month),
            period=period,
        )
        _filler(path, "任务", head["党政办"])
        files.append((path, submitted[("tasks", period)]))
    form = load_forms(rules=load_rulebook()).form("baowei.stability")
    path = write_form(
        form,
        load_rulebook(),
        BUDGET_YEAR,
        [(SCHOOL_ID, "学校")],
        due[("baowei.stability", BUDGET_YEAR)],
        folder / "保卫处-校园安全稳定-2026.xlsx",
    )
    wb = load_workbook(path)
    wb["填报"]["H5"] = 1
    wb["填报"]["F2"] = head["保卫处"]
    wb.save(path)
    files.append((path, submitted[("baowei.stability", BUDGET_YEAR)]))
    path = write_incidents(
        folder / f"督导处-质量事故登记-{CURRENT_TERM}.xlsx",
        CURRENT_TERM,
        "督导处",
        due[("incidents", CURRENT_TERM)],
        _incidents(c),
    )
    _filler(path, "事故登记", head["督导处"])
    files.append((path, submitted[("incidents", CURRENT_TERM)]))
    for path, day in files:
        t = _at(day or AS_OF_DAY).timestamp()
        os.utime(path, (t, t))
    return folder


def _filler(path: Path, sheet: str, person: str) -> None:
    wb = load_workbook(path)
    wb[sheet]["F2"] = person
    wb.save(path)


def take_in(folder: Path, pipeline, rules, clock) -> list:
    """Record who owes what (the issued templates), take the drop folder in through the pipeline,
    then measure 数据采集及时率 on the demo's day."""
    from zhengai.forms import Intake, check_due, load_forms
    from zhengai.forms.drop import process_folder
    from zhengai.forms.due import issue

    store = pipeline.store
    for form, office, period, day, _ in ISSUES:
        issue(store, form, office, period, _at(day, 23), _at(day, 9) - timedelta(days=30))
    intake = Intake(store, pipeline, load_forms(rules=rules), rules, directory=lambda: pipeline.directory, clock=clock)
    done = process_folder(folder, intake)
    check_due(intake)
    return done
