"""The catalogue API's shapes, filters, pagination and errors (on whichever database the run has)."""

from datetime import datetime

import pytest
from django.db import connection
from rest_framework import serializers

from catalog.models import Inventory, Product
from catalog.selectors import product_categories, product_list
from catalog.serializers import InventorySerializer, ProductDetailSerializer, ProductSerializer

pytestmark = pytest.mark.django_db


def test_product_list_returns_products_in_id_order_with_the_contract_fields(client, make_products):
    products = make_products(5)

    response = client.get("/api/products")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert [item["id"] for item in body] == [product.pk for product in products]
    assert set(body[0]) == {"id", "sku", "name", "category", "price", "currency", "created_at"}
    assert set(body[0]) == set(ProductSerializer().fields)
    first = products[0]
    assert body[0]["sku"] == first.sku
    assert body[0]["price"] == str(first.price) == "11.00"
    assert body[0]["created_at"].endswith("Z")
    assert response["X-Total-Count"] == "5"


def test_product_list_filters_by_category_and_name(client, make_products):
    make_products(3, category="Books", name="Paperback")
    lamps = make_products(2, category="Home", name="Desk Lamp")
    make_products(1, category="Home", name="Rug")

    by_category = client.get("/api/products", {"category": "Home"}).json()
    by_name = client.get("/api/products", {"q": "LAMP"}).json()
    both = client.get("/api/products", {"category": "Books", "q": "lamp"}).json()

    assert {item["category"] for item in by_category} == {"Home"}
    assert len(by_category) == 3
    assert [item["id"] for item in by_name] == [lamp.pk for lamp in lamps]
    assert both == []


def test_product_list_pages_with_link_headers_and_total(client, make_products):
    products = make_products(7)

    first = client.get("/api/products", {"page_size": 3})
    middle = client.get("/api/products", {"page_size": 3, "page": 2})
    last = client.get("/api/products", {"page_size": 3, "page": 3})

    assert [item["id"] for item in middle.json()] == [product.pk for product in products[3:6]]
    assert [item["id"] for item in last.json()] == [products[6].pk]
    assert first["Link"] == (
        '</api/products?page_size=3>; rel="first", </api/products?page=2&page_size=3>; rel="next", '
        '</api/products?page=3&page_size=3>; rel="last"'
    )
    assert middle["Link"] == (
        '</api/products?page_size=3>; rel="first", </api/products?page_size=3>; rel="prev", '
        '</api/products?page=3&page_size=3>; rel="next", </api/products?page=3&page_size=3>; rel="last"'
    )
    assert last["Link"] == (
        '</api/products?page_size=3>; rel="first", </api/products?page=2&page_size=3>; rel="prev", '
        '</api/products?page=3&page_size=3>; rel="last"'
    )
    assert first["X-Total-Count"] == middle["X-Total-Count"] == last["X-Total-Count"] == "7"


def test_product_list_links_keep_the_filters(client, make_products):
    make_products(3, category="Home & Garden", name="Pot")

    response = client.get("/api/products", {"category": "Home & Garden", "page_size": 2})

    assert '</api/products?category=Home+%26+Garden&page=2&page_size=2>; rel="next"' in response["Link"]
    assert response["X-Total-Count"] == "3"


def test_product_list_past_the_last_page_is_empty(client, make_products):
    make_products(2)

    response = client.get("/api/products", {"page": 5})

    assert response.status_code == 200
    assert response.json() == []
    assert response["X-Total-Count"] == "2"
    assert 'rel="last"' in response["Link"]


def test_product_list_defaults_to_pages_of_one_hundred(client, make_products):
    make_products(101)

    response = client.get("/api/products")

    assert len(response.json()) == 100
    assert '</api/products?page=2>; rel="next"' in response["Link"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"page": "0"}, "page"),
        ({"page": "two"}, "page"),
        ({"page_size": "101"}, "page_size"),
        ({"page_size": "-5"}, "page_size"),
        ({"q": "x" * 101}, "q"),
    ],
)
def test_product_list_bad_parameters_answer_400_with_a_code(client, make_products, query, parameter):
    make_products(1)

    response = client.get("/api/products", query)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_parameter"
    assert body["detail"].startswith(parameter)
    assert response["Cache-Control"] == "no-store"
    assert "X-Cache-Status" not in response


