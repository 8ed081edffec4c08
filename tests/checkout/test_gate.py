"""The flash-sale gate (catalog.gate) in front of checkout, on the real Redis and PostgreSQL."""

import json
import socket
import subprocess
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog import gate
from catalog.models import Inventory
from checkout.models import Order, OrderLine
from shop.redis import breaker, redis_client
from tests.checkout.conftest import snapshot, stock_of
from tests.workers import redis_space_flush

pytestmark = pytest.mark.django_db


def checkout(client, body, *, token=None, key=None):
    headers = {} if token is None else {"X-Session-Token": token}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/api/checkout", data=json.dumps(body), content_type="application/json", headers=headers)


def line(product, quantity=1):
    return {"product_id": product.pk, "quantity": quantity}


def units(product) -> int | None:
    return (gate.gate_units() or {}).get(product.pk)


@pytest.fixture
def own_redis(settings):
    """A redis-server of this test's own, on a free port, with the shop pointed at it; yields its process."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    redis_client.cache_clear()
    breaker.reset()
    deadline = time.monotonic() + 10
    while True:
        try:
            redis_client().ping()
            break
        except Exception:
            assert time.monotonic() < deadline, "the test's own redis-server did not start"
            time.sleep(0.05)
    gate.sales_forget()
    yield server
    server.kill()
    server.wait()
    redis_client.cache_clear()
    breaker.reset()


# --- Sold out, not started ------------------------------------------------------------------------------


def test_sold_out_attempt_is_409_without_any_sql_before_the_session_is_checked(
    client, make_product, make_token, on_sale
):
    # given: a doorbuster of one unit, sold
    product = on_sale(make_product(stock=1))
    assert checkout(client, line(product), token=make_token()).status_code == 201
    before = snapshot()

    # when: an unknown session tries (the session is never read)
    with CaptureQueriesContext(connection) as queries:
        response = checkout(client, line(product), token="not-a-session")

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "insufficient_stock",
        "detail": f"Not enough stock for product(s) {product.pk}.",
        "product_ids": [product.pk],
        "reason": "sold_out",
    }
    assert len(queries) == 0
    assert snapshot() == before
    assert units(product) == 0


def test_sale_not_started_is_409_from_the_gate_and_from_postgresql(client, make_product, make_token, on_sale, settings):
    # given
    product = on_sale(make_product(stock=5), starts_at=timezone.now() + timedelta(hours=1))
    before = snapshot()

    # when: through the gate, then with the gate unreachable (PostgreSQL checks the start too)
    through_gate = checkout(client, line(product), token=make_token())
    breaker.trip(RuntimeError("test: redis down"))
    without_gate = checkout(client, line(product), token=make_token())

    # then
    for response in (through_gate, without_gate):
        assert response.status_code == 409
        assert response.json()["reason"] == "sale_not_started"
        assert response.json()["product_ids"] == [product.pk]
    assert snapshot() == before
    breaker.reset()
    assert units(product) == 5


def test_admitted_units_go_back_when_postgresql_does_not_sell(client, make_product, make_token, on_sale):
    # given: a doorbuster and an ordinary product that is short
    product = on_sale(make_product(stock=3))
    short = make_product(stock=0)
    before = snapshot()

    # when: an unknown session, then a cart whose other line is short
    unknown = checkout(client, line(product), token="not-a-session")
    partly_short = checkout(client, {"items": [line(product), line(short)]}, token=make_token())

    # then: nothing sold, and the gate has its 3 units again
    assert unknown.status_code == 401
    assert partly_short.status_code == 409
    assert partly_short.json()["product_ids"] == [short.pk]
    assert "reason" not in partly_short.json()
    assert snapshot() == before
    assert units(product) == 3


def test_units_postgresql_found_short_stay_out_of_the_gate(client, make_product, make_token, on_sale):
    # given: the gate counts more than PostgreSQL has (its stock fell behind the gate's back)
    product = on_sale(make_product(stock=2))
    Inventory.objects.filter(product=product).update(quantity=0)
    before = snapshot()

    # when
    response = checkout(client, line(product, 2), token=make_token())

    # then: PostgreSQL refuses, and the gate keeps the units off, agreeing with it again
    assert response.status_code == 409
    assert "reason" not in response.json()
    assert snapshot() == before
    assert units(product) == 0


def test_idempotent_repeat_after_the_sell_out_returns_the_same_order(client, make_product, make_token, on_sale):
    # given: the last unit sold with a key
    product = on_sale(make_product(stock=1))
    token = make_token()
    first = checkout(client, line(product), token=token, key="k-1")
    assert first.status_code == 201

    # when: the same request again, and another shopper
    repeat = checkout(client, line(product), token=token, key="k-1")
    other = checkout(client, line(product), token=make_token(), key="k-1")

    # then: the repeat is the first answer; the other is sold out
    assert repeat.status_code == 201
    assert repeat.json() == first.json()
    assert other.status_code == 409 and other.json()["reason"] == "sold_out"
    assert Order.objects.count() == 1
    assert stock_of(product) == 0
    assert units(product) == 0


def test_products_not_on_sale_never_touch_the_gate(client, make_product, make_token, on_sale):
    # given
    doorbuster = on_sale(make_product(stock=5))
    ordinary = make_product(stock=5)

    # when
    response = checkout(client, line(ordinary, 2), token=make_token())

    # then
    assert response.status_code == 201
    assert stock_of(ordinary) == 3
    assert gate.gate_units() == {doorbuster.pk: 5}


# --- Per-session limit ------------------------------------------------------------------------------------


def test_max_per_session_counts_earlier_orders(client, make_product, make_token, on_sale):
    # given: at most 2 per session
    product = on_sale(make_product(stock=10), max_per_session=2)
    token = make_token()
    assert checkout(client, line(product, 1), token=token).status_code == 201
    before = snapshot()

    # when: 2 more for the same session, then 3 at once for a new one
    again = checkout(client, line(product, 2), token=token, key="again")
    too_many = checkout(client, line(product, 3), token=make_token())

    # then: both refused; nothing written but the stored answer of the keyed request; the gate has its units back
    for response in (again, too_many):
        assert response.status_code == 409
        assert response.json()["code"] == "limit_exceeded"
        assert response.json()["product_ids"] == [product.pk]
    after = snapshot()
    assert after["idempotency_records"] == before["idempotency_records"] + 1
    assert {**after, "idempotency_records": 0} == {**before, "idempotency_records": 0}
    assert units(product) == 9
    assert checkout(client, line(product, 1), token=token).status_code == 201


def test_max_per_session_holds_without_the_gate(client, make_product, make_token, on_sale):
    # given
    product = on_sale(make_product(stock=10), max_per_session=1)
    breaker.trip(RuntimeError("test: redis down"))
    token = make_token()

    # when
    first = checkout(client, line(product), token=token)
    second = checkout(client, line(product), token=token)

    # then
    assert first.status_code == 201
    assert second.status_code == 409 and second.json()["code"] == "limit_exceeded"
    assert stock_of(product) == 9


# --- Redis down, Redis emptied -------------------------------------------------------------------------------


def test_redis_killed_mid_sale_falls_back_to_postgresql(client, make_product, make_token, on_sale, own_redis):
    # given: the sale running on a Redis of this test's own
    product = on_sale(make_product(stock=3))
    assert units(product) == 3
    assert checkout(client, line(product), token=make_token()).status_code == 201

    # when: that Redis dies
    own_redis.kill()
    own_redis.wait()
    gate.sales_forget()
    statuses = [checkout(client, line(product), token=make_token()).status_code for _ in range(4)]

    # then: PostgreSQL sells the rest and refuses after, as without a gate
    assert statuses == [201, 201, 409, 409]
    assert stock_of(product) == 0
    assert OrderLine.objects.filter(product=product).count() == 3


def test_gate_lost_by_redis_is_rebuilt_at_first_use(client, make_product, make_token, on_sale, needs_redis):
    # given: a sale with 2 of 5 units sold, then Redis loses everything
    product = on_sale(make_product(stock=5))
    for _ in range(2):
        assert checkout(client, line(product), token=make_token()).status_code == 201
    redis_space_flush(needs_redis)
    gate.sales_forget()

    # when: the next attempt
    response = checkout(client, line(product), token=make_token())

    # then: the gate was rebuilt from PostgreSQL (3 left) before it admitted the attempt
    assert response.status_code == 201
    assert units(product) == 2
    assert stock_of(product) == 2


def test_one_rebuilder_at_a_time(make_product, on_sale, needs_redis):
    # given: another process holds the rebuild lock
    product = on_sale(make_product(stock=5))
    redis_space_flush(needs_redis)
    needs_redis.set(gate.gate_key("rebuild"), "someone-else", px=gate.REBUILD_LOCK_MS)

    # when
    rebuilt = gate.gate_rebuild(wait=False)

    # then: this one did not rebuild; once the lock is free it does
    assert rebuilt is None
    assert gate.gate_units() is None
    needs_redis.delete(gate.gate_key("rebuild"))
    assert gate.gate_rebuild(wait=False) == [product.pk]
    assert units(product) == 5


# --- The command -------------------------------------------------------------------------------------------


def test_flash_sale_command_starts_ends_and_rebuilds(make_product, needs_redis):
    from io import StringIO

    # given
    product = make_product(stock=7)
    gate.gate_rebuild()
    out = StringIO()

    # when / then: start, with a limit
    call_command("flash_sale", product.pk, "--starts-at", "2026-11-27T06:00:00Z", "--max-per-session", "2", stdout=out)
    product.refresh_from_db()
    assert product.max_per_session == 2
    assert product.sale_starts_at.isoformat() == "2026-11-27T06:00:00+00:00"
    # (inside the test transaction the on-commit sync does not run; rebuild reads what was committed so far)
    gate.gate_rebuild()
    assert units(product) == 7

    redis_space_flush(needs_redis)
    call_command("flash_sale", "--rebuild", stdout=out)
    assert units(product) == 7
    assert "Gate rebuilt with 1 product(s) on sale." in out.getvalue()

    call_command("flash_sale", product.pk, "--end", stdout=out)
    product.refresh_from_db()
    assert product.sale_starts_at is None and product.max_per_session is None


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "Name a product id, or pass --rebuild."),
        (["999999"], "No product with id 999999."),
        (["{pk}", "--starts-at", "tomorrow"], "--starts-at must be an ISO 8601 time, got 'tomorrow'."),
        (["{pk}", "--starts-at", "2026-11-27T06:00:00"], "--starts-at needs a time zone, e.g. 2026-11-27T06:00:00Z."),
        (["{pk}", "--max-per-session", "0"], "max_per_session must be at least 1, got 0."),
        (["{pk}", "--end", "--max-per-session", "1"], "--end takes no --starts-at or --max-per-session."),
        (["{pk}", "--rebuild"], "--rebuild takes no product and no other option."),
    ],
)
def test_flash_sale_command_refuses_bad_input_and_changes_nothing(make_product, args, message):
    # given
    product = make_product(stock=7)

    # when
    with pytest.raises(CommandError) as raised:
        call_command("flash_sale", *[arg.format(pk=product.pk) for arg in args])

    # then
    assert str(raised.value) == message
    product.refresh_from_db()
    assert product.sale_starts_at is None and product.max_per_session is None
