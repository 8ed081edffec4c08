import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from catalog.models import Inventory
from checkout.models import IdempotencyRecord, Order, OrderLine, ShopperSession
from checkout.selectors import token_hash
from tests.checkout.conftest import snapshot, stock_of

pytestmark = pytest.mark.django_db


def checkout(client, body, *, token=None, key=None, raw=None):
    headers = {}
    if token is not None:
        headers["X-Session-Token"] = token
    if key is not None:
        headers["Idempotency-Key"] = key
    payload = raw if raw is not None else json.dumps(body)
    return client.post("/api/checkout", data=payload, content_type="application/json", headers=headers)


# --- Sessions -------------------------------------------------------------------------------------------


def test_session_create_returns_a_token_stored_only_hashed(client):
    response = client.post("/api/sessions")

    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"session_token", "expires_at"}
    assert len(body["session_token"]) >= 43  # 32 random bytes, base64url
    session = ShopperSession.objects.get()
    assert session.token_hash == token_hash(body["session_token"])
    assert body["session_token"] not in session.token_hash
    assert timedelta(hours=23, minutes=59) < session.expires_at - timezone.now() <= timedelta(hours=24)


# --- Checkout: success ----------------------------------------------------------------------------------


def test_checkout_single_line_sells_at_the_database_price(client, make_product, make_token):
    product = make_product(price="249.50", stock=5)
    before = Inventory.objects.get(product=product).updated_at

    response = checkout(client, {"session_token": make_token(), "product_id": product.pk, "quantity": 2, "price": 1})

    assert response.status_code == 201, response.json()
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["status"] == "confirmed"
    assert body["items"] == [{"product_id": product.pk, "quantity": 2, "unit_price": "249.50"}]
    assert body["total"] == "499.00"
    assert body["currency"] == "USD"
    order = Order.objects.get(pk=body["order_id"])
    assert order.total == Decimal("499.00")
    assert list(order.lines.values_list("product_id", "quantity", "unit_price")) == [(product.pk, 2, Decimal("249.50"))]
    inventory = Inventory.objects.get(product=product)
    assert inventory.quantity == 3
    assert inventory.updated_at > before


