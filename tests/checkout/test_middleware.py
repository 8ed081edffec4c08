"""POST /api/checkout answered by checkout.middleware ahead of the stack, and by the DRF view for the bodies DRF
must judge: one answer either way, on the real PostgreSQL (and Redis for the flash-sale gate)."""

import json
from unittest import mock

import pytest

from checkout.apis import CheckoutApi
from tests.checkout.conftest import snapshot

pytestmark = pytest.mark.django_db

# DRF decodes a body by its charset; the middleware reads only UTF-8 JSON, so this one goes to the view.
VIEW_TYPE = "application/json; charset=latin-1"


def post(client, body, *, content_type="application/json", **headers):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/api/checkout", data=data, content_type=content_type, headers=headers)


def view_not_called():
    return mock.patch.object(CheckoutApi, "post", side_effect=AssertionError("the view ran"))


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_a_json_checkout_is_answered_before_the_view(client, make_product, make_token, accept):
    product = make_product(stock=3)
    headers = {"X-Session-Token": make_token()} | ({} if accept is None else {"Accept": accept})

    with view_not_called():
        response = post(client, {"product_id": product.pk, "quantity": 1}, **headers)

    assert response.status_code == 201
    assert response.json()["items"] == [{"product_id": product.pk, "quantity": 1, "unit_price": "19.99"}]
    assert response["Cache-Control"] == "no-store"
    assert response["Allow"] == "POST, OPTIONS"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("name", "body", "headers"),
    [
        ("string quantity", {"product_id": 1, "quantity": "2"}, {"X-Session-Token": "t"}),
        ("no session", {"product_id": 1, "quantity": 1}, {}),
        ("unknown session", {"product_id": 1, "quantity": 1}, {"X-Session-Token": "nobody"}),
        ("bad idempotency key", {"product_id": 1, "quantity": 1}, {"X-Session-Token": "t", "Idempotency-Key": " x"}),
        ("two shapes", {"product_id": 1, "quantity": 1, "items": []}, {"X-Session-Token": "t"}),
        ("not an object", [1, 2], {"X-Session-Token": "t"}),
        ("over the per-line cap", {"product_id": 1, "quantity": 10_000}, {"X-Session-Token": "t"}),
    ],
)
def test_a_refusal_is_the_same_bytes_and_headers_from_either_path(client, name, body, headers):
    before = snapshot()

    with view_not_called():
        early = post(client, body, **headers)
    late = post(client, body, content_type=VIEW_TYPE, **headers)

    assert early.status_code == late.status_code >= 400, name
    assert early.content == late.content, name
    for header in ("Content-Type", "Cache-Control", "Allow"):
        assert early[header] == late[header], (name, header)
    assert snapshot() == before


def test_an_unknown_product_is_the_same_404_from_either_path(client, make_token):
    token = make_token()
    body = {"items": [{"product_id": 987654, "quantity": 1}]}

    with view_not_called():
        early = post(client, body, **{"X-Session-Token": token})
    late = post(client, body, content_type=VIEW_TYPE, **{"X-Session-Token": token})

    assert early.status_code == late.status_code == 404
    assert early.content == late.content
    assert early.json()["product_ids"] == [987654]


@pytest.mark.parametrize(
    ("name", "content_type", "raw", "status", "code"),
    [
        ("malformed JSON", "application/json", "{", 400, "parse_error"),
        ("NaN", "application/json", '{"product_id": NaN, "quantity": 1}', 400, "parse_error"),
        ("no body", "application/json", "", 400, "invalid"),
        ("form body", "application/x-www-form-urlencoded", "product_id=1&quantity=1", 415, "unsupported_media_type"),
        ("not UTF-8", "application/json", b'{"product_id": 1, "quantity": 1, "x": "\xff"}', 400, "parse_error"),
    ],
)
def test_a_body_drf_must_judge_goes_on_to_the_view(client, name, content_type, raw, status, code):
    before = snapshot()

    with mock.patch.object(CheckoutApi, "post", autospec=True, side_effect=CheckoutApi.post) as view:
        response = post(client, raw, content_type=content_type, **{"X-Session-Token": "t"})

    assert view.called, name
    assert response.status_code == status, name
    assert response.json()["code"] == code, name
    assert snapshot() == before


def test_a_sold_out_refusal_from_the_gate_is_answered_early_without_postgresql(
    client, make_product, make_token, on_sale, django_assert_num_queries
):
    product = on_sale(make_product(stock=1))
    token = make_token()
    sold = post(client, {"product_id": product.pk, "quantity": 1}, **{"X-Session-Token": make_token()})
    assert sold.status_code == 201

    with view_not_called(), django_assert_num_queries(0):
        response = post(client, {"product_id": product.pk, "quantity": 1}, **{"X-Session-Token": token})

    assert response.status_code == 409
    assert (response.json()["code"], response.json()["reason"]) == ("insufficient_stock", "sold_out")


def test_a_host_this_shop_does_not_serve_is_a_json_400(client, make_token):
    with view_not_called():
        response = client.post(
            "/api/checkout",
            data=json.dumps({"product_id": 1, "quantity": 1}),
            content_type="application/json",
            headers={"X-Session-Token": make_token(), "Host": "evil.example"},
        )

    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


@pytest.mark.parametrize(
    ("name", "headers", "path", "status"),
    [
        ("an Accept only DRF can judge", {"Accept": "text/html"}, "/api/checkout", 406),
        ("a list of media types", {"Accept": "text/html, application/json;q=0.9"}, "/api/checkout", 409),
        ("a query string", {}, "/api/checkout?format=json", 409),
    ],
)
def test_content_negotiation_is_left_to_the_view(client, make_product, make_token, name, headers, path, status):
    product = make_product(stock=0)

    with mock.patch.object(CheckoutApi, "post", autospec=True, side_effect=CheckoutApi.post) as view:
        response = client.post(
            path,
            data=json.dumps({"product_id": product.pk, "quantity": 1}),
            content_type="application/json",
            headers={"X-Session-Token": make_token(), **headers},
        )

    assert response.status_code == status, name
    if status != 406:  # DRF refuses that one before the handler runs
        assert view.called, name
        assert response.json()["code"] == "insufficient_stock", name
