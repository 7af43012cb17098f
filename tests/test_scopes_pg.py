"""Role-scoped visibility on real PostgreSQL with the demo college: a dean's database login (role
``zhengai_scoped``, granted 院长 of D01) reads only D01's rows through every ``scoped`` view and
nothing in ``reporting`` or the base tables; a counsellor's login sees students of their own class
in clear and every other student masked; the Python scopes (web, CLI) say the same."""

import re

import pytest
from demopg import copy_into_postgres, login, run_small_demo
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from zhengai.warnings.scopes import Role, grant, place, scope_of

pytestmark = pytest.mark.integration
MASKED = re.compile(r"^\d{4}\*{4}\d{2}$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    run_small_demo(out)
    return out / "zhengai.sqlite"


@pytest.fixture
def store(demo, pg_url):
    s = copy_into_postgres(demo, pg_url)
    yield s
    s.engine.dispose()


def _suffix(store) -> str:
    return store.engine.url.database[-8:]


def _views(store) -> dict[str, list[str]]:
    with store.engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'scoped' ORDER BY table_name, ordinal_position"
            )
        ).all()
    out: dict[str, list[str]] = {}
    for view, column in rows:
        out.setdefault(view, []).append(column)
    return out


def test_every_reporting_view_has_a_scoped_copy(store):
    with store.engine.connect() as c:
        reporting = set(
            c.execute(
                text("SELECT table_name FROM information_schema.views WHERE table_schema = 'reporting'")
            ).scalars()
        )
    assert {"open_warnings", "indicator_portrait", "improvement_loop", "data_freshness"} <= reporting
    assert set(_views(store)) == reporting


def test_a_deans_login_reads_only_their_department_through_every_view(store):
    directory = store.directory.load()
    name = f"dean_{_suffix(store)}"
    grant(store, directory, name, Role.dean, "D01")
    views = _views(store)
    with store.engine.connect() as c:  # what there is to hide: every department-bound view has D02 rows
        d02 = {
            v: c.execute(text(f"SELECT count(*) FROM reporting.{v} WHERE department_id = 'D02'")).scalar()
            for v, cols in views.items()
            if "department_id" in cols
        }
    assert d02["indicator_portrait"] > 100 and d02["open_warnings"] > 0 and d02["improvement_loop"] > 0
    with login(store, name, "zhengai_scoped") as engine, engine.connect() as c:
        seen = 0
        for view, cols in views.items():
            rows = c.execute(text(f"SELECT * FROM scoped.{view}")).mappings().all()
            if "department_id" in cols:
                assert {r["department_id"] for r in rows} <= {"D01"}, view
                seen += len(rows)
            else:  # school-wide figures: not for a department's login
                assert rows == [], view
            if "entity_id" in cols:
                for r in rows:
                    entity = place(directory, r["entity_id"]) if not MASKED.match(r["entity_id"]) else None
                    assert entity is None or entity.department_id == "D01", (view, r["entity_id"])
        assert seen > 1000
        # students of D01 are there, but masked: a dean is not among those who need them
        students = c.execute(
            text("SELECT DISTINCT entity_id, entity_name FROM scoped.indicator_portrait WHERE entity_kind = 'student'")
        ).all()
        assert students and all(MASKED.match(i) and n.endswith("*") for i, n in students)
        for sql in (
            "SELECT * FROM reporting.open_warnings",
            "SELECT * FROM reporting.indicator_portrait",
            "SELECT * FROM warnings",
            "SELECT * FROM access_scopes",
            "SELECT * FROM entities",
        ):
            with pytest.raises(ProgrammingError, match="permission denied"):
                c.execute(text(sql))
            c.rollback()


def test_a_login_without_a_grant_sees_nothing(store):
    with login(store, f"nobody_{_suffix(store)}", "zhengai_scoped") as engine, engine.connect() as c:
        for view in _views(store):
            assert c.execute(text(f"SELECT count(*) FROM scoped.{view}")).scalar() == 0, view


