"""Connector configuration: the typed models a ``deploy/connectors/<name>.yaml`` validates into.

A file names the system (``connector: jiaowu``), its schedule, its source and the system's own
``options``; unknown keys are errors everywhere. Secrets never sit in the file: a key ending in
``_env`` names an environment variable holding the secret, or — the Docker/Kubernetes
convention — a variable ``<NAME>_FILE`` holding the path of a file that does. The value becomes a
:class:`EnvSecret` (a ``SecretStr`` inside), shown as ``**********`` everywhere. Other string
values may use ``${VAR}`` or ``${VAR:-default}`` for deployment-specific settings (hosts, paths).

Loading and the located errors are in :mod:`.loading`; building sources from these models is
here, beside them (``build()``), so deep code receives typed objects, never raw dicts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from zhengai.ingest.durations import parse_duration

from .http import (
    ApiClient,
    Auth,
    BearerToken,
    CookieSession,
    CursorPagination,
    LoginToken,
    OAuth2ClientCredentials,
    OffsetPagination,
    PagePagination,
    Pagination,
)
from .retry import RetryPolicy
from .schedule import Schedule
from .sql import SqlSource

__all__ = [
    "Duration",
    "EnvSecret",
    "Model",
    "RetryConfig",
    "ScheduleConfig",
    "SqlSourceConfig",
    "HttpSourceConfig",
    "FilesSourceConfig",
    "SourceConfig",
    "PaginationConfig",
    "Endpoint",
    "ConnectorConfig",
    "parse_duration",
    "resolve_secret",
]


class Model(BaseModel):
    """Configuration models: immutable, unknown keys forbidden."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- durations (one parser for every config file: zhengai.ingest.durations) ----------------------

Duration = Annotated[timedelta, PlainValidator(parse_duration), PlainSerializer(lambda d: f"{d.total_seconds():g}s")]


def _positive(d: timedelta, what: str) -> timedelta:
    if d <= timedelta(0):
        raise ValueError(f"{what} must be longer than zero")
    return d


# --- secrets ----------------------------------------------------------------------------------

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class EnvSecret:
    """A secret read from the environment variable ``env`` (or the file ``env_FILE`` names)."""

    __slots__ = ("env", "_value")

    def __init__(self, env: str, value: SecretStr) -> None:
        self.env, self._value = env, value

    @property
    def secret(self) -> SecretStr:
        return self._value

    def get(self) -> str:
        return self._value.get_secret_value()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EnvSecret) and (self.env, self._value) == (other.env, other._value)

    def __hash__(self) -> int:
        return hash(self.env)

    def __repr__(self) -> str:
        return f"EnvSecret({self.env!r}, **********)"

    __str__ = __repr__


def resolve_secret(name: str, environ: Mapping[str, str]) -> SecretStr:
    """``environ[name]``, or the content of the file ``environ[name + "_FILE"]`` (one trailing
    newline removed). Errors name the variable and the path, never the value."""
    direct, path = environ.get(name), environ.get(f"{name}_FILE")
    if direct is not None and path is not None:
        raise ValueError(f"both {name} and {name}_FILE are set; set only one")
    if direct is not None:
        if not direct:
            raise ValueError(f"environment variable {name} is empty")
        return SecretStr(direct)
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or type(exc).__name__
            raise ValueError(f"cannot read the secret file {path} named by {name}_FILE: {why}") from None
        text = text[:-1] if text.endswith("\n") else text
        if not text:
            raise ValueError(f"the secret file {path} named by {name}_FILE is empty")
        return SecretStr(text)
    raise ValueError(f"environment variable {name} (or {name}_FILE) is not set")


def _env_secret(value: object, info: ValidationInfo) -> EnvSecret:
    if isinstance(value, EnvSecret):
        return value
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise ValueError("the name of an environment variable (e.g. JIAOWU_DB_PASSWORD), never the secret itself")
    environ = (info.context or {}).get("environ", os.environ)
    return EnvSecret(value, resolve_secret(value, environ))


SecretEnv = Annotated[EnvSecret, PlainValidator(_env_secret), PlainSerializer(lambda s: s.env)]


# --- common parts -----------------------------------------------------------------------------


