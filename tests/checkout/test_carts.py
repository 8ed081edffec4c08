"""Carts that hold stock, on PostgreSQL with real threads: a test transaction would hide the races they look for."""

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from catalog.models import StockHold
from checkout import carts
from checkout.models import Order, OrderLine
from checkout.selectors import session_get_by_token
from tests.checkout.conftest import snapshot, stock_of
from tests.checkout.test_concurrency import run_together

pytestmark = pytest.mark.django_db(transaction=True)


def put(token: str | None, product_id, body, *, ip: str = "10.0.0.1"):
    headers = {"X-Session-Token": token} if token else {}
    return Client().put(
        f"/api/cart/items/{product_id}",
        data=json.dumps(body),
        content_type="application/json",
        headers=headers,
        REMOTE_ADDR=ip,
    )


def cart_checkout(token: str, key: str | None = None):
    headers = {"X-Session-Token": token, **({"Idempotency-Key": key} if key else {})}
    return Client().post("/api/cart/checkout", headers=headers)


def checkout(token: str, product_id: int, quantity: int):
    body = {"product_id": product_id, "quantity": quantity}
    return Client().post(
        "/api/checkout", data=json.dumps(body), content_type="application/json", headers={"X-Session-Token": token}
    )


def available(product_id: int) -> int:
    return Client().get(f"/api/inventory/{product_id}").json()["available"]


def written() -> dict:
    """snapshot() and the holds: compare before and after a refused request."""
    return {**snapshot(), "holds": sorted(StockHold.objects.values_list("session_id", "product_id", "units"))}


def expire_holds(token: str) -> None:
    session = session_get_by_token(token=token)
    StockHold.objects.filter(session=session).update(expires_at=timezone.now() - timedelta(seconds=1))


# --- The cart's lines --------------------------------------------------------------------------------------------


def test_adding_changing_and_removing_lines_holds_and_releases_units(needs_postgres, make_product, make_token):
    # given
    product = make_product(stock=5)
    token = make_token()

    # when: add 2, change to 3
    added = put(token, product.pk, {"quantity": 2})
    changed = put(token, product.pk, {"quantity": 3})

    # then: the cart shows the line and its hold; stock on hand is untouched, available is not
    assert added.status_code == changed.status_code == 200
    (line,) = changed.json()["items"]
    assert line["product_id"] == product.pk and line["quantity"] == 3
    assert 590 <= line["seconds_left"] <= 600
    assert Client().get("/api/cart", headers={"X-Session-Token": token}).json() == changed.json()
    assert stock_of(product) == 5 and available(product.pk) == 2
    batch = Client().get(f"/api/inventory?product_ids={product.pk}").json()
    assert batch[0]["quantity"] == 5 and batch[0]["available"] == 2

    # when: removed
    removed = Client().delete(f"/api/cart/items/{product.pk}", headers={"X-Session-Token": token})

    # then
    assert removed.status_code == 200 and removed.json() == {"items": []}
    assert available(product.pk) == 5 and not StockHold.objects.exists()


def test_held_units_are_not_sold_or_held_to_another_session(needs_postgres, make_product, make_token):
    # given: A holds both units
    product = make_product(stock=2)
    holder, other = make_token(), make_token()
    assert put(holder, product.pk, {"quantity": 2}).status_code == 200
    before = written()

    # when: another session checks out without a cart, and tries to hold one
    bought = checkout(other, product.pk, 1)
    held = put(other, product.pk, {"quantity": 1})

    # then: both 409 insufficient_stock, nothing written
    assert bought.status_code == held.status_code == 409
    assert bought.json()["code"] == held.json()["code"] == "insufficient_stock"
    assert bought.json()["product_ids"] == [product.pk]
    assert written() == before

    # when: the holder checks out its cart
    order = cart_checkout(holder)

    # then: the holds became the order: one decrement, the holds used up
    assert order.status_code == 201, order.json()
    assert order.json()["items"][0]["quantity"] == 2
    assert stock_of(product) == 0 and available(product.pk) == 0
    assert not StockHold.objects.exists()
    assert cart_checkout(holder).json()["code"] == "cart_empty"


def test_a_checkout_without_cart_uses_up_the_sessions_own_hold(needs_postgres, make_product, make_token):
    # given
    product = make_product(stock=3)
    token = make_token()
    put(token, product.pk, {"quantity": 2})

    # when: the session checks out through POST /api/checkout as before
    response = checkout(token, product.pk, 2)

    # then: its own hold does not count against it, and is gone with the order (not counted twice)
    assert response.status_code == 201
    assert stock_of(product) == 1 and available(product.pk) == 1
    assert not StockHold.objects.exists()


