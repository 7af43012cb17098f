"""People and names of the demo college: the catalog of departments, majors and courses, Chinese
names, contacts, and the staff directory that the HR (人事) API serves.

Everything takes an explicit ``random.Random``: the demo must be the same for the same seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

__all__ = [
    "CATALOG",
    "COMMON_COURSES",
    "OFFICES",
    "SENIOR_TITLES",
    "Staff",
    "Contacts",
    "NameMaker",
    "TeacherPlan",
    "build_teachers",
    "build_staff",
]

# (二级学院, majors, the department's professional courses). Catalog order is stable so that the
# planted entities (M0101, M0102, M0201, M0202) always carry the same names.
CATALOG: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "智能制造学院",
        ("机电一体化技术", "数控技术", "工业机器人技术", "模具设计与制造", "电气自动化技术", "智能制造装备技术"),
        (
            "机械制图",
            "电工电子技术",
            "液压与气动技术",
            "PLC应用技术",
            "机械设计基础",
            "数控编程与加工",
            "工业机器人编程",
            "传感器与检测技术",
            "电机与拖动",
            "单片机应用技术",
            "金属切削机床",
            "公差配合与测量",
        ),
    ),
    (
        "信息工程学院",
        ("计算机应用技术", "软件技术", "大数据技术", "云计算技术应用", "人工智能技术应用", "计算机网络技术"),
        (
            "程序设计基础",
            "Python程序设计",
            "Java程序设计",
            "数据库技术与应用",
            "Web前端开发",
            "Linux操作系统",
            "计算机网络基础",
            "数据结构",
            "大数据分析技术",
            "云计算平台部署",
            "机器学习应用",
            "软件测试技术",
        ),
    ),
    (
        "汽车工程学院",
        (
            "新能源汽车技术",
            "汽车检测与维修技术",
            "汽车制造与试验技术",
            "智能网联汽车技术",
            "汽车技术服务与营销",
            "汽车电子技术",
        ),
        (
            "汽车构造",
            "汽车电气设备",
            "发动机电控技术",
            "汽车底盘检修",
            "动力电池技术",
            "驱动电机与控制技术",
            "汽车故障诊断",
            "汽车营销实务",
            "智能网联汽车概论",
            "汽车维护与保养",
            "汽车电工电子基础",
            "汽车空调检修",
        ),
    ),
    (
        "建筑工程学院",
        ("建筑工程技术", "工程造价", "建筑装饰工程技术", "建设工程管理", "市政工程技术", "道路与桥梁工程技术"),
        (
            "建筑识图与构造",
            "建筑材料",
            "建筑力学",
            "建筑施工技术",
            "工程测量",
            "建筑工程计量与计价",
            "BIM建模技术",
            "建设工程法规",
            "钢筋混凝土结构",
            "土力学与地基基础",
            "建筑CAD",
            "施工组织设计",
        ),
    ),
    (
        "经济管理学院",
        ("大数据与会计", "电子商务", "市场营销", "现代物流管理", "金融服务与管理", "连锁经营与管理"),
        (
            "基础会计",
            "财务会计",
            "经济学基础",
            "管理学基础",
            "统计基础",
            "网店运营",
            "市场调查与预测",
            "物流管理基础",
            "税费计算与申报",
            "成本核算与管理",
            "商务数据分析",
            "消费者行为分析",
        ),
    ),
    (
        "电子信息学院",
        ("应用电子技术", "物联网应用技术", "电子信息工程技术", "集成电路技术", "智能产品开发与应用", "现代通信技术"),
        (
            "电路分析基础",
            "模拟电子技术",
            "数字电子技术",
            "嵌入式系统应用",
            "物联网技术导论",
            "传感网应用开发",
            "电子产品装配与调试",
            "集成电路版图设计",
            "通信原理",
            "印制电路板设计",
            "无线通信技术",
            "智能终端开发",
        ),
    ),
    (
        "医药健康学院",
        ("护理", "药学", "康复治疗技术", "医学检验技术", "智慧健康养老服务与管理", "医学影像技术"),
        (
            "人体解剖学",
            "生理学",
            "病理学",
            "药理学",
            "基础护理学",
            "内科护理",
            "外科护理",
            "康复评定技术",
            "临床检验基础",
            "医用化学",
            "健康评估",
            "老年护理",
        ),
    ),
    (
        "艺术设计学院",
        ("视觉传达设计", "环境艺术设计", "数字媒体艺术设计", "室内艺术设计", "动漫制作技术", "广告艺术设计"),
        (
            "设计素描",
            "设计色彩",
            "构成设计",
            "图形创意",
            "字体设计",
            "版式设计",
            "图像处理",
            "三维建模与渲染",
            "室内设计原理",
            "摄影摄像基础",
            "动画原理",
            "品牌形象设计",
        ),
    ),
    (
        "旅游与文化学院",
        ("酒店管理与数字化运营", "旅游管理", "烹饪工艺与营养", "会展策划与管理", "空中乘务", "商务英语"),
        (
            "旅游学概论",
            "导游业务",
            "前厅服务与管理",
            "客房服务与管理",
            "餐饮服务与管理",
            "中式烹调工艺",
            "会展策划",
            "民航服务礼仪",
            "商务英语视听说",
            "旅游市场营销",
            "酒店英语",
            "旅游政策与法规",
        ),
    ),
    (
        "交通运输学院",
        (
            "城市轨道交通运营管理",
            "铁道交通运营管理",
            "城市轨道交通机电技术",
            "高速铁路客运服务",
            "港口与航运管理",
            "道路运输管理",
        ),
        (
            "城市轨道交通概论",
            "行车组织",
            "客运组织",
            "车站设备",
            "轨道交通信号基础",
            "列车运行控制",
            "供电系统",
            "运输安全管理",
            "票务管理",
            "客运服务礼仪",
            "应急处理",
            "交通运输经济",
        ),
    ),
)

# 公共基础课: every major runs its own sections of these.
COMMON_COURSES = ("高等数学", "大学英语", "信息技术", "思想道德与法治", "大学生心理健康教育", "职业生涯规划")

# 职能部门 whose heads the school entity names (responsible "office:<name>").
OFFICES = (
    "党政办",
    "教务处",
    "人事处",
    "财务处",
    "学工处",
    "招生就业处",
    "资产处",
    "后勤处",
    "图书馆",
    "实训中心",
    "督导处",
    "保卫处",
    "信息中心",
    "科研处",
    "质量办",
    "团委",
    "心理健康教育中心",
    "学生资助中心",
    "校企合作办",
    "教师发展中心",
)
_OFFICE_TITLES = {"财务处": "高级会计师", "图书馆": "副研究馆员", "心理健康教育中心": "讲师"}

SENIOR_TITLES = frozenset({"教授", "副教授", "高级工程师", "高级实验师", "正高级工程师"})

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
    "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
# Common surnames are far more frequent (王/李/张 alone are ~20 %): a Zipf-like weight.
_SURNAME_WEIGHTS = tuple(1.0 / (i + 6) for i in range(len(_SURNAMES)))
_GIVEN_MALE = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙林阳峰建文志国晨博洋轩然睿航哲翔毅"
_GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀玲婷雪慧颖琳欣怡佳悦琪晶妍倩蕾璐梦雅丹萍红玉兰月凤洁琴云莉菲彤萱"


class NameMaker:
    """Chinese full names; unique within one maker (people in one directory are told apart)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def __call__(self) -> str:
        rng = self._rng
        for _ in range(1000):
            surname = rng.choices(_SURNAMES, weights=_SURNAME_WEIGHTS)[0]
            pool = _GIVEN_MALE if rng.random() < 0.5 else _GIVEN_FEMALE
            given = "".join(rng.choice(pool) for _ in range(2 if rng.random() < 0.7 else 1))
            name = surname + given
            if name not in self._used:
                self._used.add(name)
                return name
        raise RuntimeError("ran out of distinct names")  # needs ~10^5 people; far beyond any size


