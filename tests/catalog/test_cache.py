"""The product response cache: HIT/MISS, ETags and 304s, invalidation, counters; on the local store and on Redis."""

from decimal import Decimal
from unittest import mock

import pytest
from django.contrib.auth.models import User

from catalog import cache
from catalog.models import Inventory, Product
from catalog.services import inventory_set, products_update
from shop import database_identity
from shop.database_identity import database_tag_reset
from tests.catalog.conftest import product_queries

pytestmark = pytest.mark.django_db


def test_product_list_is_served_from_the_cache_after_the_first_request(
    client, make_products, cache_backend, django_assert_num_queries
):
    make_products(3)

    first = client.get("/api/products")
    with django_assert_num_queries(0):
        second = client.get("/api/products")

    assert first["X-Cache-Status"] == "MISS"
    assert second["X-Cache-Status"] == "HIT"
    assert second.content == first.content
    assert second["ETag"] == first["ETag"]
    assert second["Link"] == first["Link"]
    assert second["X-Total-Count"] == first["X-Total-Count"] == "3"
    for response in (first, second):
        assert response["Cache-Control"] == "public, s-maxage=300, max-age=60"
        assert "X-Cache" not in response


def test_product_detail_is_cached_too(client, make_products, cache_backend, django_assert_num_queries):
    product = make_products(1)[0]

    first = client.get(f"/api/products/{product.pk}")
    with django_assert_num_queries(0):
        second = client.get(f"/api/products/{product.pk}")

    assert (first["X-Cache-Status"], second["X-Cache-Status"]) == ("MISS", "HIT")
    assert second.json()["description"] == product.description


def test_equal_queries_share_one_cache_entry(client, make_products, cache_backend):
    make_products(2, category="Books")

    client.get("/api/products", {"category": "Books"})
    response = client.get("/api/products", {"page": "1", "category": " Books ", "page_size": "100", "utm": "x"})

    assert response["X-Cache-Status"] == "HIT"


def test_if_none_match_answers_304_without_a_body(client, make_products, cache_backend):
    make_products(2)
    etag = client.get("/api/products")["ETag"]

    exact = client.get("/api/products", HTTP_IF_NONE_MATCH=etag)
    weak_in_a_list = client.get("/api/products", HTTP_IF_NONE_MATCH=f'"other", W/{etag}')
    anything = client.get("/api/products", HTTP_IF_NONE_MATCH="*")
    stale = client.get("/api/products", HTTP_IF_NONE_MATCH='"not-the-current-one"')

    for response in (exact, weak_in_a_list, anything):
        assert response.status_code == 304
        assert response.content == b""
        assert response["ETag"] == etag
        assert response["Cache-Control"] == "public, s-maxage=300, max-age=60"
        assert response["X-Cache-Status"] == "HIT"
    assert stale.status_code == 200
    assert stale["ETag"] == etag


def test_if_none_match_answers_304_on_a_miss(client, make_products, cache_backend):
    product = make_products(1)[0]
    etag = client.get(f"/api/products/{product.pk}")["ETag"]
    with mock.patch.object(cache, "_store", return_value=cache.LocalStore()):
        response = client.get(f"/api/products/{product.pk}", HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304
    assert response["X-Cache-Status"] == "MISS"


def test_saving_a_product_makes_the_next_request_a_miss(
    client, make_products, cache_backend, django_capture_on_commit_callbacks
):
    product = make_products(2)[0]
    client.get("/api/products")
    client.get(f"/api/products/{product.pk}")

    with django_capture_on_commit_callbacks(execute=True):
        product.price = Decimal("99.50")
        product.save()
    listing = client.get("/api/products")
    detail = client.get(f"/api/products/{product.pk}")

    assert listing["X-Cache-Status"] == detail["X-Cache-Status"] == "MISS"
    assert listing.json()[0]["price"] == detail.json()["price"] == "99.50"


def test_deleting_a_product_makes_the_next_request_a_miss(
    client, make_products, cache_backend, django_capture_on_commit_callbacks
):
    products = make_products(2)
    client.get("/api/products")

    with django_capture_on_commit_callbacks(execute=True):
        products[0].delete()
    response = client.get("/api/products")

    assert response["X-Cache-Status"] == "MISS"
    assert [item["id"] for item in response.json()] == [products[1].pk]


def test_products_update_service_invalidates_though_update_sends_no_signal(
    client, make_products, cache_backend, django_capture_on_commit_callbacks
):
    products = make_products(3)
    client.get("/api/products")

    with django_capture_on_commit_callbacks(execute=True):
        updated = products_update(product_ids=[products[0].pk, products[2].pk], category="Sale")
    response = client.get("/api/products", {"category": "Sale"})
    listing = client.get("/api/products")

    assert updated == 2
    assert [item["id"] for item in response.json()] == [products[0].pk, products[2].pk]
    assert listing["X-Cache-Status"] == "MISS"


def test_products_update_refuses_fields_it_does_not_own(make_products):
    product = make_products(1)[0]

    with pytest.raises(TypeError):
        products_update(product_ids=[product.pk], id=5)

    assert Product.objects.get(pk=product.pk).category == product.category


def test_invalidation_waits_for_the_commit(client, make_products, cache_backend, django_capture_on_commit_callbacks):
    product = make_products(1)[0]
    client.get("/api/products")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        product.name = "Renamed"
        product.save()
        inside_the_transaction = client.get("/api/products")

    assert inside_the_transaction["X-Cache-Status"] == "HIT"
    assert len(callbacks) == 1


def test_admin_product_change_invalidates(client, make_products, cache_backend, django_capture_on_commit_callbacks):
    product = make_products(1, category="Books")[0]
    admin = User.objects.create_superuser("admin", "admin@example.com", None)
    client.force_login(admin)
    client.get("/api/products")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/admin/catalog/product/{product.pk}/change/",
            {
                "sku": product.sku,
                "name": "Renamed in admin",
                "category": "Books",
                "price": "12.00",
                "currency": "USD",
                "description": "",
            },
        )
    listing = client.get("/api/products")

    assert response.status_code == 302
    assert listing["X-Cache-Status"] == "MISS"
    assert listing.json()[0]["name"] == "Renamed in admin"


