"""`zhengai warnings …`: what responsible people and the quality office do with a warning.

    zhengai warnings list [--status open] [--level course] [--owner T0001] [--json]
    zhengai warnings show ID [--json]
    zhengai warnings ack ID --by T0001 [--note …]
    zhengai warnings improve ID --by T0001 --due 2026-12-01 --text "改进措施" [--evidence URL …]
    zhengai warnings evidence ID --by T0001 --url URL [--url …] [--note …]
    zhengai warnings waive ID --by Q001 --reason "免于登记改进措施的原因"
    zhengai warnings review ID --by Q001 [--note "复评意见"]
    zhengai warnings false-positive ID --by Q001 --reason "误报原因"
    zhengai warnings revoke-links PERSON --by Q001 --reason "手机遗失"
    zhengai warnings silence add --by Q001 --reason "…" --until 2026-12-10 [--rule course.*] [--entity C0001]
                                 [--level course] [--recipient T0001] [--channel robot] [--preview]
    zhengai warnings silence list [--all] [--json]
    zhengai warnings silence expire ID --by Q001
    zhengai warnings tick [--now 2026-12-01T09:00+08:00]
    zhengai warnings migrate [--store URL]

The store is ``--store URL`` (before or after the subcommand) or ``$ZHENGAI_STORE_URL`` (default:
the demo's SQLite file); ``--rulebook`` and ``--channels`` likewise. ``list``, ``show`` and
``silence list`` take ``--json`` for scripts (masked like the text). Everything printed is masked
(学号, ID-card and mobile numbers, emails); over-long input (``--by`` over 64 characters, notes
over 4,000) is refused with a Chinese error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from zhengai.commands._options import (
    choice_of,
    echo_json,
    json_option,
    namespace,
    resolve,
    rulebook_option,
    store_option,
)
from zhengai.ingest.records import Level
from zhengai.warnings.lifecycle import Status

CHINA = ZoneInfo("Asia/Shanghai")


def _service(args):
    from zhengai.rules.loader import load_rulebook
    from zhengai.warnings.service import WarningService
    from zhengai.warnings.store import WarningStore

    store = WarningStore(args.store)
    rules = load_rulebook(args.rulebook)
    directory = store.directory.load()
    return WarningService(store, lambda: rules, lambda: directory, channels=tuple(args.channels.split(","))), store


def _when(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=CHINA)


def _due(text: str) -> datetime:
    # a due date is the end of that day, China time
    day = datetime.fromisoformat(text).date()
    return datetime.combine(day, time(23, 59, 59), tzinfo=CHINA)


def _say(text: str, file=None) -> None:
    """Every line this command prints: personal numbers, emails and 学号 masked (free text such as
    改进措施 and notes may quote them)."""
    from zhengai.ingest.privacy import mask_text

    print(mask_text(text), file=file)


def _print_applied(applied) -> None:
    for a in applied:
        t = a.transition
        _say(
            f"#{a.warning_id} {t.kind.zh}（{t.kind.value}）: {t.from_status.value if t.from_status else '—'}"
            f" → {t.to_status.value}  {t.reason}"
        )


def _list(args) -> int:
    from zhengai.ingest.records import Band
    from zhengai.warnings.lifecycle import Status

    service, store = _service(args)
    if args.owner:
        return _mine(service, args)
    rows = [w for w in store.read.warnings(status=args.status) if not args.level or w.level == args.level]
    if getattr(args, "as_person", None):  # only what that person's role scope may see (warnings/scopes.py)
        from zhengai.warnings.scopes import within_scope

        rows = within_scope(store, store.directory.load(), args.as_person, rows)
    if args.as_json:
        echo_json([_warning_json(w) for w in rows])
        return 0
    for w in rows:
        due = f"{w.due_date.astimezone(CHINA):%Y-%m-%d}" if w.due_date else "—"
        _say(
            f"#{w.id:<5} {Status(w.status).zh:<6} {Band(w.band).zh:<4} {w.rule_name} · {w.entity_id}"
            f" · {w.last_period} · 限期 {due}"
        )
    _say(f"共 {len(rows)} 条")
    return 0


def _warning_json(w) -> dict:
    return {
        "id": w.id,
        "rule_id": w.rule_id,
        "rule_name": w.rule_name,
        "entity_id": w.entity_id,
        "level": w.level,
        "status": w.status,
        "band": w.band,
        "last_period": w.last_period,
        "due_date": w.due_date,
    }


def _day(t) -> str:
    return f"{t.astimezone(CHINA):%Y-%m-%d}" if t else "—"


def _mine(service, args) -> int:
    from zhengai.ingest.privacy import mask_text
    from zhengai.warnings.mine import my_warnings

    items = [
        m
        for m in my_warnings(service, args.owner)
        if (not args.status or m.warning.status == args.status) and (not args.level or m.warning.level == args.level)
    ]
    if args.as_json:
        echo_json(
            [
                {
                    **_warning_json(m.warning),
                    "role": m.role,
                    "actions": list(m.actions_zh),
                    "measures": [
                        {"text": i.text, "created_at": i.created_at, "due_date": i.due_date} for i in m.measures
                    ],
                    "evidence": [e.url for e in m.evidence],
                }
                for m in items
            ]
        )
        return 0
    for m in items:
        w = m.warning
        actions = "、".join(m.actions_zh) or "（无需操作）"
        print(
            f"#{w.id:<5} {m.status_zh:<6} {w.rule_name} · {mask_text(w.entity_id)}"
            f" · {w.last_period} · 限期 {_day(w.due_date)}"
            f" · {m.role} · 可执行：{actions}"
        )
        for i in m.measures:
            print(f"       改进措施（{_day(i.created_at)}，限期 {_day(i.due_date)}）：{mask_text(i.text)}")
        for e in m.evidence:
            print(f"       支撑材料：{mask_text(e.url)}")
    print(f"共 {len(items)} 条（{args.owner} 负责或督办、待复评的预警）")
    return 0


def _show(args) -> int:
    from zhengai.ingest.privacy import mask_text
    from zhengai.warnings.improvements import effects_of, evidence_of
    from zhengai.warnings.lifecycle import Status

    service, store = _service(args)
    w = store.read.warning(args.id)
    if w is None:
        _say(f"没有 #{args.id} 号预警", file=sys.stderr)
        return 1
    if args.as_json:
        echo_json(
            {
                **_warning_json(w),
                "episode": w.episode,
                "reason": w.reason,
                "events": [
                    {
                        "at": e.at,
                        "kind": e.kind,
                        "from": e.from_status,
                        "to": e.to_status,
                        "actor": e.actor,
                        "reason": e.reason,
                    }
                    for e in store.read.events(w.id)
                ],
                "improvements": [
                    {
                        "id": i.id,
                        "owner": i.owner_id,
                        "created_at": i.created_at,
                        "due_date": i.due_date,
                        "text": i.text,
                    }
                    for i in store.read.improvements(w.id)
                ],
                "evidence": [
                    {"url": e.url, "added_by": e.added_by, "added_at": e.added_at, "note": e.note}
                    for e in evidence_of(store, w.id)
                ],
            }
        )
        return 0
    _say(
        f"#{w.id} {w.rule_name}（{w.rule_id}）· {mask_text(w.entity_id)} · 第 {w.episode} 轮"
        f" · 状态 {Status(w.status).zh}（{w.status}）"
        f" · {w.band} · 限期 {_day(w.due_date)}\n{mask_text(w.reason)}"
    )
    for e in store.read.events(w.id):
        _say(
            f"  {e.at.astimezone(CHINA):%Y-%m-%d %H:%M} {e.kind:<20} {e.from_status or '—'}"
            f" → {e.to_status}  {e.actor or ''} {mask_text(e.reason)}"
        )
    for i in store.read.improvements(w.id):
        _say(
            f"  改进措施 #{i.id}（{i.owner_id}，{_day(i.created_at)} 登记，"
            f"限期 {_day(i.due_date)}）：{mask_text(i.text)}"
        )
    evidence = evidence_of(store, w.id)
    for e in evidence:
        _say(
            f"  支撑材料（{e.added_by}，{_day(e.added_at)}）"
            f"：{mask_text(e.url)}{'  ' + mask_text(e.note) if e.note else ''}"
        )
    if not evidence:
        _say("  支撑材料：无")
    stored = effects_of(store, w.id)
    for eff in stored:
        _say(f"  改进效果（复评 {_day(eff.measured_at)}，{eff.reviewed_by or ''}）：{mask_text(eff.summary)}")
    if not stored:
        from zhengai.warnings.effects import measure

        live = measure(service, w.id)
        if live is not None:
            series = " → ".join(f"{p} {v:g}" for p, v in live.series)
            _say(f"  改进效果（当前测算，复评时记录）：{mask_text(live.summary)}\n    走势：{series}")
    return 0


def _act(args) -> int:
    from zhengai.warnings.lifecycle import (
        Acknowledge,
        LifecycleError,
        MarkFalsePositive,
        Review,
        StartImprovement,
        Waive,
    )

    service, store = _service(args)
    now = _when(args.now)
    command = {
        "ack": lambda: Acknowledge(args.by, now, args.note or ""),
        "improve": lambda: StartImprovement(args.by, now, _due(args.due), args.text),
        "review": lambda: Review(args.by, now, args.note or ""),
        "waive": lambda: Waive(args.by, now, args.reason),
        "false-positive": lambda: MarkFalsePositive(args.by, now, args.reason),
    }[args.action]()
    try:
        applied = service.act(args.id, command, evidence=getattr(args, "evidence", None) or ())
    except (LifecycleError, KeyError) as exc:
        _say(f"未执行：{exc}", file=sys.stderr)
        return 1
    _print_applied(applied)
    if args.action == "review":
        from zhengai.ingest.privacy import mask_text
        from zhengai.warnings.improvements import effects_of

        for eff in effects_of(store, args.id)[-1:]:
            print(f"改进效果：{mask_text(eff.summary)}")
    return 0


def _evidence(args) -> int:
    from zhengai.warnings.improvements import EvidenceError, add_evidence

    service, store = _service(args)
    w = store.read.warning(args.id)
    if w is None:
        print(f"未执行：没有 #{args.id} 号预警", file=sys.stderr)
        return 1
    holder, _, _ = service.may(w, args.by)
    if not holder:
        print("未执行：您不是该预警当前的负责人或督办人 (not the warning's current holder)", file=sys.stderr)
        return 1
    try:
        ids = add_evidence(store, args.id, args.url, by=args.by, at=_when(args.now), note=args.note or "")
    except (EvidenceError, KeyError) as exc:
        print(f"未执行：{exc}", file=sys.stderr)
        return 1
    print(f"#{args.id} 已补充 {len(ids)} 个支撑材料")
    return 0


def _revoke(args) -> int:
    from zhengai.warnings.improvements import revoke_links

    _, store = _service(args)
    try:
        revoke_links(store, args.person, by=args.by, reason=args.reason, at=_when(args.now))
    except ValueError as exc:
        print(f"未执行：{exc}", file=sys.stderr)
        return 1
    print(f"已撤销 {args.person} 此前收到的全部处理链接；此后的通知会带新链接")
    return 0


def _tick(args) -> int:
    service, _ = _service(args)
    _print_applied(service.tick(_when(args.now)))
    return 0


def _migrate(args) -> int:
    from zhengai.warnings.migrate import current, storage
    from zhengai.warnings.store import WarningStore

    store = WarningStore(args.store)
    store.create_schema()
    print(f"store schema at revision {current(store.engine)} ({store.dialect}); {storage(store.engine)}")
    return 0


def _silence(args) -> int:
    from zhengai.warnings.notify.silence import Silence
    from zhengai.warnings.notify.silences import create, expire, list_silences, preview
    from zhengai.warnings.store import WarningStore

    store = WarningStore(args.store)
    now = _when(args.now)
    if args.silence_command == "list":
        rows = list_silences(store, now, include_ended=args.all)
        if args.as_json:
            echo_json(
                [
                    {
                        "id": r.id,
                        "rule": r.rule,
                        "entity_id": r.entity_id,
                        "level": r.level,
                        "recipient_id": r.recipient_id,
                        "channel": r.channel,
                        "starts_at": r.starts_at,
                        "ends_at": r.ends_at,
                        "created_by": r.created_by,
                        "comment": r.comment,
                    }
                    for r in rows
                ]
            )
            return 0
        for r in rows:
            what = " ".join(
                f"{k}={v}"
                for k, v in (
                    ("规则", r.rule),
                    ("对象", r.entity_id),
                    ("层面", r.level),
                    ("收件人", r.recipient_id),
                    ("渠道", r.channel),
                )
                if v
            )
            state = "生效中" if r.starts_at <= now < r.ends_at else ("未开始" if now < r.starts_at else "已结束")
            print(f"#{r.id:<4} {state} {what} · 至 {_day(r.ends_at)} · {r.created_by}：{r.comment}")
        print(f"共 {len(rows)} 条静默")
        return 0
    if args.silence_command == "expire":
        try:
            expire(store, args.id, by=args.by, now=now)
        except (KeyError, ValueError) as exc:
            print(f"未执行：{exc}", file=sys.stderr)
            return 1
        print(f"#{args.id} 号静默已结束；被暂缓的通知将在下一轮发出")
        return 0
    try:
        silence = Silence(
            starts_at=now,
            ends_at=_due(args.until),
            created_by=args.by,
            comment=args.reason,
            rule=args.rule or "*",
            entity_id=args.entity,
            level=args.level,
            recipient_id=args.recipient,
            channel=args.channel,
        )
    except ValueError as exc:
        print(f"未执行：{exc}", file=sys.stderr)
        return 1
    seen = preview(store, silence, now)
    print(f"预览：{seen.zh}")
    for w in seen.warnings[:50]:
        from zhengai.ingest.privacy import mask_text

        print(f"  #{w.id} {w.rule_name} · {mask_text(w.entity_id)} · {w.status}")
    if args.preview:
        return 0
    try:
        sid = create(store, silence, now)
    except ValueError as exc:
        print(f"未执行：{exc}", file=sys.stderr)
        return 1
    print(f"已设置 #{sid} 号静默，至 {_day(silence.ends_at)}；到期时会通知 {args.by}")
    return 0


F = TypeVar("F", bound=Callable[..., Any])
_NOW = click.option("--now", default=None, help="ISO time (default: now; China time if no offset)")


def _common(f: F) -> F:
    """Options accepted before the subcommand and after it."""
    f = click.option(
        "--channels", default=None, help="outbox channels for notifications this causes (default console,file)"
    )(f)
    return rulebook_option(store_option(f))


def _args(**params: Any) -> Any:
    args = namespace(**params)
    args.channels = resolve("channels", args.channels) or "console,file"
    return args


def register(cli: click.Group) -> None:
    @cli.group("warnings", help="list warnings and act on them (确认、改进措施、复评、误报)")
    @_common
    def warnings(**_: Any) -> None:
        pass

    @warnings.command("list", help="warnings, newest last")
    @_common
    @click.option("--status", type=choice_of(Status), default=None)
    @click.option("--level", type=choice_of(Level), default=None)
    @click.option(
        "--owner",
        metavar="PERSON",
        default=None,
        help="我的预警: everything this person holds, is escalated to or reviews",
    )
    @click.option(
        "--as",
        "as_person",
        metavar="PERSON",
        default=None,
        help="only the warnings this person's role scope may see (warnings/scopes.py)",
    )
    @json_option
    def list_(**params: Any) -> int:
        return _list(_args(**params))

    @warnings.command("show", help="one warning with its audit trail and improvements")
    @click.argument("id", type=int)
    @_common
    @json_option
    def show(**params: Any) -> int:
        return _show(_args(**params))

    actions = (
        ("ack", "acknowledge (确认)"),
        ("improve", "record an improvement with a due date (改进措施, 限期改进)"),
        ("review", "close a recovered warning on review (复评)"),
        ("waive", "质量办: waive the 改进措施 a review needs, with a reason"),
        ("false-positive", "close as a false positive (误报)"),
    )
    for name, help_ in actions:
        options = [
            click.argument("id", type=int),
            _common,
            click.option("--by", required=True, help="person id of who acts"),
            _NOW,
        ]
        if name in ("ack", "review"):
            options.append(click.option("--note", default=None))
        if name == "improve":
            options += [
                click.option("--due", required=True, help="due date YYYY-MM-DD"),
                click.option("--text", required=True),
                click.option("--evidence", multiple=True, help="link to evidence (佐证材料); repeatable"),
            ]
        if name in ("false-positive", "waive"):
            options.append(click.option("--reason", required=True))

        def act(_action: str = name, **params: Any) -> int:
            return _act(_args(action=_action, **params))

        for option in reversed(options):
            act = option(act)
        warnings.command(name, help=help_)(act)

    @warnings.command("evidence", help="attach evidence links (支撑材料) to a warning")
    @click.argument("id", type=int)
    @_common
    @click.option("--by", required=True)
    @click.option("--url", multiple=True, required=True, help="http(s) link; repeatable")
    @click.option("--note", default=None)
    @_NOW
    def evidence(**params: Any) -> int:
        args = _args(**params)
        args.url = list(args.url)
        return _evidence(args)

    @warnings.command("revoke-links", help="refuse every action link a person was sent until now")
    @click.argument("person")
    @_common
    @click.option("--by", required=True)
    @click.option("--reason", required=True)
    @_NOW
    def revoke(**params: Any) -> int:
        return _revoke(_args(**params))

    @warnings.group("silence", help="silences: preview, add, list, expire early (静默)")
    @_common
    def silence(**_: Any) -> None:
        pass

    @silence.command("add", help="preview what it would hide, then save it (--preview: only preview)")
    @_common
    @click.option("--by", required=True)
    @click.option("--reason", required=True)
    @click.option("--until", required=True, help="last day, YYYY-MM-DD (China time)")
    @click.option("--rule", default=None, help="rule id or glob, e.g. course.*")
    @click.option("--entity", default=None)
    @click.option("--level", type=choice_of(Level), default=None)
    @click.option("--recipient", default=None, help="person id")
    @click.option("--channel", default=None)
    @click.option("--preview", is_flag=True)
    @_NOW
    def silence_add(**params: Any) -> int:
        return _silence(_args(silence_command="add", **params))

    @silence.command("list", help="silences in force (--all: also ended ones)")
    @_common
    @click.option("--all", "all", is_flag=True, help="also ended ones")
    @json_option
    @_NOW
    def silence_list(**params: Any) -> int:
        return _silence(_args(silence_command="list", **params))

    @silence.command("expire", help="end a silence now")
    @click.argument("id", type=int)
    @_common
    @click.option("--by", required=True)
    @_NOW
    def silence_expire(**params: Any) -> int:
        return _silence(_args(silence_command="expire", **params))

    @warnings.command(
        "migrate", help="bring the store to the newest schema (versioned migrations, views, read-only role)"
    )
    @_common
    def migrate(**params: Any) -> int:
        return _migrate(_args(**params))

    @warnings.command("tick", help="escalate overdue warnings, mark warnings without fresh data stale")
    @_common
    @_NOW
    def tick(**params: Any) -> int:
        return _tick(_args(**params))
