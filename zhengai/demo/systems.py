"""The demo college's other campus systems (学工, 招就, 实习, 资产, 图书, 科研, 一卡通, 课程平台, 督导,
师资), written as real sources and read back through the shipped table mappings.

``write_systems(c, metrics, out_dir)`` writes SQLite databases, a GBK 资产 export with the title,
unit, signature and note lines real exports carry, and the JSON a loopback API (招就, 科研) serves;
it returns the sources, the planted anomalies of these routes and the values it meant (so the
demo checks the same promises as for the four systems). The connectors are built from the
configuration files in ``zhengai/connectors/systems/`` — the same files ``deploy/connectors/``
ships — with the demo's paths and URLs in their environment variables. Contract: SOURCES.md.
"""

from __future__ import annotations

import csv
import json
import secrets
import sqlite3
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from threading import Thread
from typing import Any
from urllib.parse import parse_qs, urlsplit

from zhengai.demo.structure import (
    BUDGET_YEAR,
    CURRENT_TERM,
    FIRST_MONDAY,
    M_HEALTHY,
    M_PRACTICE,
    M_SHRINKING,
    M_TINY,
    SCHOOL_ID,
    Build,
    PlantedAnomaly,
)
from zhengai.ingest.records import Band, Level
from zhengai.ingest.systems import percentiles

__all__ = ["SystemSources", "SYSTEM_NAMES", "write_systems", "SystemsApi", "system_connectors"]

SYSTEM_NAMES = ("xuegong", "zhaojiu", "shixi", "zichan", "tushu", "keyan", "yikatong", "kecheng", "dudao", "shizi")
_SQL = ("xuegong", "shixi", "tushu", "yikatong", "kecheng", "dudao", "shizi")
USERNAME, PASSWORD = "zhengai-reader", "demo-systems-secret"


@dataclass
class SystemSources:
    folder: Path
    api_data: dict[str, list[dict]]  # path → items (招就, 科研)
    planted: list[PlantedAnomaly] = field(default_factory=list)
    values: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (metric, entity, period) → value

    def planted_tuple(self) -> tuple[PlantedAnomaly, ...]:
        return tuple(self.planted)

    def db(self, name: str) -> Path:
        return self.folder / f"{name}.sqlite"

    def environ(self, base_url: str) -> dict[str, str]:
        env = {f"{n.upper()}_DB_URL": f"sqlite:///{self.db(n)}" for n in _SQL}
        env.update(
            ZHAOJIU_BASE_URL=base_url,
            ZHAOJIU_PASSWORD=PASSWORD,
            KEYAN_BASE_URL=base_url,
            KEYAN_PASSWORD=PASSWORD,
            ZICHAN_PATH=str(self.folder / "zichan"),
            ZICHAN_SETTLE="0s",
            ZHENGAI_SCHOOL_ID=SCHOOL_ID,
        )
        return env


def _u(rng, low: float, high: float, nd: int = 1) -> float:
    return round(rng.uniform(low, high), nd)