def test_product_detail_adds_the_description(client, make_products):
    product = make_products(1)[0]

    response = client.get(f"/api/products/{product.pk}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == set(ProductDetailSerializer().fields)
    assert body["description"] == product.description
    assert body["id"] == product.pk


@pytest.mark.parametrize("product_id", ["999999", "abc", "0", "99999999999999999999"])
def test_product_detail_unknown_answers_404_json(client, make_products, product_id):
    make_products(1)

    response = client.get(f"/api/products/{product_id}")

    assert response.status_code == 404
    number = {"product_ids": [int(product_id)]} if product_id == "999999" else {}  # only an id that can be one
    assert response.json() == {"code": "product_not_found", "detail": f"No product with id {product_id}.", **number}
    assert response["Cache-Control"] == "no-store"


def test_inventory_reads_the_live_quantity_without_caching(client, make_products):
    product = make_products(1, stock=7)[0]

    before = client.get(f"/api/inventory/{product.pk}")
    Inventory.objects.filter(product=product).update(quantity=3)
    after = client.get(f"/api/inventory/{product.pk}")

    assert before.status_code == after.status_code == 200
    assert before.json()["quantity"] == 7
    assert after.json()["quantity"] == 3
    assert after.json()["available"] == 3
    assert (
        set(after.json()) == {"product_id", "quantity", "available", "updated_at"} == set(InventorySerializer().fields)
    )
    assert after["Cache-Control"] == "no-store"


def test_inventory_updated_at_is_the_stored_time_as_the_api_writes_times(client, make_products):
    product = make_products(1, stock=7)[0]
    stored = Inventory.objects.get(product=product).updated_at

    single = client.get(f"/api/inventory/{product.pk}").json()
    (batch,) = client.get("/api/inventory", {"product_ids": str(product.pk)}).json()

    expected = serializers.DateTimeField().to_representation(stored)
    assert single["updated_at"] == batch["updated_at"] == expected
    assert datetime.fromisoformat(expected.replace("Z", "+00:00")) == stored


def test_inventory_of_a_product_without_stock_record_is_zero(client, make_products):
    product = make_products(1)[0]
    Inventory.objects.filter(product=product).delete()

    body = client.get(f"/api/inventory/{product.pk}").json()

    assert body == {"product_id": product.pk, "quantity": 0, "available": 0, "updated_at": None}


def test_inventory_unknown_product_answers_404(client):
    response = client.get("/api/inventory/424242")

    assert response.status_code == 404
    assert response.json() == {
        "code": "product_not_found",
        "detail": "No product with id 424242.",
        "product_ids": [424242],
    }
    assert response["Cache-Control"] == "no-store"


def test_inventory_batch_answers_the_known_products_in_id_order(client, make_products, django_assert_num_queries):
    products = make_products(3, stock=5)
    Inventory.objects.filter(product=products[1]).update(quantity=0)
    ids = f"{products[2].pk},{products[0].pk},999999,{products[1].pk}"

    with django_assert_num_queries(1):
        response = client.get("/api/inventory", {"product_ids": ids})

    assert response.status_code == 200
    assert [(item["product_id"], item["quantity"]) for item in response.json()] == [
        (products[0].pk, 5),
        (products[1].pk, 0),
        (products[2].pk, 5),
    ]
    assert response["Cache-Control"] == "no-store"


def test_inventory_batch_rejects_more_than_one_hundred_ids(client):
    response = client.get("/api/inventory", {"product_ids": ",".join(str(n) for n in range(1, 102))})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parameter"
    assert response["Cache-Control"] == "no-store"


def test_product_endpoints_refuse_writes(client, make_products):
    make_products(1)

    response = client.post("/api/products", {}, content_type="application/json")

    assert response.status_code == 405
    assert Product.objects.count() == 1


def test_product_categories_lists_each_category_once_in_order(make_products):
    make_products(4, category="Toys")
    make_products(2, category="Books")
    make_products(1, category="Garden")

    assert product_categories() == ["Books", "Garden", "Toys"]


def test_deep_pages_read_through_the_ids_give_the_same_products(client, make_products, monkeypatch):
    products = make_products(12)
    monkeypatch.setattr("catalog.selectors.DEFERRED_JOIN_OFFSET", 10**9)
    by_offset = client.get("/api/products", {"page": 3, "page_size": 5}).json()
    monkeypatch.setattr("catalog.selectors.DEFERRED_JOIN_OFFSET", 1)

    by_ids = product_list(category="", q="", offset=10, limit=5)

    assert [item["id"] for item in by_offset] == [product.pk for product in products[10:]]
    assert [row["id"] for row in by_ids] == [product.pk for product in products[10:]]


def test_large_match_counts_come_from_the_planner_not_count(
    client, make_products, needs_postgres, monkeypatch, django_assert_max_num_queries
):
    make_products(30, category="Books")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE catalog_product")
    monkeypatch.setattr("catalog.selectors.EXACT_COUNT_LIMIT", 5)

    with django_assert_max_num_queries(3) as captured:
        response = client.get("/api/products", {"page_size": 10})

    assert not [query for query in captured.captured_queries if "COUNT(" in query["sql"]]
    assert response["X-Total-Count"] == "30"  # ANALYZE saw all 30 rows of this small table


def test_small_match_counts_are_exact(client, make_products, django_assert_max_num_queries):
    make_products(30, category="Books")

    with django_assert_max_num_queries(3) as captured:
        response = client.get("/api/products", {"page_size": 10})

    assert [query for query in captured.captured_queries if "COUNT(" in query["sql"]]
    assert response["X-Total-Count"] == "30"