def test_cart_checkout_extends_the_holds_once(needs_postgres, make_product, make_token, settings):
    # given: a hold about to end
    product = make_product(stock=1)
    token = make_token()
    put(token, product.pk, {"quantity": 1})
    StockHold.objects.update(expires_at=timezone.now() + timedelta(seconds=5))
    settings.CART_HOLD_SECONDS = 600
    extended = []
    place = carts.checkout_place

    def observe(**kwargs):
        extended.append(StockHold.objects.get())
        return place(**kwargs)

    # when
    carts.checkout_place = observe
    try:
        response = cart_checkout(token)
    finally:
        carts.checkout_place = place

    # then: the hold ran 600 s again while the order was written, and was used up
    assert response.status_code == 201
    assert extended[0].extended and extended[0].expires_at > timezone.now() + timedelta(seconds=500)
    assert not StockHold.objects.exists()


# --- Expiry -----------------------------------------------------------------------------------------------------


def test_an_expired_hold_releases_without_a_sweep_and_cleanup_deletes_it(needs_postgres, make_product, make_token):
    # given: A's hold of the only unit has expired; no sweep ran
    product = make_product(stock=1)
    holder, other = make_token(), make_token()
    put(holder, product.pk, {"quantity": 1})
    expire_holds(holder)

    # then: read time releases it
    assert available(product.pk) == 1
    assert Client().get("/api/cart", headers={"X-Session-Token": holder}).json() == {"items": []}
    assert checkout(other, product.pk, 1).status_code == 201
    assert cart_checkout(holder).json()["code"] == "cart_empty"

    # when: the sweep
    call_command("cleanup_expired", stdout=open("/dev/null", "w"))

    # then
    assert not StockHold.objects.exists()


@pytest.mark.parametrize("taken", [True, False], ids=["units-taken-meanwhile", "units-still-there"])
def test_a_hold_expiring_mid_checkout(needs_postgres, make_product, make_token, taken):
    # given: A holds the only unit and starts its cart checkout; between reading its cart and writing the order its
    # hold expires and (or not) another session buys the unit on its own connection
    product = make_product(stock=1)
    holder, other = make_token(), make_token()
    put(holder, product.pk, {"quantity": 1})
    place = carts.checkout_place
    others = []

    def expire_then_place(**kwargs):
        expire_holds(holder)
        if taken:
            others.extend(run_together([lambda: _status(checkout(other, product.pk, 1))]))
        return place(**kwargs)

    # when
    carts.checkout_place = expire_then_place
    try:
        before = written()
        response = cart_checkout(holder)
    finally:
        carts.checkout_place = place

    # then: never oversold; A's order is written only if the unit was still there, else nothing of A's is
    if taken:
        assert others == [(201, {})]
        assert response.status_code == 409 and response.json()["code"] == "insufficient_stock"
        assert Order.objects.count() == before["orders"] + 1  # the other session's
    else:
        assert response.status_code == 201
    assert stock_of(product) == 0
    assert OrderLine.objects.aggregate(units=Sum("quantity"))["units"] == 1


def _status(response) -> tuple[int, dict]:
    try:
        return response.status_code, {}
    finally:
        connection.close()


# --- Bad input: 4xx, nothing written ---------------------------------------------------------------------------


def test_bad_cart_input_is_a_json_4xx_with_nothing_written(needs_postgres, make_product, make_token, settings):
    product = make_product(stock=3)
    sold_out = make_product(stock=0)
    limited = make_product(stock=10)
    limited.max_per_session = 2
    limited.save()
    on_sale = make_product(stock=10)
    on_sale.sale_starts_at = timezone.now() + timedelta(days=1)
    on_sale.save()
    token = make_token()
    assert checkout(token, limited.pk, 1).status_code == 201  # one bought already
    before = written()

    cases = [
        (put(token, 999_999, {"quantity": 1}), 404, "product_not_found"),
        (put(token, "abc", {"quantity": 1}), 400, "invalid_request"),
        (put(token, product.pk, {"quantity": settings.CHECKOUT_MAX_QUANTITY_PER_LINE + 1}), 400, "invalid_request"),
        (put(token, product.pk, {"quantity": -1}), 400, "invalid_request"),
        (put(token, product.pk, {"quantity": "2"}), 400, "invalid_request"),
        (put(token, product.pk, {}), 400, "invalid_request"),
        (put(token, product.pk, {"quantity": 4}), 409, "insufficient_stock"),
        (put(token, sold_out.pk, {"quantity": 1}), 409, "insufficient_stock"),
        (put(token, limited.pk, {"quantity": 2}), 409, "limit_exceeded"),  # 1 ordered + 2 held > 2
        (put(token, on_sale.pk, {"quantity": 1}), 409, "hold_not_allowed"),
        (put(None, product.pk, {"quantity": 1}), 401, "session_required"),
        (put("not-a-token", product.pk, {"quantity": 1}), 401, "session_invalid"),
        (cart_checkout(token), 409, "cart_empty"),
    ]

    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code), response.json()
        assert response.json()["detail"]
    assert written() == before