class _Writer:
    def __init__(self, c: Build, metrics: dict, folder: Path) -> None:
        self.c, self.m, self.folder = c, metrics, folder
        self.src = SystemSources(folder, {})
        self.stamp = "2026-10-20T10:00:00+08:00"
        self.last_day = FIRST_MONDAY + timedelta(weeks=len(c.weeks), days=-1)

    def value(self, metric: str, entity: str, period: str, v: float) -> float:
        self.src.values[(metric, entity, period)] = v
        return v

    def plant(self, metric: str, entity: str, band: Band, period: str, role: str, person: str, note: str) -> None:
        self.src.planted.append(
            PlantedAnomaly(metric, Level(metric.split(".")[0]), entity, band, period, role, person, note)
        )

    def sqlite(self, name: str, schema: str, tables: dict[str, list[tuple]]) -> None:
        path = self.src.db(name)
        path.unlink(missing_ok=True)
        con = sqlite3.connect(path)
        try:
            con.executescript(schema)
            with con:
                for table, rows in tables.items():
                    if rows:
                        con.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(rows[0]))})", rows)
        finally:
            con.close()

    # -- 学工 (students) ------------------------------------------------------------------------
    def xuegong(self) -> None:
        c, rng, term, year = self.c, self.c.rng("sys:xuegong"), CURRENT_TERM, BUDGET_YEAR
        sp = c.special
        fitness, conduct, aid, psych, status = [], [], [], [], []
        final_cohort = min(s.cohort for s in c.students.values())
        no_cert = next(
            s.id
            for s in sorted(c.students.values(), key=lambda s: s.id)
            if s.cohort == final_cohort and s.id not in sp.values()
        )
        for s in sorted(c.students.values(), key=lambda s: s.id):
            fit = 55.0 if s.id == sp["SB"] else _u(rng, 74, 92)
            fitness.append((s.id, year, self.value("student.physical_fitness", s.id, year, fit), self.stamp))
            cert = None
            if s.cohort == final_cohort:
                cert = 0.0 if s.id == no_cert else 100.0
                self.value("student.certificate_by_final_year", s.id, term, cert)
            conduct.append(
                (
                    s.id,
                    term,
                    self.value("student.moral_conduct_score", s.id, term, _u(rng, 76, 96)),
                    self.value("student.quality_credits", s.id, term, _u(rng, 2.5, 6)),
                    self.value("student.personal_plan_attainment", s.id, term, _u(rng, 88, 100)),
                    self.value("student.credit_progress", s.id, term, _u(rng, 97, 100)),
                    cert,
                    self.stamp,
                )
            )
            if rng.random() < 0.1:
                aid.append((s.id, term, 1, 1, self.stamp))
                self.value("student.aid_coverage", s.id, term, 100.0)
            if rng.random() < 0.02:
                week = c.weeks[rng.randrange(len(c.weeks))]
                psych.append((s.id, week, 1, self.stamp))
                self.value("student.psych_followup", s.id, week, 100.0)
        # 学籍异动: three students of one class left this term (退学/流失).
        klass = c.students[sp["SC"]].class_id
        members = sorted(s.id for s in c.students.values() if s.class_id == klass)
        left = [m for m in members if m not in sp.values()][:3]
        for sid in left:
            status.append((sid, term, "退学", 1, self.stamp))
        rate = 100.0 * len(left) / len(members)
        for k in c.classes:
            self.value("student.dropout_rate", k, term, rate if k == klass else 0.0)
        cs = c.classes[klass].counsellor_id
        self.plant(
            "student.dropout_rate",
            klass,
            Band.red,
            term,
            "counsellor",
            cs,
            f"{c.classes[klass].name}：本学期 {len(left)} 名学生退学/流失，流失率 {rate:.1f}%，高于标准值 3%",
        )
        s = c.students[sp["SB"]]
        self.plant(
            "student.physical_fitness",
            s.id,
            Band.red,
            year,
            "counsellor",
            c.classes[s.class_id].counsellor_id,
            f"学生（{s.id}）：体质健康测试 55.0 分，低于及格线 60 分",
        )
        s = c.students[no_cert]
        self.plant(
            "student.certificate_by_final_year",
            s.id,
            Band.red,
            term,
            "counsellor",
            c.classes[s.class_id].counsellor_id,
            f"学生（{s.id}）：毕业年级尚未取得任何职业技能等级证书",
        )
        self.sqlite(
            "xuegong",
            """
CREATE TABLE tizhi_ceshi (xh TEXT, xn TEXT, zf REAL, gxsj TEXT, PRIMARY KEY (xh, xn));
CREATE TABLE zonghe_ceping (xh TEXT, xq TEXT, dy_fen REAL, sz_xf REAL, jh_dcl REAL, xf_jd REAL, zs_qk REAL, gxsj TEXT,
  PRIMARY KEY (xh, xq));
CREATE TABLE zizhu (xh TEXT, xq TEXT, kn_rd INTEGER, hz INTEGER, gxsj TEXT, PRIMARY KEY (xh, xq));
CREATE TABLE xinli_genjin (xh TEXT, zc TEXT, gj_7t INTEGER, gxsj TEXT, PRIMARY KEY (xh, zc));
CREATE TABLE xueji_yidong (xh TEXT, xq TEXT, yd_lb TEXT, ls INTEGER, gxsj TEXT, PRIMARY KEY (xh, xq));
""",
            {
                "tizhi_ceshi": fitness,
                "zonghe_ceping": conduct,
                "zizhu": aid,
                "xinli_genjin": psych,
                "xueji_yidong": status,
            },
        )

    # -- 招就, 实习, 师资 (majors, teachers) --------------------------------------------------------
    def majors(self) -> None:
        c, year, term, last = self.c, BUDGET_YEAR, CURRENT_TERM, self.c.weeks[-1]
        rng = c.rng("sys:majors")
        jobs, practice, insured, staff = [], [], [], []
        for mid in sorted(c.majors):
            grads = 100 if mid == M_SHRINKING else 60 + rng.randrange(80)
            rate = 90.5 if mid == M_SHRINKING else _u(rng, 93.5, 98)
            employed = round(grads * rate / 100)
            self.value("major.employment_rate", mid, year, 100 * employed / grads)
            plan = 80 + rng.randrange(60)
            admitted = plan - (0 if mid == M_HEALTHY else rng.randrange(3))
            self.value("major.enrollment_fill_rate", mid, year, 100 * admitted / plan)
            salary = 3500.0 if mid == M_PRACTICE else float(rng.randrange(4400, 5600, 50))
            row = dict(
                major_id=mid,
                year=year,
                graduates=grads,
                employed=employed,
                plan=plan,
                admitted=admitted,
                relevance=_u(rng, 72, 88),
                local_rate=_u(rng, 62, 80),
                salary=salary,
                employer_satisfaction=_u(rng, 91, 98),
                alumni_satisfaction=_u(rng, 91, 98),
                updated_at=self.stamp,
            )
            for k, metric in (
                ("relevance", "employment_relevance"),
                ("local_rate", "local_employment_rate"),
                ("salary", "starting_salary"),
                ("employer_satisfaction", "employer_satisfaction"),
                ("alumni_satisfaction", "alumni_satisfaction"),
            ):
                self.value(f"major.{metric}", mid, year, float(row[k]))  # type: ignore[arg-type]
            jobs.append(row)
            practice.append(
                (
                    mid,
                    term,
                    self.value("major.internship_participation", mid, term, _u(rng, 98.5, 100)),
                    self.value("major.internship_six_months", mid, term, _u(rng, 91, 100)),
                    self.value("major.internship_relevance", mid, term, _u(rng, 86, 96)),
                    self.value("major.partner_enterprises", mid, year, float(6 + rng.randrange(9))),
                    year,
                    self.stamp,
                )
            )
            for week in c.weeks:
                interns = 30 + rng.randrange(30)
                ok = interns - 2 if (mid == M_TINY and week == last) else interns
                insured.append((mid, week, interns, ok, self.stamp))
                self.value("major.internship_insured", mid, week, 100 * ok / interns)
            staff.append(
                (
                    mid,
                    year,
                    self.value("major.team_parttime_share", mid, year, _u(rng, 21, 35)),
                    self.value("major.certificate_rate", mid, year, _u(rng, 81, 95)),
                    self.stamp,
                )
            )
        self.src.api_data["/api/zj/majors"] = jobs
        students = len(c.students)
        plan, enrolled, reported = 2900, 2890, 2780
        self.value("school.enrollment_plan_completion", SCHOOL_ID, year, 100 * enrolled / plan)
        self.value("school.freshman_report_rate", SCHOOL_ID, year, 100 * reported / enrolled)
        self.src.api_data["/api/zj/school"] = [
            dict(
                school_id=SCHOOL_ID,
                year=year,
                plan=plan,
                enrolled=enrolled,
                reported=reported,
                students=students,
                updated_at=self.stamp,
            )
        ]
        lead = lambda m: c.majors[m].leader_id  # noqa: E731
        self.plant(
            "major.employment_rate",
            M_SHRINKING,
            Band.yellow,
            year,
            "major_leader",
            lead(M_SHRINKING),
            f"{c.majors[M_SHRINKING].name}：毕业生就业率 "
            f"{self.src.values[('major.employment_rate', M_SHRINKING, year)]:.1f}%，低于预警值 92%",
        )
        self.plant(
            "major.starting_salary",
            M_PRACTICE,
            Band.red,
            year,
            "major_leader",
            lead(M_PRACTICE),
            f"{c.majors[M_PRACTICE].name}：毕业生起薪 3500 元，低于标准值 3800 元",
        )
        v = self.src.values[("major.internship_insured", M_TINY, last)]
        self.plant(
            "major.internship_insured",
            M_TINY,
            Band.red,
            last,
            "major_leader",
            lead(M_TINY),
            f"{c.majors[M_TINY].name}：{last} 周 2 名顶岗实习学生未投保实习责任险（投保率 {v:.1f}%）",
        )
        self.sqlite(
            "shixi",
            """
CREATE TABLE shixi_tongji (zy_dm TEXT, xq TEXT, cy_l REAL, man_6y REAL, dk_l REAL, hz_qy REAL, nd TEXT, gxsj TEXT,
  PRIMARY KEY (zy_dm, xq));
CREATE TABLE shixi_baoxian (zy_dm TEXT, zc TEXT, sx_rs INTEGER, tb_rs INTEGER, gxsj TEXT, PRIMARY KEY (zy_dm, zc));
""",
            {"shixi_tongji": practice, "shixi_baoxian": insured},
        )
        self.teachers(staff)

    def teachers(self, major_rows: list[tuple]) -> None:
        c, year, term = self.c, BUDGET_YEAR, CURRENT_TERM
        rng = c.rng("sys:teachers")
        red = c.roles[(M_SHRINKING, "train_red")]
        overload = c.roles[(M_TINY, "overload")]
        research, people = [], []
        for tid in sorted(t for t, s in c.staff.items() if s.type == "teacher"):
            out = 0.2 if tid == red else _u(rng, 1.5, 4)
            research.append(
                dict(
                    teacher_id=tid,
                    year=year,
                    papers=self.value("teacher.research_output", tid, year, out),
                    service_wan=self.value("teacher.service_income", tid, year, _u(rng, 1.5, 8)),
                    awards=self.value("teacher.award_count", tid, year, float(rng.randrange(4))),
                    updated_at=self.stamp,
                )
            )
            hours = 768.0 if tid == overload else float(rng.randrange(290, 400, 2))
            people.append(
                (
                    tid,
                    term,
                    self.value("teacher.annual_workload", tid, term, hours),
                    self.value("teacher.enterprise_practice", tid, year, _u(rng, 7.2, 10)),
                    self.value("teacher.parttime_qualification", tid, term, 100.0),
                    self.value("teacher.new_parttime_review_done", tid, term, 100.0),
                    year,
                    self.stamp,
                )
            )
        self.src.api_data["/api/ky/teachers"] = research
        self.plant(
            "teacher.research_output",
            red,
            Band.red,
            year,
            "teacher",
            red,
            f"教师（{red}）：本年度科研成果折合 0.2 项，低于标准值 0.5",
        )
        self.plant(
            "teacher.annual_workload",
            overload,
            Band.red,
            term,
            "teacher",
            overload,
            f"教师（{overload}）：近两学期课堂教学 768 学时，超出标准区间 200–520",
        )
        self.sqlite(
            "shizi",
            """
CREATE TABLE jiaoshi_kaohe (gh TEXT, xq TEXT, gzl REAL, qy_sj REAL, jz_zg REAL, kh_wc REAL, nd TEXT, gxsj TEXT,
  PRIMARY KEY (gh, xq));
CREATE TABLE zhuanye_tuandui (zy_dm TEXT, nd TEXT, jz_zb REAL, zs_l REAL, gxsj TEXT, PRIMARY KEY (zy_dm, nd));
""",
            {"jiaoshi_kaohe": people, "zhuanye_tuandui": major_rows},
        )

    # -- 课程平台, 督导, 评教 rank ---------------------------------------------------------------------
    def courses(self) -> None:
        c, term, rng, sp = self.c, CURRENT_TERM, self.c.rng("sys:courses"), self.c.special
        weekly, termly = [], []
        for k in sorted(c.courses):
            for w, week in enumerate(c.weeks):
                hw = 87.0 if (k == sp["CB"] and w == len(c.weeks) - 1) else _u(rng, 92, 99)
                weekly.append(
                    (
                        k,
                        week,
                        self.value("course.homework_completion_rate", k, week, hw),
                        self.value("course.participation_rate", k, week, _u(rng, 78, 92)),
                        self.value("course.resource_usage", k, week, _u(rng, 82, 95)),
                        self.stamp,
                    )
                )
            rating = 70.0 if k == sp["CD"] else _u(rng, 86, 95)
            plans = 96.0 if k == sp["CE"] else 100.0
            termly.append(
                (
                    k,
                    term,
                    self.value("course.supervisor_rating", k, term, rating),
                    self.value("course.lesson_plan_ontime", k, term, plans),
                    self.value("course.evaluation_coverage", k, term, 100.0),
                    self.value("course.attainment_rate", k, term, _u(rng, 86, 96)),
                    self.stamp,
                )
            )
        self.sqlite(
            "kecheng",
            """
CREATE TABLE kc_zhou (kc_dm TEXT, zc TEXT, zy_wcl REAL, ct_cyl REAL, zy_syl REAL, gxsj TEXT, PRIMARY KEY (kc_dm, zc));
""",
            {"kc_zhou": weekly},
        )
        self.sqlite(
            "dudao",
            """
CREATE TABLE dd_xueqi (kc_dm TEXT, xq TEXT, dd_pf REAL, ja_as REAL, pj_fg REAL, mb_dc REAL, gxsj TEXT,
  PRIMARY KEY (kc_dm, xq));
""",
            {"dd_xueqi": termly},
        )
        t = lambda key: c.courses[sp[key]].teacher_id  # noqa: E731
        last = c.weeks[-1]
        self.plant(
            "course.homework_completion_rate",
            sp["CB"],
            Band.yellow,
            last,
            "course_teacher",
            t("CB"),
            f"课程 {sp['CB']}：{last} 周作业完成率 87.0%，低于预警值 90%",
        )
        self.plant(
            "course.supervisor_rating",
            sp["CD"],
            Band.red,
            term,
            "course_teacher",
            t("CD"),
            f"课程 {sp['CD']}：督导听课评分 70.0，低于标准值 75",
        )
        self.plant(
            "course.lesson_plan_ontime",
            sp["CE"],
            Band.yellow,
            term,
            "course_teacher",
            t("CE"),
            f"课程 {sp['CE']}：教案按时提交率 96.0%，低于预警值 100%",
        )
        self.ranks()

    def ranks(self) -> None:
        """评教 末位: every department's lowest-ranked full-time teachers are warned — that is the
        rule. The generator lists them as planted, from the teacher scores the checks computed."""
        c, term = self.c, CURRENT_TERM
        sections: dict[str, list[float]] = {}  # as the stream computes it: the mean of the section scores
        for row in c.sections.get(term, []):
            if row["respondents"] > 0:
                sections.setdefault(c.courses[row["course_id"]].teacher_id, []).append(row["score_avg"])
        by_dept: dict[str, dict[str, float]] = {}
        for tid, scores in sections.items():
            by_dept.setdefault(c.staff[tid].department_id or "", {})[tid] = round(sum(scores) / len(scores), 4)
        for dept in by_dept.values():
            for tid, pct in percentiles(dept).items():
                self.value("teacher.evaluation_bottom_rank", tid, term, pct)
                if pct < 10:
                    band = Band.red if pct < 5 else Band.yellow
                    self.plant(
                        "teacher.evaluation_bottom_rank",
                        tid,
                        band,
                        term,
                        "teacher",
                        tid,
                        f"教师（{tid}）：本学期评教得分在本二级学院排第 {pct:.1f} 百分位（末位）",
                    )

    # -- 资产, 图书, 一卡通 (school, students) ----------------------------------------------------
    def school(self) -> None:
        c, year, rng = self.c, BUDGET_YEAR, self.c.rng("sys:school")
        n = len(c.students)
        space, equipment, practice = round(n * 17.6), round(n * 6900.0, 2), round(n * 5.7)
        for metric, total in (
            ("teaching_admin_space_per_student", space),
            ("equipment_value_per_student", equipment),
            ("practice_space_per_student", practice),
        ):
            self.value(f"school.{metric}", SCHOOL_ID, year, total / n)
        folder = self.folder / "zichan"
        folder.mkdir(exist_ok=True)
        with open(folder / f"资产统计_{year}.csv", "w", encoding="gbk", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(("示范职业技术学院 办学条件资产统计表",))
            w.writerow((f"统计年度：{year}", "", "单位：平方米、元"))
            w.writerow(("学校代码", "年度", "教学行政用房面积", "教学仪器设备值", "实践场所面积", "在校生数"))
            w.writerow((SCHOOL_ID, year, f"{space:,}", f"{equipment:,.2f}", f"{practice:,}", n))
            w.writerow(("制表人：资产处 王某", "", "审核：李某", "", "负责人：赵某"))
            w.writerow(("注：1. 面积按产权及租用面积合计；2. 设备值为单价 1000 元以上设备原值。",))
            w.writerow(("数据来源：资产管理系统，导出时间 2026-10-20",))
        office = c.offices["实训中心"]
        self.plant(
            "school.practice_space_per_student",
            SCHOOL_ID,
            Band.yellow,
            year,
            "office:实训中心",
            office,
            f"生均实践场所面积 {practice / n:.2f} 平方米，介于标准值 5.3 与预警值 6 之间",
        )
        books = round(n * 65)
        self.value("school.books_per_student", SCHOOL_ID, year, books / n)
        self.plant(
            "school.books_per_student",
            SCHOOL_ID,
            Band.yellow,
            year,
            "office:图书馆",
            c.offices["图书馆"],
            f"生均纸质图书 {books / n:.1f} 册，介于标准值 60 与预警值 70 之间",
        )
        month = f"{self.last_day:%Y-%m}"
        use = [(s, month, rng.randrange(1, 6), rng.randrange(4, 12), self.stamp) for s in sorted(c.students)]
        for sid, _, borrowed, visits, _ in use:
            self.value("student.library_engagement", sid, month, float(borrowed + visits))
        self.sqlite(
            "tushu",
            """
CREATE TABLE guancang (xx_dm TEXT, nd TEXT, zz_ts INTEGER, zx_rs INTEGER, gxsj TEXT, PRIMARY KEY (xx_dm, nd));
CREATE TABLE jieyue_yue (xh TEXT, yf TEXT, jy_cs INTEGER, rg_cs INTEGER, gxsj TEXT, PRIMARY KEY (xh, yf));
""",
            {"guancang": [(SCHOOL_ID, year, books, n, self.stamp)], "jieyue_yue": use},
        )
        self.card(rng)

    def card(self, rng) -> None:
        """一卡通: each student's records of the last 7 days (消费/门禁 counts per day)."""
        c, sp = self.c, self.c.special
        rows = []
        day = self.last_day.isoformat()
        for sid in sorted(c.students):
            quiet = 5 if sid == sp["SA"] else (1 if rng.random() < 0.3 else 0)
            for back in range(7):
                d = self.last_day - timedelta(days=back)
                rows.append((sid, d.isoformat(), 0 if back < quiet else rng.randrange(2, 9)))
            self.value("student.card_inactivity_days", sid, day, float(quiet))
        s = c.students[sp["SA"]]
        self.plant(
            "student.card_inactivity_days",
            s.id,
            Band.red,
            day,
            "counsellor",
            c.classes[s.class_id].counsellor_id,
            f"学生（{s.id}）：一卡通连续 5 天无消费、门禁记录",
        )
        self.sqlite(
            "yikatong",
            "CREATE TABLE card_daily (xh TEXT, rq TEXT, cs INTEGER, PRIMARY KEY (xh, rq));",
            {"card_daily": rows},
        )


def write_systems(c: Build, metrics: dict, out_dir: Path) -> SystemSources:
    """Write every other system's source into ``out_dir/systems``."""
    folder = Path(out_dir) / "systems"
    folder.mkdir(parents=True, exist_ok=True)
    w = _Writer(c, metrics, folder)
    w.xuegong()
    w.majors()
    w.courses()
    w.school()
    return w.src


# --- the loopback API of 招就 and 科研 ----------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if urlsplit(self.path).path != "/api/login" or body.get("password") != PASSWORD:
            return self._send(401, {"error": "bad credentials"})
        self._send(200, {"token": self.server.token})

    def do_GET(self) -> None:  # noqa: N802
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            return self._send(401, {"error": "POST /api/login first"})
        url = urlsplit(self.path)
        items = self.server.data.get(url.path)
        if items is None:
            return self._send(404, {"error": f"no route {url.path}"})
        q = parse_qs(url.query)
        page, size = int(q.get("page", ["1"])[0]), int(q.get("page_size", ["100"])[0])
        self._send(200, {"items": items[(page - 1) * size : page * size], "total": len(items), "page": page})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, data: dict[str, list[dict]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.data, self.token = data, secrets.token_hex(16)


class SystemsApi:
    """招就 and 科研 on loopback (``POST /api/login`` → bearer token; paged GETs)."""

    def __init__(self, data: dict[str, list[dict]]) -> None:
        self._server = _Server(data)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SystemsApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def config_files() -> dict[str, Path]:
    """The shipped table mappings (``zhengai/connectors/systems/<name>.yaml``)."""
    folder = files("zhengai.connectors") / "systems"
    return {n: Path(str(folder / f"{n}.yaml")) for n in SYSTEM_NAMES}


def system_connectors(sources: SystemSources, api: SystemsApi) -> list:
    """The other systems' connectors, built from the shipped configuration files."""
    from zhengai.connectors.loading import build_connector, load_config

    env = sources.environ(api.base_url)
    return [build_connector(load_config(path, environ=env)) for path in config_files().values()]
