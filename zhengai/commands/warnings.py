"""`zhengai warnings …`: what responsible people and the quality office do with a warning.

    zhengai warnings list [--status open] [--level course]
    zhengai warnings show ID
    zhengai warnings ack ID --by T0001 [--note …]
    zhengai warnings improve ID --by T0001 --due 2026-12-01 --text "改进措施" [--evidence URL …]
    zhengai warnings review ID --by Q001 [--note "复评意见"]
    zhengai warnings false-positive ID --by Q001 --reason "误报原因"
    zhengai warnings tick [--now 2026-12-01T09:00+08:00]
    zhengai warnings migrate

The store is ``--store URL`` or ``$ZHENGAI_STORE_URL`` (default: the demo's SQLite file).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")
DEFAULT_STORE = "sqlite:///zhengai-demo-out/zhengai.sqlite"


def _service(args):
    from zhengai.rules.loader import load_rulebook
    from zhengai.warnings.service import WarningService
    from zhengai.warnings.store import WarningStore

    store = WarningStore(args.store)
    rules = load_rulebook(args.rules)
    directory = store.load_directory()
    return WarningService(store, lambda: rules, lambda: directory, channels=tuple(args.channels.split(","))), store


def _when(text: str | None) -> datetime:
    if not text:
        return datetime.now(timezone.utc)
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=CHINA)


def _due(text: str) -> datetime:
    # a due date is the end of that day, China time
    day = datetime.fromisoformat(text).date()
    return datetime.combine(day, time(23, 59, 59), tzinfo=CHINA)


def _print_applied(applied) -> None:
    for a in applied:
        t = a.transition
        print(f"#{a.warning_id} {t.kind.zh}（{t.kind.value}）: {t.from_status.value if t.from_status else '—'} → {t.to_status.value}  {t.reason}")


def _list(args) -> int:
    from zhengai.ingest.records import Band
    from zhengai.warnings.lifecycle import Status

    _, store = _service(args)
    rows = [w for w in store.warnings(status=args.status) if not args.level or w.level == args.level]
    for w in rows:
        due = f"{w.due_date.astimezone(CHINA):%Y-%m-%d}" if w.due_date else "—"
        print(f"#{w.id:<5} {Status(w.status).zh:<6} {Band(w.band).zh:<4} {w.rule_name} · {w.entity_id} · {w.last_period} · 限期 {due}")
    print(f"共 {len(rows)} 条")
    return 0


def _show(args) -> int:
    _, store = _service(args)
    w = store.warning(args.id)
    if w is None:
        print(f"没有 #{args.id} 号预警", file=sys.stderr)
        return 1
    print(f"#{w.id} {w.rule_name}（{w.rule_id}）· {w.entity_id} · 第 {w.episode} 轮 · 状态 {w.status} · {w.band}\n{w.reason}")
    for e in store.events(w.id):
        print(f"  {e.at.astimezone(CHINA):%Y-%m-%d %H:%M} {e.kind:<20} {e.from_status or '—'} → {e.to_status}  {e.actor or ''} {e.reason}")
    for i in store.improvements(w.id):
        print(f"  改进措施（{i.owner_id}，限期 {i.due_date.astimezone(CHINA):%Y-%m-%d}）：{i.text}  {i.effect or ''}")
    return 0


def _act(args) -> int:
    from zhengai.warnings.lifecycle import Acknowledge, LifecycleError, MarkFalsePositive, Review, StartImprovement

    service, store = _service(args)
    now = _when(args.now)
    command = {
        "ack": lambda: Acknowledge(args.by, now, args.note or ""),
        "improve": lambda: StartImprovement(args.by, now, _due(args.due), args.text),
        "review": lambda: Review(args.by, now, args.note or ""),
        "false-positive": lambda: MarkFalsePositive(args.by, now, args.reason),
    }[args.action]()
    try:
        applied = service.act(args.id, command, evidence=getattr(args, "evidence", None) or ())
    except (LifecycleError, KeyError) as exc:
        print(f"未执行：{exc}", file=sys.stderr)
        return 1
    _print_applied(applied)
    if args.action == "review":
        store.measure_effects([args.id], now)
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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("warnings", help="list warnings and act on them (确认、改进措施、复评、误报)")
    p.add_argument("--store", default=os.environ.get("ZHENGAI_STORE_URL", DEFAULT_STORE))
    p.add_argument("--rules", default=None, help="rulebook folder (default: the shipped one)")
    p.add_argument("--channels", default="console,file", help="outbox channels for notifications this causes")
    ws = p.add_subparsers(dest="warnings_command", required=True)

    ls = ws.add_parser("list", help="warnings, newest last")
    ls.add_argument("--status", choices=["pending", "open", "acknowledged", "improving", "escalated", "recovered", "closed"])
    ls.add_argument("--level", choices=["school", "major", "course", "teacher", "student"])
    ls.set_defaults(func=_list)
    show = ws.add_parser("show", help="one warning with its audit trail and improvements")
    show.add_argument("id", type=int)
    show.set_defaults(func=_show)

    for name, help_ in (("ack", "acknowledge (确认)"), ("improve", "record an improvement with a due date (改进措施, 限期改进)"),
                        ("review", "close a recovered warning on review (复评)"), ("false-positive", "close as a false positive (误报)")):
        a = ws.add_parser(name, help=help_)
        a.add_argument("id", type=int)
        a.add_argument("--by", required=True, help="person id of who acts")
        a.add_argument("--now", help="ISO time (default: now)")
        if name in ("ack", "review"):
            a.add_argument("--note")
        if name == "improve":
            a.add_argument("--due", required=True, help="due date YYYY-MM-DD")
            a.add_argument("--text", required=True)
            a.add_argument("--evidence", action="append", help="link to evidence (佐证材料); repeatable")
        if name == "false-positive":
            a.add_argument("--reason", required=True)
        a.set_defaults(func=_act, action=name)

    m = ws.add_parser("migrate", help="bring the store to the newest schema (versioned migrations, views, read-only role)")
    m.set_defaults(func=_migrate)

    t = ws.add_parser("tick", help="escalate overdue warnings, mark warnings without fresh data stale")
    t.add_argument("--now", help="ISO time (default: now)")
    t.set_defaults(func=_tick)