def test_a_session_cannot_touch_another_sessions_cart(needs_postgres, make_product, make_token):
    # given: A's cart; the cart is the token's, so B can only name its own
    product = make_product(stock=3)
    owner, other = make_token(), make_token()
    put(owner, product.pk, {"quantity": 2})
    before = written()

    # when
    removed = Client().delete(f"/api/cart/items/{product.pk}", headers={"X-Session-Token": other})
    seen = Client().get("/api/cart", headers={"X-Session-Token": other})

    # then
    assert removed.json() == seen.json() == {"items": []}
    assert written() == before


# --- Caps ------------------------------------------------------------------------------------------------------


def test_holds_are_capped_per_session(needs_postgres, make_product, make_token, settings):
    settings.CART_MAX_HOLDS_PER_SESSION = 2
    products = [make_product(stock=5) for _ in range(3)]
    token = make_token()
    assert put(token, products[0].pk, {"quantity": 1}).status_code == 200
    assert put(token, products[1].pk, {"quantity": 1}).status_code == 200
    before = written()

    third = put(token, products[2].pk, {"quantity": 1})
    change = put(token, products[1].pk, {"quantity": 3})  # changing a held line is no new hold

    assert third.status_code == 409 and third.json()["code"] == "hold_limit_exceeded"
    assert change.status_code == 200
    session_id = before["holds"][0][0]
    assert written()["holds"] == [(session_id, products[0].pk, 1), (session_id, products[1].pk, 3)]


def test_thirty_sessions_from_one_address_cannot_hold_a_shelf(needs_postgres, make_product, make_token, settings):
    # given: units per address capped at 5; 30 new sessions from one address race for a shelf of 100
    settings.CART_MAX_HELD_UNITS_PER_IP = 5
    product = make_product(stock=100)
    tokens = [make_token() for _ in range(30)]

    # when
    results = run_together([lambda t=t: _status(put(t, product.pk, {"quantity": 1}, ip="10.9.9.9")) for t in tokens])

    # then: exactly 5 held, the rest refused with the cap; another address still holds
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 5 + [409] * 25
    assert available(product.pk) == 95
    assert put(make_token(), product.pk, {"quantity": 1}, ip="10.1.1.1").status_code == 200


# --- Races -----------------------------------------------------------------------------------------------------


def test_holds_and_checkouts_racing_never_oversell_and_every_hold_is_honoured(needs_postgres, make_product, make_token):
    # given: 10 units; 15 sessions hold one each while 15 others check out one each without a cart, all at once
    product = make_product(stock=10)
    holders = [make_token() for _ in range(15)]
    buyers = [make_token() for _ in range(15)]
    calls = [lambda t=t: _status(put(t, product.pk, {"quantity": 1})) for t in holders]
    calls += [lambda t=t: _status(checkout(t, product.pk, 1)) for t in buyers]

    # when
    results = run_together(calls)

    # then: holds and sales together never pass the stock
    held = sum(status == 200 for status, _ in results[:15])
    sold = sum(status == 201 for status, _ in results[15:])
    assert held + sold == 10
    assert stock_of(product) == 10 - sold
    assert available(product.pk) == 0

    # when: every holder checks out its cart, all at once
    outcomes = run_together([lambda t=t: _status(cart_checkout(t)) for t in holders])

    # then: each successful hold is sold to its holder, each refused one finds an empty cart; nothing oversold
    assert sorted(status for status, _ in outcomes) == sorted([201] * held + [409] * (15 - held))
    assert stock_of(product) == 0
    assert OrderLine.objects.aggregate(units=Sum("quantity"))["units"] == 10
    assert not StockHold.objects.exists()


# --- Schema ----------------------------------------------------------------------------------------------------


def test_the_holds_table_refuses_a_hold_of_no_units(needs_postgres, make_product, make_token):
    product = make_product(stock=1)
    session = session_get_by_token(token=make_token())
    with pytest.raises(IntegrityError), transaction.atomic():
        StockHold.objects.create(
            session=session, product=product, units=0, expires_at=timezone.now(), client_ip="10.0.0.1"
        )
    assert not StockHold.objects.exists()


def test_the_migration_creates_and_drops_the_holds_table(needs_postgres):
    table = StockHold._meta.db_table

    def tables() -> list[str]:
        return connection.introspection.table_names()

    executor = MigrationExecutor(connection)
    executor.migrate([("catalog", "0004_flash_sale_and_limit")])
    try:
        assert table not in tables()
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert table in tables()
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    assert "stock_hold_units_positive" in constraints
    assert constraints["stock_hold_one_per_session_product"]["unique"]