class RetryConfig(Model):
    """Backoff of one source's transient failures (see RetryPolicy)."""

    attempts: Annotated[int, Field(ge=1, le=20)] = 5
    base_delay: Duration = timedelta(seconds=0.5)
    max_delay: Duration = timedelta(seconds=30)

    def build(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.attempts, base_delay=self.base_delay.total_seconds(), max_delay=self.max_delay.total_seconds()
        )


class ScheduleConfig(Model):
    """``every: 15m`` or ``cron: "0 2 * * *"`` (read in ``timezone``)."""

    every: Duration | None = None
    cron: str | None = None
    timezone: str = "Asia/Shanghai"

    @field_validator("every")
    @classmethod
    def _every(cls, v: timedelta | None) -> timedelta | None:
        return None if v is None else _positive(v, "every")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not a time zone name (e.g. Asia/Shanghai)") from None
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            Schedule(cron=v)  # raises with the reason
        return v

    @model_validator(mode="after")
    def _one(self) -> ScheduleConfig:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of every or cron")
        return self

    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    def build(self) -> Schedule:
        return Schedule(every=self.every, cron=self.cron, tz=self.tz())


# --- sources ----------------------------------------------------------------------------------


class SqlSourceConfig(Model):
    """A database: ``url`` without a password plus ``password_env``, or the whole URL in a
    secret (``url_env``)."""

    kind: Literal["sql"]
    url: str | None = None
    url_env: SecretEnv | None = None
    password_env: SecretEnv | None = None
    connect_timeout: Duration = timedelta(seconds=10)
    retry: RetryConfig = RetryConfig()

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            url = make_url(v)
        except ArgumentError:
            raise ValueError("not a SQLAlchemy URL (dialect+driver://user@host:port/db)") from None
        if url.password:
            raise ValueError("the URL holds a password: remove it and name the variable that holds it in password_env")
        return v

    @model_validator(mode="after")
    def _one(self) -> SqlSourceConfig:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url or url_env")
        return self

    def build(self) -> SqlSource:
        url = self.url_env.secret if self.url_env is not None else self.url
        assert url is not None  # exactly one of url and url_env (validated above)
        return SqlSource(
            url,
            retry=self.retry.build(),
            password=self.password_env.secret if self.password_env else None,
            connect_timeout=self.connect_timeout.total_seconds(),
        )

    def shown(self) -> str:
        """The URL without its password, for people."""
        if self.url is not None:
            return self.url
        url = make_url(self.url_env.get())  # type: ignore[union-attr]
        return url.render_as_string(hide_password=True)


class LoginAuth(Model):
    kind: Literal["login"]
    path: str = "/api/login"
    username: str
    password_env: SecretEnv
    token_field: str = "token"

    def build(self) -> Auth:
        return LoginToken(self.username, self.password_env.secret, path=self.path, token_field=self.token_field)


class BearerAuth(Model):
    kind: Literal["bearer"]
    token_env: SecretEnv
    header: str = "Authorization"
    scheme: str = "Bearer"

    def build(self) -> Auth:
        return BearerToken(self.token_env.secret, header=self.header, scheme=self.scheme)


class OAuth2Auth(Model):
    kind: Literal["oauth2_client_credentials"]
    token_url: str
    client_id: str
    client_secret_env: SecretEnv
    scope: str | None = None
    client_auth: Literal["basic", "post"] = "basic"

    def build(self) -> Auth:
        return OAuth2ClientCredentials(
            self.token_url,
            self.client_id,
            self.client_secret_env.secret,
            scope=self.scope,
            client_auth=self.client_auth,
        )


class CookieAuth(Model):
    kind: Literal["cookie_session"]
    login_path: str = "/login"
    username: str
    password_env: SecretEnv
    username_field: str = "username"
    password_field: str = "password"
    extra_fields: dict[str, str] = {}
    cookie_name: str | None = None

    def build(self) -> Auth:
        return CookieSession(
            self.username,
            self.password_env.secret,
            login_path=self.login_path,
            username_field=self.username_field,
            password_field=self.password_field,
            extra_fields=self.extra_fields,
            cookie_name=self.cookie_name,
        )


AuthConfig = Annotated[LoginAuth | BearerAuth | OAuth2Auth | CookieAuth, Field(discriminator="kind")]


