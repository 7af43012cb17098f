"""Notification configuration: ``deploy/notify/notify.yaml`` (campus IT) and the academic
calendar it points to (the quality office).

Parsing is kept apart from executing: this module turns YAML into typed, frozen models and
reports *every* error with file, line and field in one go (``NotifyConfigError``); the pipeline
only ever sees the models. Secrets never come from the YAML: a channel's ``SecretStr`` fields are
read from the environment (``ZHENGAI_NOTIFY_<CHANNEL>_<FIELD>``) or from a file of that name in
lower case in the secrets directory (e.g. ``/run/secrets/zhengai_notify_jiaowu_robot_secret``).

A file looks like::

    links:
      base_url: https://zhengai.example.edu.cn      # 确认预警 / 登记改进 links start here
    route:                                         # defaults for every channel
      group_wait: 30s
      group_interval: 5m
      max_items: 10
    channels:
      jiaowu-robot:
        type: dingtalk_robot
        route: {digest: {at: "08:00", bands: [yellow]}}
    inhibit:
      - name: 数据采集异常
        source: school.data_collection_quality
        targets: ["*"]
    escalation:                                    # who gets each level; when: the rule's lifecycle
      chains: [[course_teacher, course_owner, major_leader, dean, quality_office]]
    reminders: {repeat_interval: 7d}
    calendar: calendar.yaml
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError, field_validator

from zhengai.ingest.durations import parse_duration
from zhengai.ingest.located_yaml import Located, LocatedError, Path_, parse_located, validation_errors
from zhengai.ingest.records import Band, Level, Role
from zhengai.ingest.retrying import delay as retry_delay
from zhengai.warnings.lifecycle import ACTIVE
from zhengai.warnings.notify.base import Sink, SinkSettings, sink_class
from zhengai.warnings.notify.budget import BudgetPolicy
from zhengai.warnings.notify.calendar_windows import AcademicCalendar, TimeZoneName
from zhengai.warnings.routing import DEFAULT_CHAINS, EscalationChains

__all__ = [
    "parse_span",
    "Span",
    "RetryPolicy",
    "DigestPolicy",
    "RouteMatch",
    "RoutePolicy",
    "DIRECT",
    "LinkSettings",
    "InhibitRule",
    "EscalationPolicy",
    "ReminderPolicy",
    "ChannelConfig",
    "NotifyConfig",
    "NotifyConfigError",
    "load_notify_config",
    "load_calendar",
    "build_settings",
    "secret_env_name",
    "DEFAULT_ACTIVE_STATUSES",
]

_CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# Warning statuses in which a warning still asks for action: the lifecycle's.
DEFAULT_ACTIVE_STATUSES = tuple(sorted(s.value for s in ACTIVE))


def parse_span(value: object) -> timedelta:
    """``30s``, ``5m``, ``2h``, ``7d``, ``2w`` (or ``0``) → timedelta."""
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"duration {value!r} must look like 30s, 5m, 2h, 7d or 2w") from None


Span = Annotated[timedelta, BeforeValidator(parse_span)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class RetryPolicy(_Strict):
    """Backoff after a retryable failure: initial, ×factor per attempt, capped at max. There is
    no attempt limit: an outage delays notifications, it never drops them."""

    initial: Span = timedelta(seconds=30)
    max: Span = timedelta(minutes=30)
    factor: float = Field(2.0, ge=1.0)

    def delay(self, attempts: int) -> timedelta:
        # The one backoff curve (zhengai.ingest.retrying): the outbox schedules, it does not sleep.
        return timedelta(
            seconds=retry_delay(attempts, self.initial.total_seconds(), self.max.total_seconds(), self.factor)
        )


class DigestPolicy(_Strict):
    """Notices that match wait for one message a day at ``at`` (local time)."""

    at: time = time(8, 0)
    bands: list[Band] | None = None  # None: every band
    kinds: list[str] | None = None  # warning event kinds; None: every kind


class RouteMatch(_Strict):
    """Which notices a channel takes; the others are not for it (recorded as suppressed there).
    Each list left out matches everything."""

    bands: list[Band] | None = None
    levels: list[Level] | None = None
    kinds: list[str] | None = None  # warning event kinds: opened, escalated, recovered, reminded …

    def accepts(self, *, band: str, level: str | None, kind: str) -> bool:
        return (
            (self.bands is None or band in {b.value for b in self.bands})
            and (self.levels is None or level in {lv.value for lv in self.levels})
            and (self.kinds is None or kind in self.kinds)
        )


class RoutePolicy(_Strict):
    match: RouteMatch | None = None  # None: every notice
    group_wait: Span = timedelta(seconds=30)  # a new group waits this long for more notices
    group_interval: Span = timedelta(minutes=5)  # then sends what is new at most this often
    max_items: int = Field(10, ge=1, le=200)  # notices per message; more are split
    digest: DigestPolicy | None = None
    retry: RetryPolicy = RetryPolicy()


# One message per outbox row, straight away: the embedded demo's console and file.
DIRECT = RoutePolicy(group_wait=timedelta(0), group_interval=timedelta(0), max_items=1)


class LinkSettings(_Strict):
    """Where people acknowledge a warning and record the improvement. Paths are formatted with
    ``warning_id``; without ``base_url`` messages carry no links."""

    base_url: str | None = None
    ack: str = "/warnings/{warning_id}/ack"
    improve: str = "/warnings/{warning_id}/improvement"
    mine: str = "/my/warnings"

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/") if value else value

    def url(self, path: str, **values: object) -> str | None:
        return self.base_url + path.format(**values) if self.base_url else None


class InhibitRule(_Strict):
    """While a warning of rule ``source`` is active in one of ``bands``, the warnings *derived*
    from it are not notified: those of a rule matching ``targets`` (rule-id globs), or with
    ``same_metric`` the rules measuring the same thing one level down (``school.X`` →
    ``major.X``/``course.X``…), on an entity under the source's entity (a school-level source
    covers the whole school)."""

    name: str
    source: str
    bands: list[Band] = [Band.red]
    targets: list[str] = []
    same_metric: bool = False


class EscalationPolicy(_Strict):
    """Who receives each escalation level. The lifecycle decides *when* (the due date, then every
    ``escalate_every_days`` of the rule); this decides *who*: a warning follows the first chain
    that names its responsible role, one distinct person further up per level, skipping roles
    nobody holds for the entity; a role in no chain (an office) escalates to ``fallback``."""

    chains: list[list[str]] = [list(c) for c in DEFAULT_CHAINS]
    fallback: str = Role.quality_office.value

    @field_validator("chains")
    @classmethod
    def _roles(cls, chains: list[list[str]]) -> list[list[str]]:
        valid = {r.value for r in Role} - {Role.office.value}
        for chain in chains:
            bad = [r for r in chain if r not in valid and not r.startswith("office:")]
            if bad:
                raise ValueError(
                    f"unknown role(s) {', '.join(bad)}; roles: {', '.join(sorted(valid))} or office:<部门>"
                )
            if len(chain) < 2:
                raise ValueError("a chain needs at least two roles")
        return chains

    def routing(self) -> EscalationChains:
        """What the warning service takes (``WarningService(..., escalation=…)``)."""
        return EscalationChains(tuple(tuple(c) for c in self.chains), self.fallback)


class ReminderPolicy(_Strict):
    """An active warning that has been announced is announced again when nothing was sent about
    it for ``repeat_interval`` (督办提醒). None: never."""

    repeat_interval: Span | None = timedelta(days=7)


class _NotifyFile(_Strict):
    timezone: TimeZoneName = "Asia/Shanghai"
    links: LinkSettings = LinkSettings()
    route: RoutePolicy = RoutePolicy()
    inhibit: list[InhibitRule] = []
    escalation: EscalationPolicy = EscalationPolicy()
    reminders: ReminderPolicy = ReminderPolicy()
    active_statuses: list[str] = list(DEFAULT_ACTIVE_STATUSES)
    budgets: BudgetPolicy = BudgetPolicy()


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    type: str
    route: RoutePolicy
    settings: SinkSettings | None  # None only when loaded with require_secrets=False and a secret is missing

    def build(self, **extra: Any) -> Sink:
        if self.settings is None:
            raise ValueError(f"channel {self.name!r} has no settings (a secret is missing)")
        return sink_class(self.type).from_settings(self.name, self.settings, **extra)


@dataclass(frozen=True)
class NotifyConfig:
    timezone: str = "Asia/Shanghai"
    links: LinkSettings = LinkSettings()
    route: RoutePolicy = RoutePolicy()
    channels: Mapping[str, ChannelConfig] = field(default_factory=dict)
    inhibit: tuple[InhibitRule, ...] = ()
    escalation: EscalationPolicy = EscalationPolicy()
    reminders: ReminderPolicy = ReminderPolicy()
    active_statuses: frozenset[str] = frozenset(DEFAULT_ACTIVE_STATUSES)
    calendar: AcademicCalendar | None = None
    budgets: BudgetPolicy = BudgetPolicy()  # notification budgets and flood flags (notify/budget.py)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class NotifyConfigError(ValueError):
    def __init__(self, errors: list[LocatedError]):
        self.errors = sorted(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def secret_env_name(channel: str, field_name: str) -> str:
    return f"{_env_prefix(channel)}{field_name.upper()}"


def _env_prefix(channel: str) -> str:
    return "ZHENGAI_NOTIFY_" + re.sub(r"[^A-Za-z0-9]", "_", channel).upper() + "_"


def _secret_fields(settings_cls: type[SinkSettings]) -> set[str]:
    out = set()
    for name, info in settings_cls.model_fields.items():
        ann = info.annotation
        if ann is SecretStr or SecretStr in getattr(ann, "__args__", ()):
            out.add(name)
    return out


def build_settings(
    settings_cls: type[SinkSettings], channel: str, values: Mapping[str, Any], secrets_dir: Path | None = None
) -> SinkSettings:
    """The channel's settings: ``values`` from the YAML, secrets from env / secret files."""
    kwargs: dict[str, Any] = {"_env_prefix": _env_prefix(channel)}
    if secrets_dir is not None and Path(secrets_dir).is_dir():
        kwargs["_secrets_dir"] = str(secrets_dir)
    return settings_cls(**kwargs, **values)


