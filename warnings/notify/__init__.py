"""zhengai.warnings.notify — from the outbox to the people who must act.

What it offers:

- ``NotifyPipeline`` (``pipeline.py``): the stages between the outbox and the sinks — inhibit,
  silence, academic-calendar mute windows, grouping per recipient and daily digest, per-channel
  rate limit with queueing, send, retry with backoff through the outbox — plus reminders
  (``reminders.py``). ``run(now)`` / ``tick(now)``; persisted in ``notify_*`` tables.
- ``dispatch(store, sink, clock)`` (``dispatch.py``): one direct pass for one sink (embedded demo).
- Sinks behind ``Sink`` and a registry (``base.py``): ``console``, ``file``, ``memory``
  (``console.py``), ``dingtalk_robot`` (``dingtalk.py``), ``dingtalk_work`` (``dingtalk_work.py``),
  ``email`` (``mail.py``), ``wecom_robot`` (``wecom.py``), ``wecom_app`` (``wecom_app.py``).
  Group robots (``dingtalk_robot``, ``wecom_robot``) are not personal (``Sink.personal``): their
  messages carry no personal action link. Adding one: ``ADDING.md``.
- Configuration (``config.py``): ``load_notify_config(deploy/notify/notify.yaml)`` with located
  errors; secrets from the environment or secret files only.
- Fakes for tests (``testing.py``): ``FakeClock``, ``DingTalkRobotServer`` on loopback.

Escalation *timing* is the lifecycle's (``zhengai.warnings.lifecycle``); *who* receives each
level is ``zhengai.warnings.routing.escalation_route`` with the chains from ``notify.yaml``.
"""

from zhengai.warnings.notify.base import (
    Contact,
    FatalSinkError,
    Link,
    Message,
    Notice,
    RetryableSinkError,
    Sink,
    SinkError,
    SinkSettings,
    register,
    sink_class,
    sink_kinds,
)
from zhengai.warnings.notify.config import NotifyConfig, NotifyConfigError, RoutePolicy, load_notify_config
from zhengai.warnings.notify.dispatch import DispatchReport, dispatch
from zhengai.warnings.notify.pipeline import Channel, NotifyPipeline, RunReport, TickReport

__all__ = [
    "Contact",
    "Link",
    "Notice",
    "Message",
    "Sink",
    "SinkSettings",
    "SinkError",
    "RetryableSinkError",
    "FatalSinkError",
    "register",
    "sink_class",
    "sink_kinds",
    "NotifyConfig",
    "NotifyConfigError",
    "RoutePolicy",
    "load_notify_config",
    "NotifyPipeline",
    "Channel",
    "RunReport",
    "TickReport",
    "DispatchReport",
    "dispatch",
]
