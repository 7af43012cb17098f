"""Reporting views for Grafana and reports, and a read-only role that can read only them.

PostgreSQL only (the embedded SQLite store needs no dashboards). Views live in schema
``reporting``; base tables stay in ``public``, where the role ``zhengai_readonly`` has no
privileges, so Grafana's login (a member of that role) sees the views and nothing else. Day
buckets are China-time ``date_trunc`` here; where TimescaleDB is usable, revision 0006 points
``daily_counts`` at a continuous aggregate with the same columns (``zhengai.warnings.timescale``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op

from zhengai.warnings.capabilities import Capabilities, day_bucket

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

READONLY_ROLE = "zhengai_readonly"
VIEWS = ("open_warnings", "daily_counts", "warning_timings", "response_times", "improvement_closure", "false_positive_rules")

# Warnings people still have to act on: confirmed (not pending) and not closed.
OPEN_WARNINGS = """
CREATE VIEW reporting.open_warnings AS
SELECT w.id, w.rule_id, w.rule_name, w.level, w.metric, w.status, w.band, w.worst_band,
       w.entity_id, e.name AS entity_name, e.kind AS entity_kind,
       e.department_id, COALESCE(d.name, '全校') AS department_name,
       w.opened_period, w.last_period, w.value, w.reason,
       w.responsible_role, p.name AS responsible_name,
       w.due_date, w.escalation_level, w.stale, w.opened_at, w.updated_at
FROM warnings w
LEFT JOIN entities e ON e.id = w.entity_id
LEFT JOIN entities d ON d.id = e.department_id
LEFT JOIN persons p ON p.id = w.responsible_person_id
WHERE w.status IN ('open', 'acknowledged', 'improving', 'escalated', 'recovered')
"""

# New warnings per day by level x band x department (band at opening).
DAILY_COUNTS = """
CREATE VIEW reporting.daily_counts AS
SELECT {day} AS day, w.level, ev.to_band AS band,
       e.department_id, COALESCE(d.name, '全校') AS department_name, count(*) AS opened
FROM warning_events ev
JOIN warnings w ON w.id = ev.warning_id
LEFT JOIN entities e ON e.id = w.entity_id
LEFT JOIN entities d ON d.id = e.department_id
WHERE ev.kind = 'opened'
GROUP BY 1, 2, 3, 4, 5
"""

WARNING_TIMINGS = """
CREATE VIEW reporting.warning_timings AS
SELECT w.id, w.rule_id, w.rule_name, w.level, e.department_id, w.opened_at, w.acknowledged_at, w.recovered_at,
       EXTRACT(EPOCH FROM (w.acknowledged_at - w.opened_at)) / 3600.0 AS hours_to_acknowledge,
       EXTRACT(EPOCH FROM (w.recovered_at - w.opened_at)) / 3600.0 AS hours_to_recover
FROM warnings w
LEFT JOIN entities e ON e.id = w.entity_id
WHERE w.status <> 'pending' AND NOT (w.status = 'closed' AND w.resolution = 'cleared')
"""

RESPONSE_TIMES = """
CREATE VIEW reporting.response_times AS
SELECT level, rule_id, rule_name, count(*) AS warnings,
       count(acknowledged_at) AS acknowledged, avg(hours_to_acknowledge) AS avg_hours_to_acknowledge,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY hours_to_acknowledge) AS median_hours_to_acknowledge,
       count(recovered_at) AS recovered, avg(hours_to_recover) AS avg_hours_to_recover,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY hours_to_recover) AS median_hours_to_recover
FROM reporting.warning_timings
GROUP BY level, rule_id, rule_name
"""

# An improvement is closed when its warning recovered (the realised effect) or was reviewed.
IMPROVEMENT_CLOSURE = """
CREATE VIEW reporting.improvement_closure AS
SELECT w.level, e.department_id, COALESCE(d.name, '全校') AS department_name,
       count(*) AS improvements,
       count(*) FILTER (WHERE w.status = 'recovered' OR (w.status = 'closed' AND w.resolution = 'reviewed')) AS closed,
       count(*) FILTER (WHERE i.due_date < now() AND w.status IN ('improving', 'escalated')) AS overdue,
       round(100.0 * count(*) FILTER (WHERE w.status = 'recovered' OR (w.status = 'closed' AND w.resolution = 'reviewed'))
             / count(*), 1) AS closure_rate
FROM improvements i
JOIN warnings w ON w.id = i.warning_id
LEFT JOIN entities e ON e.id = w.entity_id
LEFT JOIN entities d ON d.id = e.department_id
GROUP BY w.level, e.department_id, d.name
"""

# The rules whose warnings the quality office most often closes as 误报, with the reasons given.
FALSE_POSITIVE_RULES = """
CREATE VIEW reporting.false_positive_rules AS
SELECT w.rule_id, max(w.rule_name) AS rule_name, w.level,
       count(*) AS warnings,
       count(*) FILTER (WHERE w.resolution = 'false_positive') AS false_positives,
       round(100.0 * count(*) FILTER (WHERE w.resolution = 'false_positive') / count(*), 1) AS false_positive_rate,
       string_agg(DISTINCT w.close_reason, '；') FILTER (WHERE w.resolution = 'false_positive') AS reasons
FROM warnings w
WHERE w.status <> 'pending' AND NOT (w.status = 'closed' AND w.resolution = 'cleared')
GROUP BY w.rule_id, w.level
"""

def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    # CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database; a DBA may have made the schema
    op.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'reporting') "
               "THEN CREATE SCHEMA reporting; END IF; END $$")
    op.execute(OPEN_WARNINGS)
    op.execute(DAILY_COUNTS.format(day=day_bucket(Capabilities("postgresql"), "ev.at")))
    op.execute(WARNING_TIMINGS)
    op.execute(RESPONSE_TIMES)
    op.execute(IMPROVEMENT_CLOSURE)
    op.execute(FALSE_POSITIVE_RULES)
    # The role is cluster-wide: create it once, grant in every database migrated.
    op.execute(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READONLY_ROLE}') THEN
                CREATE ROLE {READONLY_ROLE} NOLOGIN;
            END IF;
        END $$""")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {READONLY_ROLE}")
    op.execute(f"REVOKE CREATE ON SCHEMA public FROM {READONLY_ROLE}")
    op.execute(f"GRANT USAGE ON SCHEMA reporting TO {READONLY_ROLE}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO {READONLY_ROLE}")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    op.execute("DROP SCHEMA IF EXISTS reporting CASCADE")
