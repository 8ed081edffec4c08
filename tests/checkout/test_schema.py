"""/api/schema/ states the checkout's input rules as the server enforces them (tests/shop/test_schemathesis.py
holds the server to it)."""

import json

import pytest
from jsonschema import Draft7Validator


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def checkout_body_validator(schema: dict) -> Draft7Validator:
    """The request body schema of POST /api/checkout, its component references resolved."""
    body = schema["paths"]["/api/checkout"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return Draft7Validator({**body, "components": schema["components"]})


LINE = {"product_id": 7, "quantity": 2}


@pytest.mark.parametrize(
    "body",
    [
        LINE,
        {**LINE, "session_token": "tok-EN_123"},
        {"items": [LINE]},
        {"items": [LINE] * 50},
        {**LINE, "price": "0.01"},  # unknown fields are ignored
    ],
)
def test_schema_accepts_what_the_server_accepts(schema, body):
    assert list(checkout_body_validator(schema).iter_errors(body)) == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"product_id": 7},
        {"quantity": 2},
        {"product_id": 7, "quantity": "2"},
        {"product_id": 7, "quantity": 0},
        {"product_id": 7, "quantity": 11},
        {"product_id": 0, "quantity": 1},
        {"items": []},
        {"items": [LINE] * 51},
        {"items": [{"product_id": 7, "quantity": 11}]},
        {**LINE, "items": [LINE]},
        {"product_id": 7, "items": [LINE]},
        {"quantity": 2, "items": [LINE]},
        {**LINE, "session_token": ""},
        {**LINE, "session_token": "two words"},
        {**LINE, "session_token": "x" * 129},
        {**LINE, "session_token": 12345},
    ],
)
def test_schema_refuses_what_the_server_refuses(schema, body):
    assert list(checkout_body_validator(schema).iter_errors(body)) != []


def test_the_checkout_body_is_required(schema):
    assert schema["paths"]["/api/checkout"]["post"]["requestBody"]["required"] is True


def test_the_quantity_maximum_is_the_setting(client, settings):
    settings.CHECKOUT_MAX_QUANTITY_PER_LINE = 4

    schema = json.loads(client.get("/api/schema/", {"format": "json"}).content)

    for component in ("CheckoutInput", "LineInput"):
        assert schema["components"]["schemas"][component]["properties"]["quantity"]["maximum"] == 4


def header(schema: dict, path: str, method: str, name: str) -> dict:
    (parameter,) = [p for p in schema["paths"][path][method]["parameters"] if p["name"] == name]
    return parameter


@pytest.mark.parametrize(
    ("name", "valid", "invalid"),
    [
        ("Idempotency-Key", ["k", "a b", "x" * 255, "~!"], ["", " k", "k ", "x" * 256, "caf\u00e9", "tab\there"]),
        ("X-Session-Token", ["tok-EN_123", "x" * 128], ["", "two words", "x" * 129, "caf\u00e9"]),
    ],
)
def test_header_formats_are_stated(schema, name, valid, invalid):
    validator = Draft7Validator(header(schema, "/api/checkout", "post", name)["schema"])

    assert [value for value in valid if not validator.is_valid(value)] == []
    assert [value for value in invalid if validator.is_valid(value)] == []


def test_order_lookup_states_its_required_header_and_id_range(schema):
    assert header(schema, "/api/orders/{order_id}", "get", "X-Session-Token")["required"] is True
    order_id = header(schema, "/api/orders/{order_id}", "get", "order_id")["schema"]
    assert (order_id["minimum"], order_id["maximum"]) == (1, 2**63 - 1)