def test_admin_inventory_change_goes_through_the_service(client, make_products):
    product = make_products(1, stock=5)[0]
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", None))

    with mock.patch("catalog.admin.inventory_set", wraps=inventory_set) as service:
        response = client.post(
            f"/admin/catalog/inventory/{product.pk}/change/", {"product": product.pk, "quantity": 42}
        )

    assert response.status_code == 302
    service.assert_called_once_with(product_id=product.pk, quantity=42)
    assert Inventory.objects.get(product=product).quantity == 42


def test_admin_inventory_refuses_negative_stock(client, make_products):
    product = make_products(1, stock=5)[0]
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", None))

    response = client.post(f"/admin/catalog/inventory/{product.pk}/change/", {"product": product.pk, "quantity": -1})

    assert response.status_code == 200  # the form again, with the error
    assert Inventory.objects.get(product=product).quantity == 5


def test_inventory_writes_leave_the_product_cache_alone(client, make_products, cache_backend):
    product = make_products(1, stock=5)[0]
    client.get("/api/products")

    inventory_set(product_id=product.pk, quantity=1)
    Inventory.objects.filter(product=product).update(quantity=0)

    assert client.get("/api/products")["X-Cache-Status"] == "HIT"
    assert client.get(f"/api/inventory/{product.pk}").json()["quantity"] == 0


def test_a_hit_is_one_redis_round_trip_and_no_query(client, make_products, needs_redis, django_assert_num_queries):
    from shop.redis import redis_client

    make_products(2)
    client.get("/api/products")
    redis = redis_client()

    with (
        mock.patch.object(redis, "execute_command", wraps=redis.execute_command) as commands,
        django_assert_num_queries(0),
    ):
        response = client.get("/api/products")

    assert response["X-Cache-Status"] == "HIT"
    assert commands.call_count == 1
    assert commands.call_args.args[0] == "EVALSHA"


def test_redis_entries_expire_after_the_product_ttl(client, make_products, needs_redis, settings):
    make_products(1)

    client.get("/api/products")

    entry_keys = [key for key in needs_redis.keys(f"{settings.CACHE_KEY_PREFIX}:{{catalog}}:*:v0:products*")]
    assert len(entry_keys) == 1
    assert 0 < needs_redis.ttl(entry_keys[0]) <= 300
    assert needs_redis.keys(f"{settings.CACHE_KEY_PREFIX}:{{catalog}}:*:lock:*") == []


def test_local_entries_expire_after_the_product_ttl(client, make_products, settings):
    settings.REDIS_URL = ""  # the in-process store
    settings.PRODUCT_CACHE_TTL = 0
    make_products(1)

    client.get("/api/products")
    response = client.get("/api/products")

    assert response["X-Cache-Status"] == "MISS"


def test_cache_counters_count_hits_and_misses(client, make_products, cache_backend):
    make_products(1)

    client.get("/api/products")
    client.get("/api/products")
    client.get("/api/products")

    assert cache.counters() == (2, 1)


def test_a_miss_reads_the_page_once(client, make_products, cache_backend, django_assert_max_num_queries):
    make_products(3)

    with django_assert_max_num_queries(2) as captured:
        client.get("/api/products")

    assert len(product_queries(captured)) == 1  # the last page: its total needs no COUNT


def test_an_entry_stored_between_lookup_and_lock_is_used_not_rebuilt(cache_backend, monkeypatch):
    # given: this request's lookup missed, then another request stored the entry and released its lock
    store = cache._store()
    version = store.lookup("race-key").version
    built_elsewhere = cache.CachedResponse.of(b'{"built": "elsewhere"}')
    token, _ = store.try_lock(version, "race-key")
    store.put(version, "race-key", built_elsewhere)
    store.unlock(version, "race-key", token)
    monkeypatch.setattr(store, "lookup", lambda key: cache._Lookup(version=version, entry=None))
    rebuilds = []
    # when
    entry, status = cache.fetch("race-key", lambda: rebuilds.append(1) or cache.CachedResponse.of(b"{}"))
    # then
    assert (entry.body, status, rebuilds) == (built_elsewhere.body, cache.MISS, [])


@pytest.mark.django_db
def test_a_list_cached_for_another_database_is_not_served(client, make_products, needs_redis, monkeypatch):
    # given: the product list of this database is cached in Redis
    database_tag_reset()
    make_products(3)
    assert client.get("/api/products")["X-Cache-Status"] == "MISS"
    assert client.get("/api/products")["X-Cache-Status"] == "HIT"

    # when: the same Redis db is used by a process serving another database
    monkeypatch.setattr(database_identity, "_tag", "0123456789ab")
    response = client.get("/api/products")

    # then: that process builds its own entry instead of serving ours
    assert response["X-Cache-Status"] == "MISS"
    database_tag_reset()
