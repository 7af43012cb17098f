"""The 画像, improvement-loop and freshness views, and the role-scoped copy of every reporting view.

PostgreSQL only (like revision 0003). Three views join ``reporting``:

- ``indicator_portrait``  per entity × rule × period: value, band, 目标值/标准值/预警值, the entity's
                          place (department, major, class) and its percentile among same-kind peers
                          in its department and in the school (``zhengai.warnings.portrait`` computes
                          the same figures in Python; the tests hold them equal)
- ``improvement_loop``    per warning that reached people: where it stands in the loop (open,
                          improving, overdue, recovered, closed, false positive) and the measured effect
- ``data_freshness``      per source: observations, the newest one, its age, dead letters

Scope: schema ``scoped`` holds one view per reporting view, filtered by ``access_scopes`` for the
login reading it (``current_user``; a view runs with its owner's rights, but ``current_user`` stays
the reader). Logins in role ``zhengai_scoped`` can read ``scoped`` and nothing else — a dean's
Grafana login sees their department's rows only. Rows are kept when the login's scope sees them:

- rows of an entity (views with ``entity_id``): by the entity's department, major, class, teacher
  (``zhengai.warnings.scopes.Scope.sees``, the same rules in SQL);
- department totals (views with ``department_id`` only): school-wide roles, or that department;
- anything else (school-wide figures): school-wide roles only.

Student ids and names are masked (as ``ingest.privacy.mask_student_id`` and
``scopes.mask_name``) unless the login is 质量办 or the student's own counsellor.
The scoped views are ``security_barrier`` views: a reader's own function in a WHERE clause (a
temporary one needs no privilege) is applied only after the scope filter, so it cannot see — and
leak — rows the scope hides (without the barrier it does: tests/test_scopes_pg.py).
``refresh_scoped_views`` (re)builds the scoped copies from whatever ``reporting`` holds, so a
later revision adding a reporting view calls it again.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

__all__ = ["VIEWS", "SCOPED_ROLE", "create_views", "refresh_scoped_views"]

SCOPED_ROLE = "zhengai_scoped"
READONLY_ROLE = "zhengai_readonly"

INDICATOR_PORTRAIT = """
CREATE VIEW reporting.indicator_portrait AS
WITH latest AS (
    SELECT DISTINCT ON (v.rule_id, v.entity_id, v.period)
           v.rule_id, v.level, v.entity_id, v.metric, v.period, v.period_start, v.value, v.band,
           v.thresholds::jsonb AS th, v.evaluated_at
    FROM verdicts v
    ORDER BY v.rule_id, v.entity_id, v.period, v.evaluated_at DESC, v.id DESC
), names AS (
    SELECT rule_id, max(rule_name) AS rule_name FROM warnings GROUP BY rule_id
), placed AS (
    SELECT l.*, e.kind AS entity_kind, e.name AS entity_name, e.parent_id, e.department_id, e.major_id,
           COALESCE(d.name, '全校') AS department_name, m.name AS major_name,
           CASE WHEN l.th->>'direction' = 'higher_is_better' THEN l.value
                WHEN l.th->>'direction' = 'lower_is_better' THEN -l.value END AS goodness
    FROM latest l
    JOIN entities e ON e.id = l.entity_id
    LEFT JOIN entities d ON d.id = e.department_id
    LEFT JOIN entities m ON m.id = e.major_id
)
SELECT p.rule_id, COALESCE(n.rule_name, p.rule_id) AS rule_name, p.level, p.metric, p.period, p.period_start,
       p.entity_id, p.entity_kind, p.entity_name, p.parent_id, p.department_id, p.department_name,
       p.major_id, p.major_name, p.value, p.band,
       -- a range (e.g. weekly hours within [15, 30]) has no single threshold to show
       CASE WHEN jsonb_typeof(p.th->'target') = 'number' THEN (p.th->>'target')::float END AS target,
       CASE WHEN jsonb_typeof(p.th->'standard') = 'number' THEN (p.th->>'standard')::float END AS standard,
       CASE WHEN jsonb_typeof(p.th->'warning') = 'number' THEN (p.th->>'warning')::float END AS warning,
       p.th->>'direction' AS direction,
       CASE WHEN p.goodness IS NOT NULL THEN count(*) OVER dept END AS n_department,
       CASE WHEN p.goodness IS NOT NULL THEN count(*) OVER school END AS n_school,
       CASE WHEN p.goodness IS NOT NULL AND count(*) OVER dept > 1
            THEN 100.0 * (cume_dist() OVER dept_ranked * count(*) OVER dept - 1)
                 / (count(*) OVER dept - 1) END AS pct_department,
       CASE WHEN p.goodness IS NOT NULL AND count(*) OVER school > 1
            THEN 100.0 * (cume_dist() OVER school_ranked * count(*) OVER school - 1)
                 / (count(*) OVER school - 1) END AS pct_school,
       p.evaluated_at
