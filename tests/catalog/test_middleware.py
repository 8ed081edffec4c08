"""Product GETs are answered by catalog.middleware ahead of the session/auth/messages stack; the rest reaches DRF."""

from unittest import mock

import pytest
from django.db import OperationalError

from catalog.apis import ProductDetailApi, ProductListApi

pytestmark = pytest.mark.django_db


def test_product_gets_are_answered_before_the_views(client, make_products):
    product = make_products(1)[0]

    with (
        mock.patch.object(ProductListApi, "get") as list_view,
        mock.patch.object(ProductDetailApi, "get") as detail_view,
        mock.patch("django.contrib.sessions.middleware.SessionMiddleware.process_request") as sessions,
    ):
        listing = client.get("/api/products")
        detail = client.get(f"/api/products/{product.pk}")

    assert listing.status_code == detail.status_code == 200
    assert listing["X-Content-Type-Options"] == "nosniff"
    list_view.assert_not_called()
    detail_view.assert_not_called()
    sessions.assert_not_called()


def test_head_and_errors_reach_the_drf_views(client, make_products):
    make_products(1)

    head = client.head("/api/products")
    bad = client.get("/api/products", {"page": "0"})

    assert head.status_code == 200
    assert head["X-Cache-Status"] in {"HIT", "MISS", "BYPASS"}
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_parameter"


def test_product_gets_still_check_the_host(client, make_products):
    make_products(1)

    response = client.get("/api/products", HTTP_HOST="evil.example")

    assert response.status_code == 400


def test_a_database_timeout_on_a_miss_answers_503(client, make_products):
    make_products(1)

    with mock.patch("catalog.apis.product_list", side_effect=OperationalError("canceling statement")):
        response = client.get("/api/products")

    assert response.status_code == 503
    assert response["Retry-After"]
    assert response.json()["code"] == "database_unavailable"


def test_other_paths_pass_through(client):
    response = client.get("/api/productsX")

    assert response.status_code == 404