def test_a_counsellor_sees_masked_ids_outside_their_classes(store):
    directory = store.directory.load()
    name = f"fd_{_suffix(store)}"
    grant(store, directory, name, Role.counsellor, "K0101241")
    with login(store, name, "zhengai_scoped") as engine, engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT DISTINCT entity_id, entity_name, parent_id, department_id "
                "FROM scoped.indicator_portrait WHERE entity_kind = 'student'"
            )
        ).all()
    own = [r for r in rows if r.parent_id == "K0101241"]
    others = [r for r in rows if r.parent_id != "K0101241"]
    assert len(own) >= 20 and len(others) >= 20
    assert all(re.fullmatch(r"\d{10}", r.entity_id) and "*" not in r.entity_name for r in own)
    assert all(MASKED.match(r.entity_id) and r.entity_name.endswith("*") for r in others)
    assert {r.department_id for r in rows} == {"D01"}
    # the same rules in Python (the web pages and the CLI use these)
    scope = scope_of(store, directory, name)
    mine, other = place(directory, own[0].entity_id), place(directory, "2401010030")
    assert scope.in_clear(mine) and scope.sees(other) and not scope.in_clear(other)
    assert scope.entity_ref(other) == ("2401****30", other.name[0] + "*" * (len(other.name) - 1))


def test_directory_roles_give_scopes(store):
    directory = store.directory.load()
    dean = scope_of(store, directory, "DN01")
    assert dean.roles == {Role.dean} and dean.departments == {"D01"}
    assert dean.sees(place(directory, "C0001")) and not dean.sees(place(directory, "C0040"))
    leader = scope_of(store, directory, "T0001")  # 专业带头人 of M0101 and a teacher
    assert {Role.major_leader, Role.teacher} <= leader.roles
    assert leader.sees(place(directory, "C0001")) and not leader.sees(place(directory, "M0102"))
    assert scope_of(store, directory, "QA01").in_clear(place(directory, "2401010001"))
    assert not scope_of(store, directory, "stranger").sees(place(directory, "C0001"))


def test_a_leaky_function_sees_only_the_scoped_rows(store):
    """The classic leak through a view: the reader's own cheap function in WHERE, raising a notice
    with each row it is shown. Scoped views are security barriers — it only ever sees D01's rows."""
    name = f"leak_{_suffix(store)}"
    grant(store, store.directory.load(), name, Role.dean, "D01")
    with login(store, name, "zhengai_scoped") as engine:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(
                "CREATE FUNCTION pg_temp.peek(t text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS "
                "$$ BEGIN RAISE NOTICE 'saw %', t; RETURN true; END $$"
            )
            cur.execute(
                "SELECT count(*) FROM scoped.open_warnings WHERE pg_temp.peek(department_id || ':' || entity_id)"
            )
            assert cur.fetchone()[0] > 0
            seen = [n for n in raw.driver_connection.notices if "saw " in n]
            assert seen and all("saw D01:" in n for n in seen), seen[:3]
        finally:
            raw.close()


def test_a_teachers_login_sees_themselves_and_their_courses(store):
    directory = store.directory.load()
    name = f"tch_{_suffix(store)}"
    grant(store, directory, name, Role.teacher, "T0001")
    with store.engine.connect() as c:
        courses = set(
            c.execute(
                text(
                    "SELECT id FROM entities WHERE kind = 'course' AND responsible::jsonb->>'course_teacher' = 'T0001'"
                )
            ).scalars()
        )
    assert courses
    with login(store, name, "zhengai_scoped") as engine, engine.connect() as c:
        seen = set(c.execute(text("SELECT DISTINCT entity_id FROM scoped.indicator_portrait")).scalars())
    assert seen == courses | {"T0001"}
    scope = scope_of(store, directory, name)
    assert all(scope.sees(place(directory, e)) for e in seen)