def test_checkout_items_merges_repeats_and_takes_the_header_token(client, make_product, make_token):
    tv, cable = make_product(price="100.00", stock=5), make_product(price="2.50", stock=50)

    response = checkout(
        client,
        {
            "items": [
                {"product_id": cable.pk, "quantity": 4},
                {"product_id": tv.pk, "quantity": 1},
                {"product_id": cable.pk, "quantity": 3},
            ]
        },
        token=make_token(),
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["items"] == [
        {"product_id": tv.pk, "quantity": 1, "unit_price": "100.00"},
        {"product_id": cable.pk, "quantity": 7, "unit_price": "2.50"},
    ]
    assert body["total"] == "117.50"
    assert (stock_of(tv), stock_of(cable)) == (4, 43)


def test_checkout_response_equals_the_order_read_back(client, make_product, make_token):
    product, token = make_product(), make_token()
    placed = checkout(client, {"product_id": product.pk, "quantity": 1}, token=token).json()

    response = client.get(f"/api/orders/{placed['order_id']}", headers={"X-Session-Token": token})

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response.json() == placed


def test_inventory_reads_reflect_a_sale_at_once(client, make_product, make_token):
    product = make_product(stock=7)
    assert client.get(f"/api/inventory/{product.pk}").json()["quantity"] == 7

    checkout(client, {"product_id": product.pk, "quantity": 3}, token=make_token())

    assert client.get(f"/api/inventory/{product.pk}").json()["quantity"] == 4


# --- Checkout: every refusal writes nothing ------------------------------------------------------------


def _line(pid, quantity=1):
    return {"product_id": pid, "quantity": quantity}


@pytest.mark.parametrize(
    ("make_body", "code"),
    [
        (lambda pid: {"quantity": 1}, "invalid"),
        (lambda pid: {"product_id": pid}, "invalid"),
        (lambda pid: {"product_id": "tv", "quantity": 1}, "invalid"),
        (lambda pid: _line(pid, 0), "invalid"),
        (lambda pid: _line(pid, -3), "invalid"),
        (lambda pid: _line(pid, "two"), "invalid"),
        (lambda pid: _line(pid, 11), "invalid_request"),
        (lambda pid: {"items": []}, "invalid"),
        (lambda pid: {"items": [{"product_id": pid}]}, "invalid"),
        (lambda pid: {"items": "all"}, "invalid"),
        (lambda pid: {"items": [_line(pid)] * 51}, "invalid"),
        (lambda pid: {"items": [_line(pid, 6), _line(pid, 5)]}, "invalid_request"),
        (lambda pid: {**_line(pid), "items": [_line(pid)]}, "invalid"),
    ],
    ids=[
        "no-product",
        "no-quantity",
        "text-product",
        "zero",
        "negative",
        "text-quantity",
        "over-cap",
        "empty-items",
        "item-without-quantity",
        "items-not-a-list",
        "51-lines",
        "merged-over-cap",
        "both-shapes",
    ],
)
def test_checkout_refuses_an_invalid_body_with_400(client, make_product, make_token, make_body, code):
    product = make_product()
    before = snapshot()

    response = checkout(client, make_body(product.pk), token=make_token(), key="k")

    assert response.status_code == 400, response.json()
    assert response["Cache-Control"] == "no-store"
    assert response.json()["code"] == code
    assert response.json()["detail"]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("make_body", "field"),
    [
        (lambda pid: {"product_id": pid, "quantity": "2"}, "quantity"),
        (lambda pid: {"product_id": str(pid), "quantity": 1}, "product_id"),
        (lambda pid: {"product_id": pid, "quantity": 2.0}, "quantity"),
        (lambda pid: {"product_id": pid, "quantity": True}, "quantity"),
        (lambda pid: {"product_id": pid, "quantity": [2]}, "quantity"),
        (lambda pid: {"items": [{"product_id": pid, "quantity": "1"}]}, "items"),
        (lambda pid: {"items": [{"product_id": float(pid), "quantity": 1}]}, "items"),
        (lambda pid: {"product_id": pid, "quantity": 1, "session_token": 12345}, "session_token"),
        (lambda pid: {"product_id": pid, "quantity": 1, "session_token": " padded "}, "session_token"),
        (lambda pid: {"product_id": pid, "quantity": 1, "session_token": "two words"}, "session_token"),
    ],
    ids=[
        "text-quantity",
        "text-product",
        "float-quantity",
        "true-quantity",
        "list-quantity",
        "text-item-quantity",
        "float-item-product",
        "number-token",
        "padded-token",
        "blank-in-token",
    ],
)
def test_checkout_takes_json_types_as_documented(client, make_product, make_token, make_body, field):
    # given: a body that would be a valid order if its values were converted
    product = make_product(stock=10)
    before = snapshot()

    response = checkout(client, make_body(product.pk), token=make_token(), key="k")

    # then: refused with the field named, nothing written (no order, no stock change, no claimed key)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["detail"] == "Invalid request."
    assert field in body["errors"]
    assert snapshot() == before
    assert stock_of(product) == 10


def test_an_empty_session_header_is_not_replaced_by_the_body_token(client, make_product, make_token):
    product = make_product()
    before = snapshot()

    response = checkout(client, {"product_id": product.pk, "quantity": 1, "session_token": make_token()}, token="")

    assert response.status_code == 401
    assert response.json()["code"] == "session_required"
    assert snapshot() == before


def test_checkout_refuses_a_string_product_id_with_400(client, make_token):
    before = snapshot()

    response = checkout(client, {"product_id": "tv", "quantity": 1}, token=make_token())

    assert response.status_code == 400
    assert "product_id" in response.json()["errors"]
    assert snapshot() == before


@pytest.mark.parametrize("raw", ['{"product_id": 1, "quantity": ', "[1, 2]", '"text"', "null"])
def test_checkout_refuses_malformed_json_with_400(client, make_token, raw):
    before = snapshot()

    response = checkout(client, None, raw=raw, token=make_token())

    assert response.status_code == 400
    assert set(response.json()) >= {"code", "detail"}
    assert snapshot() == before


# A key with a blank at either end is refused too.
@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", " leading", "trailing ", " "])
def test_checkout_refuses_a_bad_idempotency_key_with_400(client, make_product, make_token, key):
    product = make_product()
    before = snapshot()

    response = checkout(client, {"product_id": product.pk, "quantity": 1}, token=make_token(), key=key)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert snapshot() == before


def test_checkout_without_a_token_is_401(client, make_product):
    product = make_product()
    before = snapshot()

    response = checkout(client, {"product_id": product.pk, "quantity": 1})

    assert response.status_code == 401
    assert response.json()["code"] == "session_required"
    assert snapshot() == before


@pytest.mark.parametrize("key", [None, "k"], ids=["no-key", "with-key"])
def test_checkout_with_an_unknown_or_expired_token_is_401(client, make_product, make_token, key):
    product = make_product()
    expired = make_token()
    ShopperSession.objects.filter(token_hash=token_hash(expired)).update(expires_at=timezone.now())
    before = snapshot()

    for token in ("not-a-token", expired):
        response = checkout(client, {"product_id": product.pk, "quantity": 1}, token=token, key=key)

        assert response.status_code == 401
        assert response["Cache-Control"] == "no-store"
        assert response.json()["code"] == "session_invalid"
    assert snapshot() == before