class _Errors:
    """Some of a ValidationError's errors, for ``validation_errors`` (it reads ``errors()``)."""

    def __init__(self, errors: list) -> None:
        self._errors = errors

    def errors(self) -> list:
        return self._errors


def _channel(
    name: str,
    entry: object,
    default_route: dict,
    located: Located,
    secrets_dir: Path | None,
    require_secrets: bool,
    errors: list[LocatedError],
) -> ChannelConfig | None:
    where: Path_ = ("channels", name)
    line = located.line_of(where)
    if not _CHANNEL_NAME.match(str(name)):
        errors.append(
            LocatedError(
                located.file, line, f"channels.{name}", "a channel name is lower-case letters, digits, - or _ (≤ 32)"
            )
        )
        return None
    if not isinstance(entry, dict):
        errors.append(LocatedError(located.file, line, f"channels.{name}", "must be a mapping with `type:`"))
        return None
    try:
        cls = sink_class(str(entry.get("type")))
    except KeyError as exc:
        errors.append(
            LocatedError(located.file, located.line_of(where + ("type",)), f"channels.{name}.type", exc.args[0])
        )
        return None
    route_raw = entry.get("route") or {}
    try:
        route = RoutePolicy.model_validate({**default_route, **route_raw} if isinstance(route_raw, dict) else route_raw)
    except ValidationError as exc:
        errors.extend(validation_errors(exc, located, where + ("route",)))
        route = RoutePolicy()
    values = {k: v for k, v in entry.items() if k not in ("type", "route")}
    secrets = _secret_fields(cls.Settings)
    for key in sorted(secrets & set(values)):
        errors.append(
            LocatedError(
                located.file,
                located.line_of(where + (key,)),
                f"channels.{name}.{key}",
                f"secrets do not belong in this file: set {secret_env_name(name, key)} "
                f"or the secret file {secret_env_name(name, key).lower()}",
            )
        )
        values.pop(key)
    hint = ", ".join(secret_env_name(name, k) for k in sorted(secrets))
    try:
        settings: SinkSettings | None = build_settings(cls.Settings, name, values, secrets_dir)
    except ValidationError as exc:
        settings = None
        failed: ValidationError | None = exc
        if not require_secrets:  # lint: check everything else, with stand-ins for the secrets
            try:
                build_settings(cls.Settings, name, {**{k: "<lint>" for k in secrets}, **values}, secrets_dir)
                failed = None
            except ValidationError as again:
                failed = again
        other: list[Any] = []
        for err in failed.errors() if failed is not None else ():
            field = err["loc"][0] if err["loc"] else None
            if field in secrets and err["type"] == "missing":
                errors.append(
                    LocatedError(
                        located.file,
                        line,
                        f"channels.{name}.{field}",
                        f"secret not provided: set {secret_env_name(name, str(field))} or the "
                        f"secret file {secret_env_name(name, str(field)).lower()}",
                    )
                )
            elif not err["loc"] and hint:  # a check across fields, often a secret that is not set
                other.append({**err, "msg": f"{err['msg']} (secrets of this channel: {hint})"})
            else:
                other.append(err)
        errors.extend(validation_errors(_Errors(other), located, where))  # type: ignore[arg-type]
    return ChannelConfig(name, str(entry["type"]), route, settings)