FROM placed p
LEFT JOIN names n ON n.rule_id = p.rule_id
WINDOW dept AS (PARTITION BY p.rule_id, p.period, p.entity_kind, p.department_id, p.goodness IS NULL),
       dept_ranked AS (dept ORDER BY p.goodness),
       school AS (PARTITION BY p.rule_id, p.period, p.entity_kind, p.goodness IS NULL),
       school_ranked AS (school ORDER BY p.goodness)
"""

IMPROVEMENT_LOOP = """
CREATE VIEW reporting.improvement_loop AS
WITH last_measure AS (
    SELECT DISTINCT ON (i.warning_id) i.* FROM improvements i ORDER BY i.warning_id, i.created_at DESC, i.id DESC
), last_effect AS (
    SELECT DISTINCT ON (f.warning_id) f.warning_id, f.summary, f.measured_at
    FROM improvement_effects f ORDER BY f.warning_id, f.measured_at DESC, f.id DESC
), staged AS (
    SELECT w.*, CASE
        WHEN w.status = 'closed' AND w.resolution = 'false_positive' THEN 'false_positive'
        WHEN w.status = 'closed' THEN 'closed'
        WHEN w.status = 'recovered' THEN 'recovered'
        WHEN w.status IN ('improving', 'escalated') AND COALESCE(w.due_date, 'infinity') < now() THEN 'overdue'
        WHEN w.status IN ('improving', 'escalated') THEN 'improving'
        ELSE 'open' END AS loop_state
    FROM warnings w
    WHERE w.status <> 'pending' AND NOT (w.status = 'closed' AND w.resolution = 'cleared')
)
SELECT w.id AS warning_id, w.rule_id, w.rule_name, w.level, w.entity_id, e.kind AS entity_kind,
       e.name AS entity_name, e.department_id, COALESCE(d.name, '全校') AS department_name, e.major_id,
       w.status, w.band, w.worst_band, w.loop_state,
       CASE w.loop_state WHEN 'open' THEN '待改进' WHEN 'improving' THEN '改进中' WHEN 'overdue' THEN '已逾期'
            WHEN 'recovered' THEN '已恢复待复评' WHEN 'closed' THEN '已闭环' ELSE '误报' END AS loop_state_zh,
       w.opened_at, w.opened_period, w.last_period, w.due_date, m.created_at AS measure_at, m.text AS measure,
       m.value_before, COALESCE(m.value_after, CASE WHEN w.loop_state IN ('recovered', 'closed') THEN w.value END)
           AS value_after,
       COALESCE(m.value_after, CASE WHEN w.loop_state IN ('recovered', 'closed') THEN w.value END) - m.value_before
           AS effect_change,
       COALESCE(f.summary, m.effect) AS effect, COALESCE(f.measured_at, m.effect_measured_at) AS effect_measured_at,
       w.closed_at
FROM staged w
LEFT JOIN entities e ON e.id = w.entity_id
LEFT JOIN entities d ON d.id = e.department_id
LEFT JOIN last_measure m ON m.warning_id = w.id
LEFT JOIN last_effect f ON f.warning_id = w.id
"""

DATA_FRESHNESS = """
CREATE VIEW reporting.data_freshness AS
WITH obs AS (
    SELECT source, count(*) AS observations, max(observed_at) AS last_observed_at, max(period) AS last_period
    FROM observations GROUP BY source
), dead AS (
    SELECT source, count(*) AS dead_letters, max(at) AS last_dead_letter_at FROM dead_letters GROUP BY source
)
SELECT COALESCE(o.source, d.source) AS source, split_part(COALESCE(o.source, d.source), '.', 1) AS connector,
       COALESCE(o.observations, 0) AS observations, o.last_observed_at, o.last_period,
       round((EXTRACT(EPOCH FROM (now() - o.last_observed_at)) / 3600.0)::numeric, 1) AS hours_since_last,
       COALESCE(d.dead_letters, 0) AS dead_letters, d.last_dead_letter_at