@pytest.mark.parametrize("key", [None, "k"], ids=["no-key", "with-key"])
def test_an_unknown_token_is_401_even_when_a_product_is_unknown_too(client, make_product, key):
    # session, prices [and the key's claim] go in one round trip; the session's answer still comes first
    before = snapshot()

    response = checkout(client, {"product_id": 999999, "quantity": 1}, token="not-a-token", key=key)

    assert response.status_code == 401
    assert response.json()["code"] == "session_invalid"
    assert snapshot() == before


def test_checkout_of_an_unknown_product_is_404_naming_it(client, make_product, make_token):
    product = make_product()
    before = snapshot()

    response = checkout(
        client,
        {"items": [{"product_id": product.pk, "quantity": 1}, {"product_id": 999999, "quantity": 1}]},
        token=make_token(),
        key="k-404",
    )

    assert response.status_code == 404
    assert response.json()["code"] == "product_not_found"
    assert response.json()["product_ids"] == [999999]
    assert "999999" in response.json()["detail"]
    assert snapshot() == before


def test_checkout_short_of_stock_is_409_and_writes_nothing(client, make_product, make_token):
    plenty, short, also_short = make_product(stock=10), make_product(stock=1), make_product(stock=0)
    before = snapshot()

    response = checkout(
        client,
        {
            "items": [
                {"product_id": plenty.pk, "quantity": 3},
                {"product_id": short.pk, "quantity": 2},
                {"product_id": also_short.pk, "quantity": 1},
            ]
        },
        token=make_token(),
    )

    assert response.status_code == 409
    assert response.json()["code"] == "insufficient_stock"
    assert response.json()["product_ids"] == [short.pk, also_short.pk]
    assert snapshot() == before