class HttpSourceConfig(Model):
    kind: Literal["http"]
    base_url: str
    auth: AuthConfig
    timeout: Duration = timedelta(seconds=10)
    verify_tls: bool = True
    ca_file: Path | None = None
    retry: RetryConfig = RetryConfig()

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must start with http:// or https:// and name a host")
        return v

    def build(self, name: str) -> ApiClient:
        import ssl

        verify: bool | ssl.SSLContext = self.verify_tls
        if self.ca_file is not None:  # a campus CA that signs the vendor's certificate
            verify = ssl.create_default_context(cafile=str(self.ca_file))
        return ApiClient(
            self.base_url,
            auth=self.auth.build(),
            name=name,
            timeout=self.timeout.total_seconds(),
            retry=self.retry.build(),
            verify=verify,
        )

    def shown(self) -> str:
        return self.base_url


class FilesSourceConfig(Model):
    """One file re-read each run, or a drop folder (``path`` is a folder)."""

    kind: Literal["files"]
    path: Path
    patterns: list[str] = ["*.csv", "*.xlsx", "*.xls"]
    processed_dir: Path | None = None
    rejected_dir: Path | None = None
    encodings: list[str] = ["utf-8-sig", "gb18030"]
    sheet: str | None = None
    settle: Duration = timedelta(seconds=10)

    @field_validator("encodings")
    @classmethod
    def _encodings(cls, v: list[str]) -> list[str]:
        import codecs

        for name in v:
            try:
                codecs.lookup(name)
            except LookupError:
                raise ValueError(f"{name!r} is not an encoding Python knows") from None
        return v

    def stream_kwargs(self) -> dict[str, Any]:
        return {
            "encodings": tuple(self.encodings),
            "patterns": tuple(self.patterns),
            "processed_dir": self.processed_dir,
            "rejected_dir": self.rejected_dir,
            "sheet": self.sheet,
            "settle": self.settle.total_seconds(),
        }

    def shown(self) -> str:
        return str(self.path)


SourceConfig = Annotated[SqlSourceConfig | HttpSourceConfig | FilesSourceConfig, Field(discriminator="kind")]


# --- HTTP endpoints (used in the options of HTTP systems) -------------------------------------


class PagePaginationConfig(Model):
    kind: Literal["page"]
    size: Annotated[int, Field(ge=1, le=10_000)] = 100
    page_param: str = "page"
    size_param: str = "page_size"
    first: int = 1
    items: str = "items"
    total: str = "total"

    def build(self) -> Pagination:
        return PagePagination(**self.model_dump(exclude={"kind"}))


class OffsetPaginationConfig(Model):
    kind: Literal["offset"]
    limit: Annotated[int, Field(ge=1, le=10_000)] = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    items: str = "items"
    total: str = "total"

    def build(self) -> Pagination:
        return OffsetPagination(**self.model_dump(exclude={"kind"}))


class CursorPaginationConfig(Model):
    kind: Literal["cursor"]
    limit: Annotated[int, Field(ge=1, le=10_000)] = 200
    cursor_param: str = "cursor"
    limit_param: str = "limit"
    items: str = "items"
    next: str = "next_cursor"

    def build(self) -> Pagination:
        return CursorPagination(**self.model_dump(exclude={"kind"}))


PaginationConfig = Annotated[
    PagePaginationConfig | OffsetPaginationConfig | CursorPaginationConfig, Field(discriminator="kind")
]


class Endpoint(Model):
    """One list endpoint of an HTTP system: its path and how it pages."""

    path: str
    pagination: PaginationConfig | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("a path starts with / (relative to base_url)")
        return v


# --- the file ---------------------------------------------------------------------------------


class ConnectorConfig(Model):
    """One ``deploy/connectors/<name>.yaml``. ``options`` is validated by the system's own
    model (see each system module's ``Options``)."""

    connector: str
    enabled: bool = True
    schedule: ScheduleConfig
    expect_within: Duration | None = None
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    streams: list[str] | None = None
    source: SourceConfig
    options: Any = None
    file: str = Field(default="", exclude=True)  # where it was read from, for messages

    @field_validator("expect_within")
    @classmethod
    def _window(cls, v: timedelta | None) -> timedelta | None:
        return None if v is None else _positive(v, "expect_within")

    def window(self, around: Any) -> timedelta:
        """The expected window: as configured, else twice the schedule's period."""
        if self.expect_within is not None:
            return self.expect_within
        return 2 * self.schedule.build().period(around)
