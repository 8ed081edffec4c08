"""shop.postgres: the connection health check runs only for a connection that may have sat idle."""

import psycopg
import pytest
from django.db import connections

from shop.postgres import base

pytestmark = pytest.mark.django_db(transaction=True)


def db():
    return connections["default"]


def start_request() -> None:
    """What Django does between two requests for a kept connection (request_started/finished signals)."""
    db().close_if_unusable_or_obsolete()


def first_query() -> int:
    with db().cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def terminate(pid: int) -> None:
    """Kill the backend from another connection, as a proxy idle timeout or a failover would."""
    params = db().get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.fixture
def checks(needs_postgres, monkeypatch):
    """Counts the health checks (Django's SELECT 1) the wrapper sends."""
    calls = []
    real = type(db()).is_usable

    def counted(self):
        calls.append(self.alias)
        return real(self)

    monkeypatch.setattr(type(db()), "is_usable", counted)
    monkeypatch.setitem(db().settings_dict, "CONN_HEALTH_CHECKS", True)
    monkeypatch.setitem(db().settings_dict, "CONN_MAX_AGE", 60)
    db().close()
    return calls


def test_the_shop_uses_its_backend():
    assert isinstance(db(), base.DatabaseWrapper) or db().vendor != "postgresql"


def test_a_connection_used_a_moment_ago_is_not_checked(checks):
    first_query()  # connects
    for _ in range(3):
        start_request()
        first_query()

    assert checks == []


def test_a_connection_idle_past_the_limit_is_checked_and_a_dead_one_replaced(checks, monkeypatch):
    # given: a kept connection whose backend died while it sat idle
    pid = first_query()
    terminate(pid)
    monkeypatch.setattr(base, "HEALTH_CHECK_AFTER_IDLE", 0.0)

    # when: the next request starts
    start_request()
    new_pid = first_query()

    # then: the check found it dead and the query ran on a new connection
    assert checks == ["default"]
    assert new_pid != pid


def test_the_gap_is_counted_from_the_last_request_that_used_the_connection(checks, monkeypatch):
    monkeypatch.setattr(base, "HEALTH_CHECK_AFTER_IDLE", 0.2)
    first_query()
    db().first_use_at -= 0.5  # this connection's last request began half a second ago

    start_request()
    first_query()
    start_request()
    first_query()  # began a moment after the previous one

    assert checks == ["default"]
