"""The 诊改 catalog: 诊断项目 and 诊断要素 (seed 004 附件1/附件4) and the three kinds of diagnosis
with their cadence per level (004:376–484), with every default rule placed on its 诊断要素.

The data lives in ``diagnosis_catalog.yaml`` next to this module (outside ``rulebook/``, which the
rule loader reads whole). ``load_catalog()`` validates it: element codes exist, every rule it names
is a known level, cadences are rule cycles. ``Catalog.check_rules(ruleset)`` lists rules the catalog
and the rulebook disagree on (a test keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from zhengai.ingest.records import Level

__all__ = [
    "CADENCES",
    "KINDS",
    "Assessment",
    "Catalog",
    "CatalogError",
    "Element",
    "LevelCadence",
    "Project",
    "catalog_path",
    "load_catalog",
]

CADENCES = ("day", "week", "month", "term", "year")
CADENCE_ZH = {"day": "每日", "week": "每周", "month": "每月", "term": "每学期", "year": "每年"}
# the three kinds of diagnosis (004:376): 自主（改进性）诊断, 考核性诊断, 综合性诊断
KINDS = {"self": "自主诊断", "assessment": "考核性诊断", "comprehensive": "综合性诊断"}


class CatalogError(ValueError):
    """The catalog file is inconsistent; ``errors`` lists every problem (Chinese first)."""

    def __init__(self, errors: Iterable[str]):
        self.errors = list(errors)
        super().__init__("诊断要素目录有误（diagnosis catalog rejected）:\n" + "\n".join(f"  {e}" for e in self.errors))


@dataclass(frozen=True)
class Assessment:
    cadence: str  # day | week | month | term | year
    assessor: str  # the assessing body: 质量办, 教务处, 二级学院
    line: str  # seed citation, e.g. 004:406

    @property
    def cadence_zh(self) -> str:
        return CADENCE_ZH[self.cadence]


@dataclass(frozen=True)
class LevelCadence:
    """When each kind of diagnosis happens for one level, and who assesses."""

    level: Level
    self_cadence: str
    assessment: Assessment
    comprehensive: str
    line: str

    def cadence(self, kind: str) -> str:
        return {"self": self.self_cadence, "assessment": self.assessment.cadence, "comprehensive": self.comprehensive}[
            kind
        ]


@dataclass(frozen=True)
class Project:
    code: str  # "3"
    name: str  # 专业质量保证
    line: str
    elements: tuple[Element, ...] = ()


@dataclass(frozen=True)
class Element:
    """One 诊断要素 as a rule sees it (``Catalog.element_of``) or as a row of the report."""

    project_code: str
    project_name: str
    code: str  # "3.5"
    name: str  # 专业教学团队
    line: str  # where the element is in 004 附件1
    level: Level | None = None  # set when looked up for a rule
    cadence: str | None = None  # the rule's 自主诊断 cadence
    assessor: str | None = None  # the body that runs its 考核性诊断
    assessment_cadence: str | None = None
    rule_line: str | None = None  # the 诊断点/关键量化指标 line the rule is placed by

    @property
    def label(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def project_label(self) -> str:
        return f"{self.project_code} {self.project_name}"


@dataclass(frozen=True)
class Catalog:
    projects: tuple[Project, ...]
    cadences: Mapping[Level, LevelCadence]
    rules: Mapping[str, tuple[str, str, str | None]]  # rule id → (element code, line, cadence override)
    _elements: Mapping[str, Element] = field(default_factory=dict, repr=False)

    @property
    def elements(self) -> tuple[Element, ...]:
        return tuple(e for p in self.projects for e in p.elements)

    def element(self, code: str) -> Element | None:
        return self._elements.get(code)

    def element_of(self, rule_id: str) -> Element | None:
        """The 诊断要素 of a rule, with the rule's level, cadence and assessor; None for a rule the
        catalog does not place (a school's own rule)."""
        placed = self.rules.get(rule_id)
        if placed is None:
            return None
        code, line, cadence = placed
        base = self._elements[code]
        level = Level(rule_id.split(".", 1)[0])
        lc = self.cadences[level]
        return Element(
            base.project_code,
            base.project_name,
            base.code,
            base.name,
            base.line,
            level=level,
            cadence=cadence or lc.self_cadence,
            assessor=lc.assessment.assessor,
            assessment_cadence=lc.assessment.cadence,
            rule_line=line,
        )

    def rules_of(self, code: str) -> list[str]:
        return sorted(r for r, (c, _line, _cad) in self.rules.items() if c == code)

    def check_rules(self, rule_ids: Iterable[str]) -> list[str]:
        """Disagreements with a rulebook: catalog rules it lacks and its rules the catalog lacks."""
        known = set(rule_ids)
        out = [f"目录中的规则不在规则库中：{r}（unknown rule）" for r in sorted(set(self.rules) - known)]
        out += [f"规则未归入诊断要素：{r}（rule has no element）" for r in sorted(known - set(self.rules))]
        return out


def catalog_path() -> Path:
    return Path(__file__).resolve().parent / "diagnosis_catalog.yaml"


def _parse(data: Any) -> Catalog:
    errors: list[str] = []
    if not isinstance(data, dict):
        raise CatalogError(["文件不是映射（not a mapping）"])
    projects: list[Project] = []
    elements: dict[str, Element] = {}
    for p in data.get("projects") or []:
        els = []
        for e in p.get("elements") or []:
            if not str(e["code"]).startswith(f"{p['code']}."):
                errors.append(f"诊断要素 {e['code']} 不属于诊断项目 {p['code']}")
            el = Element(str(p["code"]), p["name"], str(e["code"]), e["name"], e.get("line", ""))
            if el.code in elements:
                errors.append(f"诊断要素编号重复：{el.code}")
            elements[el.code] = el
            els.append(el)
        projects.append(Project(str(p["code"]), p["name"], p.get("line", ""), tuple(els)))
    cadences: dict[Level, LevelCadence] = {}
    for name, c in (data.get("cadences") or {}).items():
        try:
            level = Level(name)
        except ValueError:
            errors.append(f"cadences: 未知层面 {name}")
            continue
        a = c.get("assessment") or {}
        for what, value in (
            ("self", c.get("self")),
            ("assessment", a.get("cadence")),
            ("comprehensive", c.get("comprehensive")),
        ):
            if value not in CADENCES:
                errors.append(f"cadences.{name}.{what}: 周期须为 {'|'.join(CADENCES)}，实为 {value!r}")
        if not a.get("assessor"):
            errors.append(f"cadences.{name}.assessment: 缺少考核主体 assessor")
        cadences[level] = LevelCadence(
            level,
            c.get("self"),
            Assessment(str(a.get("cadence")), a.get("assessor", ""), a.get("line", "")),
            c.get("comprehensive"),
            c.get("line", ""),
        )
    for level in Level:
        if level not in cadences:
            errors.append(f"cadences: 缺少层面 {level.value}")
    rules: dict[str, tuple[str, str, str | None]] = {}
    for rule_id, r in (data.get("rules") or {}).items():
        code = str(r.get("element"))
        if code not in elements:
            errors.append(f"rules.{rule_id}: 诊断要素 {code} 不在诊断项目表中")
        prefix = rule_id.split(".", 1)[0]
        if prefix not in Level.__members__:
            errors.append(f"rules.{rule_id}: 规则编号须以层面开头（school/major/course/teacher/student）")
        cad = r.get("cadence")
        if cad is not None and cad not in CADENCES:
            errors.append(f"rules.{rule_id}.cadence: 周期须为 {'|'.join(CADENCES)}")
        rules[rule_id] = (code, str(r.get("line", "")), cad)
    if errors:
        raise CatalogError(errors)
    return Catalog(tuple(projects), cadences, rules, elements)


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> Catalog:
    with open(path, encoding="utf-8") as fh:
        return _parse(yaml.safe_load(fh))


def load_catalog(path: Path | str | None = None) -> Catalog:
    """The catalog shipped with the package (or one at ``path``), validated."""
    p = Path(path) if path is not None else catalog_path()
    return _load_cached(str(p), p.stat().st_mtime)
