"""shop.postgres.deadline in-process: a call past its deadline is cut, the circuit fails fast, then one probe."""

import time

import pytest
from django.conf import settings
from django.db import OperationalError, connections

from shop.middleware import DB_RETRY_AFTER_SECONDS
from shop.postgres.deadline import COOLDOWN, Circuit, DatabaseUnavailable, DeadlineExceeded, circuit


@pytest.fixture
def closed_circuit():
    circuit.reset()
    yield circuit
    circuit.reset()


def test_the_503s_retry_after_is_the_circuits_cool_down():
    assert DB_RETRY_AFTER_SECONDS == COOLDOWN


def test_an_open_circuit_lets_one_probe_through_after_its_cool_down(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    breaker = Circuit(cooldown=5.0)
    assert breaker.allow()

    breaker.trip(OSError("no answer"))
    assert not breaker.allow()
    assert breaker.retry_after() == 5

    clock[0] += 5.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # the others wait for its answer
    clock[0] += 4.0
    assert not breaker.allow()

    breaker.reset()  # the probe succeeded
    assert breaker.allow() and breaker.allow()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("needs_postgres")
def test_a_call_past_its_deadline_is_cut_and_the_next_fail_fast(closed_circuit):
    db = connections["default"]
    db.deadline_seconds = 0.3
    try:
        # when: a statement outlasts the app's deadline (the server would let it run 5 s)
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded), db.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(2)")
        cut_after = time.monotonic() - started

        # then: it is cut near the deadline, and the next call fails at once without the network
        assert cut_after < 2.0
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable), db.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert time.monotonic() - started < 0.1
        assert issubclass(DatabaseUnavailable, OperationalError)  # answered 503 like any database failure
    finally:
        db.deadline_seconds = settings.DB_DEADLINE_MS / 1000
        closed_circuit.reset()
        db.close()

    # when: the circuit is closed again (a probe succeeded), the connection is opened afresh and answers
    with db.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