def load_notify_config(path: Path, *, secrets_dir: Path | None = None, require_secrets: bool = True) -> NotifyConfig:
    """Read and check ``notify.yaml`` (and its calendar). Raises ``NotifyConfigError`` listing
    every problem; ``require_secrets=False`` checks a file where the secrets are not at hand
    (CI lint)."""
    path = Path(path)
    tops = (
        "timezone",
        "links",
        "route",
        "channels",
        "inhibit",
        "escalation",
        "reminders",
        "active_statuses",
        "calendar",
        "budgets",
    )
    data, located = parse_located(path, str(path), top_keys=tops, lists=("inhibit",))
    errors = list(located.errors)
    channels_raw = data.pop("channels", None) or {}
    calendar_ref = data.pop("calendar", None)
    for key in set(data) - set(tops):
        data.pop(key)
    try:
        base = _NotifyFile.model_validate(data)
    except ValidationError as exc:
        errors.extend(validation_errors(exc, located, ()))
        base = _NotifyFile()
    default_route = base.route.model_dump()  # validated: a bad default is reported once, above
    channels: dict[str, ChannelConfig] = {}
    if not isinstance(channels_raw, dict):
        errors.append(
            LocatedError(located.file, located.line_of(("channels",)), "channels", "must be a mapping of channel names")
        )
        channels_raw = {}
    for name, entry in channels_raw.items():
        ch = _channel(str(name), entry, default_route, located, secrets_dir, require_secrets, errors)
        if ch is not None:
            channels[ch.name] = ch
    calendar = None
    if calendar_ref is not None:
        cal_path = (
            (path.parent / str(calendar_ref)) if not Path(str(calendar_ref)).is_absolute() else Path(str(calendar_ref))
        )
        try:
            calendar = load_calendar(cal_path)
        except NotifyConfigError as exc:
            errors.extend(exc.errors)
    if errors:
        raise NotifyConfigError(errors)
    return NotifyConfig(
        timezone=base.timezone,
        links=base.links,
        route=base.route,
        channels=channels,
        inhibit=tuple(base.inhibit),
        escalation=base.escalation,
        reminders=base.reminders,
        active_statuses=frozenset(base.active_statuses),
        calendar=calendar,
        budgets=base.budgets,
    )


def load_calendar(path: Path) -> AcademicCalendar:
    """Read and check the academic calendar (mute windows) the quality office edits."""
    path = Path(path)
    data, located = parse_located(path, str(path), top_keys=("timezone", "windows"), lists=("windows",))
    errors = list(located.errors)
    try:
        calendar = AcademicCalendar.model_validate(data)
    except ValidationError as exc:
        errors.extend(validation_errors(exc, located, ()))
        calendar = AcademicCalendar()
    if errors:
        raise NotifyConfigError(errors)
    return calendar