FROM obs o FULL OUTER JOIN dead d ON d.source = o.source
"""

VIEWS = {
    "indicator_portrait": INDICATOR_PORTRAIT,
    "improvement_loop": IMPROVEMENT_LOOP,
    "data_freshness": DATA_FRESHNESS,
}

# --- the scoped copies ---------------------------------------------------------------------------

_MY = "s.principal = current_user"
_WIDE = f"EXISTS (SELECT 1 FROM public.access_scopes s WHERE {_MY} AND s.role IN ('quality_office', 'leader'))"
_DEPT = (
    "EXISTS (SELECT 1 FROM public.access_scopes s WHERE {my} AND (s.role IN ('quality_office', 'leader') "
    "OR s.department_id = {col}))"
)
# the entity's row is seen: Scope.sees in SQL (se = the entity, se_teacher = a course's teacher)
_ENTITY = """EXISTS (SELECT 1 FROM public.access_scopes s WHERE {my} AND (
    s.role IN ('quality_office', 'leader')
    OR (s.role IN ('dean', 'counsellor') AND s.department_id = se.department_id)
    OR (s.role = 'major_leader' AND s.unit_id IN (se.major_id, se.id))
    OR (s.role = 'teacher' AND s.unit_id IN (se.id, se.attributes::jsonb->>'teacher_id',
                                             se.responsible::jsonb->>'course_teacher'))))"""
_CLEAR = """(se.kind IS DISTINCT FROM 'student' OR EXISTS (SELECT 1 FROM public.access_scopes s WHERE {my} AND (
    s.role = 'quality_office' OR (s.role = 'counsellor' AND s.unit_id = se.parent_id))))"""
_MASK_ID = (
    "CASE WHEN length({c}) > 6 THEN left({c}, 4) || repeat('*', length({c}) - 6) || right({c}, 2) "
    "ELSE repeat('*', length({c})) END"
)
_MASK_NAME = "left({c}, 1) || repeat('*', greatest(char_length({c}) - 1, 1))"
_TEXTS = ("reason", "measure", "effect", "summary")  # free text that may name the student


def _columns(conn: Connection, view: str) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in conn.execute(
            text(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'reporting' AND table_name = :v ORDER BY ordinal_position"
            ),
            {"v": view},
        )
    ]


def _scoped_sql(view: str, columns: list[tuple[str, str]]) -> str:
    names = [c for c, _ in columns]
    if "entity_id" in names:
        clear = _CLEAR.format(my=_MY)
        masked_id = _MASK_ID.format(c="v.entity_id")
        out = []
        for c, kind in columns:
            if c == "entity_id":
                expr = masked_id
            elif c in ("entity_name",):
                expr = _MASK_NAME.format(c="v.entity_name")
            elif c in _TEXTS and kind in ("text", "character varying"):
                expr = f"replace(replace(v.{c}, v.entity_id, {masked_id}), se.name, {_MASK_NAME.format(c='se.name')})"
            else:
                out.append(f"v.{c}")
                continue
            out.append(f"CASE WHEN {clear} THEN v.{c} ELSE {expr} END AS {c}")
        return (
            f"CREATE VIEW scoped.{view} WITH (security_barrier) AS SELECT {', '.join(out)} FROM reporting.{view} v "
            f"LEFT JOIN public.entities se ON se.id = v.entity_id WHERE {_ENTITY.format(my=_MY)}"
        )
    where = _DEPT.format(my=_MY, col="v.department_id") if "department_id" in names else _WIDE
    return f"CREATE VIEW scoped.{view} WITH (security_barrier) AS SELECT v.* FROM reporting.{view} v WHERE {where}"


def refresh_scoped_views(conn: Connection) -> list[str]:
    """(Re)create ``scoped.<view>`` for every view in ``reporting`` (materialized aggregates are
    read through their views); returns the names."""
    conn.execute(
        text(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'scoped') "
            "THEN CREATE SCHEMA scoped; END IF; END $$"
        )
    )
    conn.execute(
        text(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{SCOPED_ROLE}') THEN
                CREATE ROLE {SCOPED_ROLE} NOLOGIN;
            END IF;
        END $$""")
    )
    views = list(
        conn.execute(
            text("SELECT table_name FROM information_schema.views WHERE table_schema = 'reporting' ORDER BY table_name")
        ).scalars()
    )
    for view in views:
        conn.execute(text(f"DROP VIEW IF EXISTS scoped.{view}"))
        conn.execute(text(_scoped_sql(view, _columns(conn, view))))
    conn.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {SCOPED_ROLE}"))
    conn.execute(text(f"REVOKE CREATE ON SCHEMA public FROM {SCOPED_ROLE}"))
    conn.execute(text(f"GRANT USAGE ON SCHEMA scoped TO {SCOPED_ROLE}"))
    conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA scoped TO {SCOPED_ROLE}"))
    return views


def create_views(conn: Connection) -> None:
    """The three reporting views (readable by the read-only role), then the scoped copies of all."""
    for name, sql in VIEWS.items():
        conn.execute(text(f"DROP VIEW IF EXISTS scoped.{name}"))
        conn.execute(text(f"DROP VIEW IF EXISTS reporting.{name}"))
        conn.execute(text(sql))
    conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO {READONLY_ROLE}"))
    refresh_scoped_views(conn)