class Contacts:
    """Mobile numbers (11 digits, unique across the college) and staff e-mail/DingTalk ids."""

    DOMAIN = "sfzy.edu.cn"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._mobiles: set[str] = set()

    def mobile(self) -> str:
        while True:
            m = self._rng.choice(("133", "135", "138", "139", "150", "152", "158", "176", "180", "186", "189", "199"))
            m += f"{self._rng.randrange(10**8):08d}"
            if m not in self._mobiles:
                self._mobiles.add(m)
                return m

    def id_card(self, birth_year: int) -> str:
        """A fake 身份证号: region 99xxxx does not exist, so it can never be a real person's,
        yet it has the right shape and a valid ISO 7064 check digit."""
        rng = self._rng
        body = (
            f"99{rng.randrange(10**4):04d}{birth_year}"
            f"{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randrange(1000):03d}"
        )
        weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
        check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
        return body + check

    def staff(self, person_id: str) -> tuple[str, str, str]:
        """(dingtalk_user_id, mobile, email)."""
        return f"ding_{person_id.lower()}", self.mobile(), f"{person_id.lower()}@{self.DOMAIN}"


@dataclass
class Staff:
    """One row of the HR directory, in the API's field order."""

    id: str
    name: str
    type: str  # teacher | counsellor | dean | office
    department_id: str | None
    major_id: str | None
    title: str
    degree: str
    dual_qualified: bool
    fulltime: bool
    birth_year: int
    training_days: int
    dingtalk_user_id: str
    mobile: str
    email: str
    updated_at: str

    def api_item(self) -> dict:
        return asdict(self)

    def person(self) -> dict:
        """The contact card the school endpoint uses (the fields of a ``Person`` record)."""
        return {
            "id": self.id,
            "name": self.name,
            "dingtalk_user_id": self.dingtalk_user_id,
            "mobile": self.mobile,
            "email": self.email,
        }


