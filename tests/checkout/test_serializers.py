"""The checkout reads its body and writes its answer without serializer instances; the serializers stay the schema
and the reference: these tests hold both to the same output."""

import pytest
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer

from checkout import serializers
from checkout.selectors import order_get_for_session
from checkout.serializers import CheckoutInputSerializer, OrderOutputSerializer, checkout_input, order_output
from checkout.services import LineRequest, order_place, session_create

pytestmark = pytest.mark.django_db

LINE = {"product_id": 7, "quantity": 2}

# What clients send: read without the serializer.
PLAIN_BODIES = {
    "single": LINE,
    "single-with-extra-field": {**LINE, "price": 1},
    "single-with-body-token": {**LINE, "session_token": "tok-EN_123"},
    "items": {"items": [{"product_id": 9, "quantity": 1}, LINE, {"product_id": 9, "quantity": 3}]},
    "fifty-items": {"items": [LINE] * 50},
    "beyond-bigint": {"product_id": 10**20, "quantity": 1},
}
# Accepted or refused by the serializer alone.
OTHER_BODIES = {
    "text-numbers": {"product_id": "7", "quantity": "2"},
    "float-quantity": {"product_id": 7, "quantity": 2.0},
    "padded-token": {**LINE, "session_token": " tok "},
    "number-token": {**LINE, "session_token": 12345},
    "non-ascii-token": {**LINE, "session_token": "caf\u00e9"},
    "empty": {},
    "no-product": {"quantity": 1},
    "no-quantity": {"product_id": 7},
    "true-product": {"product_id": True, "quantity": 1},
    "zero-product": {"product_id": 0, "quantity": 1},
    "negative-quantity": {"product_id": 7, "quantity": -1},
    "null-product": {"product_id": None, "quantity": 1},
    "empty-items": {"items": []},
    "item-without-quantity": {"items": [{"product_id": 7}]},
    "item-not-an-object": {"items": [7]},
    "items-not-a-list": {"items": "all"},
    "items-null": {"items": None},
    "51-items": {"items": [LINE] * 51},
    "both-shapes": {**LINE, "items": [LINE]},
    "blank-token": {**LINE, "session_token": ""},
    "null-token": {**LINE, "session_token": None},
    "long-token": {**LINE, "session_token": "x" * 129},
    "nul-in-token": {**LINE, "session_token": "a\x00b"},
    "surrogate-token": {**LINE, "session_token": "\ud800"},
    "list-body": [LINE],
    "text-body": "text",
}


def outcome(read, data):
    try:
        return read(data)
    except ValidationError as exc:
        return exc.detail


def by_serializer(data):
    serializer = CheckoutInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.lines(), serializer.validated_data.get("session_token")


@pytest.mark.parametrize("body", [*PLAIN_BODIES.values(), *OTHER_BODIES.values()], ids=[*PLAIN_BODIES, *OTHER_BODIES])
def test_checkout_input_equals_the_serializer(body):
    assert outcome(checkout_input, body) == outcome(by_serializer, body)


def test_checkout_input_reads_plain_bodies_without_the_serializer(monkeypatch):
    class Refuse:
        def __init__(self, **kwargs):
            raise AssertionError("the serializer was built")

    monkeypatch.setattr(serializers, "CheckoutInputSerializer", Refuse)

    lines, token = checkout_input(PLAIN_BODIES["single-with-body-token"])

    assert (lines, token) == ([LineRequest(product_id=7, quantity=2)], "tok-EN_123")
    for body in PLAIN_BODIES.values():
        checkout_input(body)


@pytest.fixture
def placed_and_stored(make_product):
    session, _ = session_create()
    prices = ["0.10", "1234.50", "7.00"]
    products = [make_product(price=price, stock=50) for price in prices]
    lines = [LineRequest(product_id=p.pk, quantity=quantity) for p, quantity in zip(products, (3, 1, 10), strict=True)]
    placed = order_place(session=session, lines=lines, idempotency_key="k")
    stored = order_get_for_session(order_id=placed.pk, session=session)
    return placed, stored


def test_order_output_equals_the_serializer_for_a_placed_and_a_stored_order(placed_and_stored):
    for order in placed_and_stored:
        direct, reference = order_output(order), OrderOutputSerializer(order).data

        assert direct == reference
        assert list(direct) == list(reference)
        assert JSONRenderer().render(direct) == JSONRenderer().render(reference)
    assert order_output(placed_and_stored[0]) == order_output(placed_and_stored[1])
    assert order_output(placed_and_stored[0])["total"] == "1304.80"
