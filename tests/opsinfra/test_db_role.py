"""shop-db-role (run by shop-migrate as the master user) on PostgreSQL: the app's role and the clone the multi-user
rotation alternates with both carry the role settings the proxy needs. Role names are this test's own."""

import psycopg
import pytest
from django.db import connection

from opsinfra.cfn import userdata

BASE = "stack_test_app"
CLONE = f"{BASE}_clone"


@pytest.fixture
def admin(needs_postgres, django_db_blocker):
    with django_db_blocker.unblock():
        params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as conn:
        yield conn
        for role in (CLONE, BASE):
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                conn.execute(f"DROP OWNED BY {role}")
                conn.execute(f"DROP ROLE {role}")


def roles_ensure():
    namespace = {"__name__": "shop_db_role"}
    exec(compile(userdata.read("shop-db-role.py"), "shop-db-role.py", "exec"), namespace)
    return namespace["roles_ensure"]


def settings_of(conn, role: str) -> set[str]:
    rows = conn.execute(
        "SELECT unnest(setconfig) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE rolname = %s",
        [role],
    ).fetchall()
    return {row[0] for row in rows}


@pytest.mark.django_db(transaction=True)
def test_app_role_and_its_clone_carry_the_settings_and_the_clone_is_a_member(admin):
    ensure = roles_ensure()

    ensure(admin, username=BASE, password="first")

    for role in (BASE, CLONE):
        assert settings_of(admin, role) == {"TimeZone=UTC", "statement_timeout=5s"}
        assert admin.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [role]).fetchone() == (True,)
    member = admin.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", [CLONE, BASE]).fetchone()
    assert member == (True,)


@pytest.mark.django_db(transaction=True)
def test_after_rotation_to_the_clone_a_migration_keeps_both_roles(admin):
    ensure = roles_ensure()
    ensure(admin, username=BASE, password="first")

    # the secret now names the clone (multi-user rotation); the next release's migration runs shop-db-role again
    ensure(admin, username=CLONE, password="rotated")

    roles = admin.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s ORDER BY 1", [f"{BASE}%"]).fetchall()
    assert roles == [(BASE,), (CLONE,)]
    assert settings_of(admin, CLONE) == {"TimeZone=UTC", "statement_timeout=5s"}