@dataclass(frozen=True)
class TeacherPlan:
    """How many teachers a major gets and which planted roles they play.

    Roles are tags the college generator gives meaning to: ``leader`` (专业带头人, senior title),
    ``healthy`` (the healthy reference teacher: 副教授 under 55), ``idle_prof`` (教授 under 55),
    others (``overload``, ``eval_red`` …) only need to exist. ``dual`` overrides the number of
    dual-qualified full-time teachers (None = comfortably above 60 %).
    """

    major_id: str
    department_id: str
    fulltime: int
    parttime: int
    roles: tuple[str, ...]
    dual: int | None = None
    training: tuple[tuple[str, int], ...] = ()  # (role, training days) for planted roles


def _quota(n: int, shares: list[tuple[str, float]]) -> list[str]:
    """Exactly n labels in the given shares (largest remainder), so small colleges keep the mix."""
    raw = [(label, n * share) for label, share in shares]
    counts = {label: math.floor(x) for label, x in raw}
    rest = n - sum(counts.values())
    for label, _x in sorted(raw, key=lambda p: p[1] - math.floor(p[1]), reverse=True)[:rest]:
        counts[label] += 1
    return [label for label, _ in shares for _ in range(counts[label])]


def build_teachers(
    rng: random.Random, plans: list[TeacherPlan], names: NameMaker, contacts: Contacts, updated_at: str
) -> tuple[list[Staff], dict[tuple[str, str], str]]:
    """Teachers (type ``teacher``) for every major, and (major_id, role) → teacher id.

    Title and degree mixes are quotas over all full-time teachers, so the school's senior-title
    (~33 %) and postgraduate (~58 %) ratios land in their normal band at any size.
    """
    n_ft = sum(p.fulltime for p in plans)
    titles = _quota(n_ft, [("教授", 0.06), ("副教授", 0.22), ("高级工程师", 0.05), ("讲师", 0.45), ("助教", 0.22)])
    degrees = _quota(n_ft, [("博士", 0.08), ("硕士", 0.50), ("学士", 0.42)])
    rng.shuffle(titles)
    rng.shuffle(degrees)

    def take(pool: list[str], preferred: tuple[str, ...]) -> str:
        for wanted in preferred:
            if wanted in pool:
                pool.remove(wanted)
                return wanted
        raise ValueError(f"too few full-time teachers for the required titles/degrees {preferred}")

    # Required titles are handed out before the random ones, across all majors, so a small
    # college still has a 教授 for the idle professor and a senior title for every leader.
    # The idle and healthy teachers are observed by teacher.senior_prof_teaching (教授/副教授
    # under 55); other planted teachers take junior titles so their one breach stays the planted one.
    required = {
        "idle_prof": (("教授",), ("博士",)),
        "healthy": (("副教授",), ("硕士", "博士")),
        "leader": (("副教授", "高级工程师", "教授"), ()),
    }
    fixed: dict[tuple[str, str], tuple[str, str]] = {}
    for rank in ("idle_prof", "healthy", "leader", ""):
        for plan in plans:
            for role in plan.roles:
                if (role if role in required else "") != rank or (plan.major_id, role) in fixed:
                    continue
                want_title, want_degree = required.get(role, (("讲师", "助教", "高级工程师"), ()))
                degree = take(degrees, want_degree) if want_degree else degrees.pop()
                fixed[(plan.major_id, role)] = (take(titles, want_title), degree)

    staff: list[Staff] = []
    roles: dict[tuple[str, str], str] = {}
    seq = 0
    for plan in plans:
        if len(plan.roles) > plan.fulltime:
            raise ValueError(f"{plan.major_id}: {len(plan.roles)} planted roles need as many full-time teachers")
        members: list[Staff] = []
        for i in range(plan.fulltime + plan.parttime):
            seq += 1
            tid = f"T{seq:04d}"
            fulltime = i < plan.fulltime
            role = plan.roles[i] if i < len(plan.roles) else ""
            birth = {"idle_prof": 1979, "healthy": 1980}.get(role, 0)
            if role:
                title, degree = fixed[(plan.major_id, role)]
            elif fulltime:
                title, degree = titles.pop(), degrees.pop()
            else:  # 企业兼职教师: engineers from industry, rarely postgraduates
                title = "高级工程师" if rng.random() < 0.6 else "讲师"
                degree, birth = ("硕士" if rng.random() < 0.3 else "学士"), rng.randint(1970, 1990)
            if not birth:
                lo, hi = {
                    "教授": (1964, 1980),
                    "副教授": (1968, 1986),
                    "高级工程师": (1968, 1986),
                    "讲师": (1976, 1994),
                    "助教": (1990, 2000),
                }[title]
                birth = rng.randint(lo, hi)
            days = dict(plan.training).get(role) if role else None
            if days is None:
                days = 22 if role == "healthy" else rng.randint(11, 30)  # normal: ≥ 10 (预警值)
            dingtalk, mobile, email = contacts.staff(tid)
            members.append(
                Staff(
                    id=tid,
                    name=names(),
                    type="teacher",
                    department_id=plan.department_id,
                    major_id=plan.major_id,
                    title=title,
                    degree=degree,
                    dual_qualified=False,
                    fulltime=fulltime,
                    birth_year=birth,
                    training_days=days,
                    dingtalk_user_id=dingtalk,
                    mobile=mobile,
                    email=email,
                    updated_at=updated_at,
                )
            )
            if role:
                roles[(plan.major_id, role)] = tid
        # 双师素质: only full-time teachers count for major.dual_qualified_ratio.
        fulltimers = members[: plan.fulltime]
        n_dual = plan.dual if plan.dual is not None else math.ceil(0.65 * plan.fulltime)
        healthy = [t for t in fulltimers if roles.get((plan.major_id, "healthy")) == t.id]
        others = [t for t in fulltimers if t not in healthy]
        for t in healthy + rng.sample(others, n_dual - len(healthy)):
            t.dual_qualified = True
        for t in members[plan.fulltime :]:
            t.dual_qualified = rng.random() < 0.8  # industry engineers mostly hold both
        staff.extend(members)
    return staff, roles


