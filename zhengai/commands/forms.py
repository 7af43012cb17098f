"""`zhengai forms`: 填报 templates, the drop folder and uploads, the task table and the incident
register.

    zhengai forms template FORM --period P [--due 2026-12-10] [--out DIR]   # FORM: a form id, tasks, incidents
    zhengai forms intake FILE|DIR … [--by STAFF_ID] [--broker B --topic-prefix P]
    zhengai forms check [--as-of 2026-11-01] [--json]    # overdue submissions and tasks, 数据采集及时率
    zhengai forms list                                   # the configured forms

``template`` writes one workbook (indicators, entities from the store's directory, period, units,
allowed ranges, office, due date) and records that the office owes it by then. ``intake`` takes
filled workbooks (a folder is a drop folder: files move to processed/ or rejected/ with a
report); the values go as observations to Kafka (``--broker``) or, without one, through the
embedded pipeline into ``--store``. Exit codes: 0 all accepted, 1 some rows or files refused,
2 configuration error.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any, TypeVar

import click

from zhengai.commands._options import (
    broker_option,
    json_option,
    namespace,
    rulebook_option,
    store_option,
    topic_prefix_option,
)

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["register", "template", "intake", "check", "list_forms"]

EXIT_OK, EXIT_REFUSED, EXIT_CONFIG = 0, 1, 2


def _setup(store: str, rulebook: str | None, forms: str | None):
    from zhengai.forms.spec import load_forms
    from zhengai.rules.loader import load_rulebook
    from zhengai.warnings.store import WarningStore

    rules = load_rulebook(rulebook)
    s = WarningStore(store)
    s.create_schema()
    return s, rules, load_forms(Path(forms) if forms else None, rules)


def _day(text: str | None, default: datetime) -> datetime:
    from zhengai.ingest.units import CST

    if not text:
        return default
    return datetime.combine(datetime.strptime(text, "%Y-%m-%d").date(), time(23, 59, 59), CST)


def template(
    form: str,
    period: str,
    *,
    out: str = ".",
    due: str | None = None,
    store: str = "",
    rulebook: str | None = None,
    forms: str | None = None,
) -> int:
    from zhengai.forms import templates
    from zhengai.forms.due import issue
    from zhengai.forms.spec import FormsConfigError, period_end
    from zhengai.ingest.records import EntityKind

    try:
        st, rules, config = _setup(store, rulebook, forms)
        now = datetime.now(UTC)
        directory = st.directory.load()
        school = directory.school()
        prefix = school.name if school else ""
        folder = Path(out)
        if form == "tasks":
            spec = config.tasks
            when = _day(due, period_end(period) + _days(spec.due_days))
            path = templates.write_tasks(
                folder / f"任务-{period}.xlsx", int(period[:4]), spec.office, when, period=period, school_name=prefix
            )
            office = spec.office
        elif form == "incidents":
            ispec = config.incidents
            when = _day(due, period_end(period) + _days(10))
            path = templates.write_incidents(
                folder / f"质量事故-{period}.xlsx", period, ispec.office, when, school_name=prefix
            )
            office = ispec.office
        else:
            f = config.form(form)
            level = config.level(f, rules)
            kind = EntityKind(level.value)
            entities = [(e.id, e.name) for e in sorted(directory.of_kind(kind), key=lambda e: e.id)]
            if not entities and school is None and kind is EntityKind.school:
                entities = [("SCH", "学校")]
            when = _day(due, period_end(period) + _days(f.due_days))
            path = templates.write_form(
                f, rules, period, entities, when, folder / f"{f.office}-{f.id}-{period}.xlsx", school_name=prefix
            )
            office = f.office
        issue(st, form, office, period, when, now)
    except KeyError:
        print(f"没有填报表“{form}”：可用 zhengai forms list 查看", file=sys.stderr)
        return EXIT_CONFIG
    except (FormsConfigError, ValueError) as exc:
        print(f"未生成：{exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"已生成 {path}（{office}，截止 {when:%Y-%m-%d}）")
    return EXIT_OK


def _days(n: int):
    from datetime import timedelta

    return timedelta(days=n)


def intake(
    paths: list[str],
    *,
    by: str | None = None,
    store: str = "",
    broker: str | None = None,
    topic_prefix: str = "",
    rulebook: str | None = None,
    forms: str | None = None,
    as_json: bool = False,
) -> int:
    from zhengai.forms import Intake
    from zhengai.forms.delivery import open_delivery
    from zhengai.forms.drop import process_folder

    st, rules, config = _setup(store, rulebook, forms)
    delivery = open_delivery(st, rules, broker=broker, topic_prefix=topic_prefix)
    directory = st.directory.load()
    results = []
    try:
        intake_ = Intake(st, delivery, config, rules, directory=lambda: directory)
        for p in map(Path, paths):
            if p.is_dir():
                results += process_folder(p, intake_)
            else:
                results.append((p.name, intake_.submit(p.read_bytes(), p.name, by=by, via="import")))
    finally:
        delivery.close()
    if as_json:
        print(
            json.dumps(
                [
                    dict(file=n, status=o.status, accepted=o.accepted, rejected=o.rejected, errors=o.errors)
                    for n, o in results
                ],
                ensure_ascii=False,
                indent=1,
            )
        )
    else:
        for name, o in results:
            print(f"{name}：{o.summary}")
            for e in o.errors:
                print(f"  {e}")
    return EXIT_REFUSED if any(o.errors for _, o in results) else EXIT_OK


def check(
    *,
    as_of: str | None = None,
    store: str = "",
    broker: str | None = None,
    topic_prefix: str = "",
    rulebook: str | None = None,
    forms: str | None = None,
    as_json: bool = False,
) -> int:
    from sqlalchemy import select

    from zhengai.forms import Intake, check_due
    from zhengai.forms.delivery import open_delivery
    from zhengai.forms.intake import _task
    from zhengai.forms.tasks import overdue
    from zhengai.warnings.forms_schema import TaskRow

    st, rules, config = _setup(store, rulebook, forms)
    when = _day(as_of, datetime.now(UTC))
    delivery = open_delivery(st, rules, broker=broker, topic_prefix=topic_prefix, clock=lambda: when)
    directory = st.directory.load()
    try:
        value, late = check_due(Intake(st, delivery, config, rules, directory=lambda: directory, clock=lambda: when))
    finally:
        delivery.close()
    with st.session() as s:
        tasks = overdue([_task(r) for r in s.scalars(select(TaskRow))], when)
    if as_json:
        print(
            json.dumps(
                dict(
                    data_collection_quality=value.value if value else None,
                    late=[
                        dict(
                            form=o.form_id,
                            office=o.office,
                            period=o.period,
                            due=o.due_at.isoformat(),
                            received=o.received_at.isoformat() if o.received_at else None,
                        )
                        for o in late
                    ],
                    overdue_tasks={k: [t.title for t in v] for k, v in tasks.items()},
                ),
                ensure_ascii=False,
                indent=1,
            )
        )
        return EXIT_OK
    print(f"状态数据采集及时率：{value.value:.1f}%" if value else "近 90 天内没有到期的填报。")
    for o in late:
        print(f"  {o.text}")
    for owner, items in sorted(tasks.items()):
        for t in items:
            print(f"  逾期任务（责任人 {owner}）：{t.unit} {t.title}，完成时限 {t.due}")
    return EXIT_OK


def list_forms(*, rulebook: str | None = None, forms: str | None = None) -> int:
    from zhengai.forms.spec import load_forms
    from zhengai.rules.loader import load_rulebook

    rules = load_rulebook(rulebook)
    config = load_forms(Path(forms) if forms else None, rules)
    for f in config.forms:
        names = "、".join(rules.rules[m].name for m in f.metrics)
        mode = "整表" if f.mode == "whole" else "逐行"
        print(f"{f.id}\t{f.office}\t{f.name}：{names}（截止：期末后 {f.due_days} 天；{mode}校验）")
    print(f"tasks\t{config.tasks.office}\t部门工作任务完成情况一览表（每月后 {config.tasks.due_days} 天内更新）")
    print(f"incidents\t{config.incidents.office}\t教学/质量事故登记表")
    return EXIT_OK


def register(cli: click.Group) -> None:
    group = click.Group("forms", help="填报: Excel templates and uploads, the task table, the incident register")
    cli.add_command(group)
    forms_option = click.option(
        "--forms",
        metavar="FILE",
        envvar="ZHENGAI_FORMS",
        default=None,
        help="forms.yaml (env ZHENGAI_FORMS; default: the shipped one)",
    )

    def common(f: F) -> F:
        return store_option(rulebook_option(forms_option(f)))

    def kafka(f: F) -> F:
        return broker_option(topic_prefix_option(json_option(f)))

    def _kafka(args: Any) -> tuple[str | None, str]:
        # the shared options leave the environment to the settings; no broker at all: the embedded pipeline
        broker = args.broker or os.environ.get("ZHENGAI_BROKER")
        return broker, args.topic_prefix or os.environ.get("ZHENGAI_TOPIC_PREFIX", "")

    @group.command(
        "template",
        help="generate a template for an office (and record its due date)\n\n"
        "FORM: a form id (zhengai forms list), tasks or incidents",
    )
    @click.argument("form")
    @click.option("--period", required=True, help="2026 (year), 2026-10 (month) or 2026-2027-1 (term)")
    @click.option("--due", default=None, help="due date YYYY-MM-DD (default: the form's days after the period)")
    @click.option("--out", default=".", help="output folder")
    @common
    def template_(**params: Any) -> int:
        a = namespace(**params)
        return template(a.form, a.period, out=a.out, due=a.due, store=a.store, rulebook=a.rulebook, forms=a.forms)

    @group.command(
        "intake",
        help="take filled workbooks in (a folder is a drop folder)\n\n"
        "Without --broker (nor $ZHENGAI_BROKER): through the embedded pipeline into --store.",
    )
    @click.argument("paths", nargs=-1, required=True)
    @click.option("--by", default=None, help="staff id of who submits (default: the 填报人工号 on the form)")
    @common
    @kafka
    def intake_(**params: Any) -> int:
        a = namespace(**params)
        broker, prefix = _kafka(a)
        return intake(
            list(a.paths),
            by=a.by,
            store=a.store,
            broker=broker,
            topic_prefix=prefix,
            rulebook=a.rulebook,
            forms=a.forms,
            as_json=a.as_json,
        )

    @group.command("check", help="late or missing submissions, overdue tasks, 数据采集及时率")
    @click.option("--as-of", default=None, help="the day to check (default: today)")
    @common
    @kafka
    def check_(**params: Any) -> int:
        a = namespace(**params)
        broker, prefix = _kafka(a)
        return check(
            as_of=a.as_of,
            store=a.store,
            broker=broker,
            topic_prefix=prefix,
            rulebook=a.rulebook,
            forms=a.forms,
            as_json=a.as_json,
        )

    @group.command("list", help="the configured forms")
    @rulebook_option
    @forms_option
    def list_(**params: Any) -> int:
        a = namespace(**params)
        return list_forms(rulebook=a.rulebook, forms=a.forms)
