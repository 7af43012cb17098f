"""Which rules apply to this school: institution type and province indicator set.

The seed indicator lists mark some indicators by institution type — "*" not for 新建院校, "**"
only for 省级以上示范 (004:781) — and since 2025 each province defines its own 办学能力评价
indicators. A rule says where it applies::

    applies_to:
      institution_types: [国家示范, 省级示范]   # only these types (omit: every type)
      not_institution_types: [新建院校]          # never these
      provinces: [浙江, 江苏]                    # province indicator sets that include it (omit: all)

and the school says what it is, in its configuration (environment, like every setting)::

    ZHENGAI_INSTITUTION_TYPE=新建院校    ZHENGAI_PROVINCE=浙江

A rule that does not apply is kept (its metric is still known, stored and shown) but not judged —
like ``enabled: false``. A school that configures nothing is judged by every rule; a rule that
names types or provinces is then judged too (unknown school: nothing is silently dropped).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["AppliesTo", "Institution", "institution", "applies"]

Name = Annotated[str, Field(min_length=1, max_length=32)]


class AppliesTo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    institution_types: tuple[Name, ...] | None = None  # 院校类型：只适用于这些
    not_institution_types: tuple[Name, ...] = ()  # 院校类型：不适用于这些
    provinces: tuple[Name, ...] | None = None  # 省级指标体系：包含此指标的省份


class Institution(BaseSettings):
    """The school, from ``ZHENGAI_INSTITUTION_TYPE`` and ``ZHENGAI_PROVINCE``."""

    model_config = SettingsConfigDict(env_prefix="ZHENGAI_", extra="ignore", frozen=True)

    institution_type: str | None = None  # 院校类型，如 国家示范、省级示范、新建院校
    province: str | None = None  # 省份（省级办学能力评价指标体系），如 浙江


@lru_cache(maxsize=1)
def institution() -> Institution:
    return Institution()


def applies(applies_to: AppliesTo | None, school: Institution) -> bool:
    if applies_to is None:
        return True
    kind = school.institution_type
    if kind is not None:
        if applies_to.institution_types is not None and kind not in applies_to.institution_types:
            return False
        if kind in applies_to.not_institution_types:
            return False
    if school.province is not None and applies_to.provinces is not None and school.province not in applies_to.provinces:
        return False
    return True