def build_staff(
    rng: random.Random,
    kind: str,
    person_id: str,
    department_id: str | None,
    names: NameMaker,
    contacts: Contacts,
    updated_at: str,
    office: str | None = None,
) -> Staff:
    """A non-teaching staff member: ``counsellor`` (辅导员), ``dean`` (院长) or ``office`` (职能部门)."""
    if kind == "counsellor":
        title, degree, birth = rng.choice(("讲师", "讲师", "助教")), "硕士", rng.randint(1984, 1998)
    elif kind == "dean":
        title, degree, birth = rng.choice(("教授", "副教授")), rng.choice(("博士", "硕士")), rng.randint(1966, 1978)
    else:
        title = _OFFICE_TITLES.get(office or "", rng.choice(("副教授", "讲师", "高级工程师")))
        degree, birth = rng.choice(("博士", "硕士", "硕士", "学士")), rng.randint(1968, 1985)
    dingtalk, mobile, email = contacts.staff(person_id)
    return Staff(
        id=person_id,
        name=names(),
        type=kind,
        department_id=department_id,
        major_id=None,
        title=title,
        degree=degree,
        dual_qualified=False,
        fulltime=True,
        birth_year=birth,
        training_days=rng.randint(6, 20),
        dingtalk_user_id=dingtalk,
        mobile=mobile,
        email=email,
        updated_at=updated_at,
    )