@pytest.mark.parametrize("key", [None, "k"], ids=["no-key", "with-key"])
def test_checkout_of_mixed_currencies_is_400(client, make_product, make_token, key):
    dollars, euros = make_product(currency="USD"), make_product(currency="EUR")
    before = snapshot()

    response = checkout(
        client,
        {"items": [{"product_id": dollars.pk, "quantity": 1}, {"product_id": euros.pk, "quantity": 1}]},
        token=make_token(),
        key=key,
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert snapshot() == before  # with a key: not claimed either


# --- Idempotency ----------------------------------------------------------------------------------------


def test_idempotent_repeat_returns_the_same_order_without_touching_stock(client, make_product, make_token):
    product, token = make_product(stock=5), make_token()
    body = {"product_id": product.pk, "quantity": 2}
    first = checkout(client, body, token=token, key="order-1")
    after_first = snapshot()

    # the same lines spelled differently are the same request
    again = checkout(client, {"items": [{"product_id": product.pk, "quantity": 2}]}, token=token, key="order-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert snapshot() == after_first
    assert stock_of(product) == 3
    assert Order.objects.get().idempotency_key == "order-1"


def test_idempotency_key_is_scoped_to_the_session(client, make_product, make_token):
    product = make_product(stock=5)

    first = checkout(client, {"product_id": product.pk, "quantity": 1}, token=make_token(), key="same")
    second = checkout(client, {"product_id": product.pk, "quantity": 1}, token=make_token(), key="same")

    assert first.status_code == second.status_code == 201
    assert first.json()["order_id"] != second.json()["order_id"]
    assert stock_of(product) == 3


def test_idempotency_key_reused_with_another_body_is_422(client, make_product, make_token):
    product, token = make_product(stock=5), make_token()
    checkout(client, {"product_id": product.pk, "quantity": 1}, token=token, key="k")
    before = snapshot()

    response = checkout(client, {"product_id": product.pk, "quantity": 2}, token=token, key="k")

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert snapshot() == before


def test_idempotent_out_of_stock_answer_is_replayed(client, make_product, make_token):
    product, token = make_product(stock=1), make_token()
    body = {"product_id": product.pk, "quantity": 2}
    first = checkout(client, body, token=token, key="k")
    Inventory.objects.filter(product=product).update(quantity=10)
    before = snapshot()

    again = checkout(client, body, token=token, key="k")

    assert first.status_code == again.status_code == 409
    assert (
        again.json()
        == first.json()
        == {
            "code": "insufficient_stock",
            "detail": f"Not enough stock for product(s) {product.pk}.",
            "product_ids": [product.pk],
        }
    )
    assert snapshot() == before
    # a new key is a new attempt
    assert checkout(client, body, token=token, key="k2").status_code == 201


def test_idempotency_key_in_progress_is_409(client, make_product, make_token):
    product, token = make_product(stock=5), make_token()
    session = ShopperSession.objects.get(token_hash=token_hash(token))
    now = timezone.now()
    from checkout.idempotency import request_hash
    from checkout.services import LineRequest

    IdempotencyRecord.objects.create(
        session=session,
        key="k",
        request_hash=request_hash([LineRequest(product_id=product.pk, quantity=1)]),
        started_at=now,
        expires_at=now + timedelta(hours=24),
    )
    before = snapshot()

    response = checkout(client, {"product_id": product.pk, "quantity": 1}, token=token, key="k")

    assert response.status_code == 409
    assert response.json()["code"] == "request_in_progress"
    assert snapshot() == before


def test_idempotency_claim_abandoned_past_its_lease_is_taken_over(client, make_product, make_token):
    product, token = make_product(stock=5), make_token()
    session = ShopperSession.objects.get(token_hash=token_hash(token))
    long_ago = timezone.now() - timedelta(minutes=5)
    from checkout.idempotency import request_hash
    from checkout.services import LineRequest

    IdempotencyRecord.objects.create(
        session=session,
        key="k",
        request_hash=request_hash([LineRequest(product_id=product.pk, quantity=1)]),
        started_at=long_ago,
        expires_at=long_ago + timedelta(hours=24),
    )

    response = checkout(client, {"product_id": product.pk, "quantity": 1}, token=token, key="k")

    assert response.status_code == 201
    record = IdempotencyRecord.objects.get()
    assert (record.order_id, record.response_status) == (response.json()["order_id"], 201)
    assert stock_of(product) == 4


def test_idempotency_key_taken_over_before_the_order_commits_sells_nothing(
    client, make_product, make_token, monkeypatch
):
    # given: another request takes the key over (this one's lease looked abandoned) while this one runs
    from checkout import services

    product, token = make_product(stock=5), make_token()

    def claim_then_lose_it(claim):
        def claimed(**kwargs):
            result = claim(**kwargs)
            record = result[-1] if isinstance(result, tuple) else result  # with_reads: (session, prices, record)
            IdempotencyRecord.objects.filter(pk=record.pk).update(started_at=record.started_at + timedelta(seconds=1))
            return result

        return claimed

    # the claim alone (SQLite) or with the reads (PostgreSQL)
    for name in ("idempotency_claim", "idempotency_claim_with_reads"):
        monkeypatch.setattr(services, name, claim_then_lose_it(getattr(services, name)))

    # when
    response = checkout(client, {"product_id": product.pk, "quantity": 1}, token=token, key="k")

    # then: no sale, and the new owner's claim stays as it was
    assert response.status_code == 409
    assert response.json()["code"] == "request_in_progress"
    assert stock_of(product) == 5
    assert (Order.objects.count(), OrderLine.objects.count()) == (0, 0)
    record = IdempotencyRecord.objects.get()
    assert (record.order_id, record.response_status) == (None, None)


# --- Orders ---------------------------------------------------------------------------------------------


def test_order_detail_is_404_for_another_session_and_401_without_one(client, make_product, make_token):
    product, owner = make_product(), make_token()
    order_id = checkout(client, {"product_id": product.pk, "quantity": 1}, token=owner).json()["order_id"]

    other = client.get(f"/api/orders/{order_id}", headers={"X-Session-Token": make_token()})
    missing = client.get("/api/orders/987654", headers={"X-Session-Token": owner})
    not_a_number = client.get("/api/orders/abc", headers={"X-Session-Token": owner})
    anonymous = client.get(f"/api/orders/{order_id}")

    assert other.status_code == missing.status_code == not_a_number.status_code == 404
    assert not_a_number.json()["code"] == "order_not_found"
    assert other.json() == {"code": "order_not_found", "detail": f"No order {order_id} for this session."}
    assert anonymous.status_code == 401
    assert other["Cache-Control"] == anonymous["Cache-Control"] == "no-store"


# --- Schema ---------------------------------------------------------------------------------------------


def test_schema_describes_every_checkout_response(client):
    response = client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths["/api/checkout"]["post"]["responses"]) == {"201", "400", "401", "404", "409", "422", "429"}
    assert set(paths["/api/sessions"]["post"]["responses"]) == {"201", "429"}
    assert set(paths["/api/orders/{order_id}"]["get"]["responses"]) == {"200", "401", "404", "414"}
    parameters = {p["name"] for p in paths["/api/checkout"]["post"]["parameters"]}
    assert parameters == {"X-Session-Token", "Idempotency-Key"}
