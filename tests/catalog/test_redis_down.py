"""Redis refusing or never answering: product endpoints answer from the database, quickly, and say BYPASS.

The stand-ins listen on 127.0.0.1 only: a closed port (refused), a listener that never answers (reads time out)
and one whose accept queue is full (connects hang). 1 s is the contract's bound for any request, the first one of
a process included; the Redis timeouts (250 ms, no retries) and the breaker are what keep requests under it.
"""

import time

import pytest
from django.core.cache import caches
from django.test import override_settings

from shop.redis import breaker
from tests.workers import HEAVY

pytestmark = [HEAVY, pytest.mark.django_db]

DEAD_REDIS = ["closed_port", "silent_port", "full_backlog_port"]
CONTRACT_BOUND_SECONDS = 1.0


def timed_get(client, path, **extra):
    started = time.perf_counter()
    response = client.get(path, **extra)
    return response, time.perf_counter() - started


@pytest.mark.parametrize("dead_redis", DEAD_REDIS)
def test_product_endpoints_answer_from_the_database_when_redis_fails(
    client, make_products, redis_at, request, dead_redis
):
    products = make_products(3)
    redis_at(request.getfixturevalue(dead_redis))
    paths = ["/api/products", f"/api/products/{products[0].pk}", "/api/products?category=Books", "/"]

    answers = [timed_get(client, path) for path in paths * 2]

    for (response, elapsed), path in zip(answers, paths * 2, strict=True):
        assert response.status_code == 200, path
        assert elapsed < CONTRACT_BOUND_SECONDS, (path, elapsed)
        if path != "/":
            assert response["X-Cache-Status"] == "BYPASS"
    assert [item["id"] for item in answers[0][0].json()] == [product.pk for product in products]
    assert breaker.is_open()


@pytest.mark.parametrize("dead_redis", DEAD_REDIS)
def test_conditional_requests_still_work_without_redis(client, make_products, redis_at, request, dead_redis):
    make_products(2)
    redis_at(request.getfixturevalue(dead_redis))

    first, _ = timed_get(client, "/api/products")
    revalidated, elapsed = timed_get(client, "/api/products", HTTP_IF_NONE_MATCH=first["ETag"])

    assert revalidated.status_code == 304
    assert revalidated["X-Cache-Status"] == "BYPASS"
    assert elapsed < CONTRACT_BOUND_SECONDS


@pytest.mark.parametrize("dead_redis", DEAD_REDIS)
def test_metrics_and_invalidation_survive_a_dead_redis(
    client, make_products, redis_at, request, dead_redis, settings, django_capture_on_commit_callbacks
):
    settings.METRICS_TOKEN = "t0ken"
    product = make_products(1)[0]
    redis_at(request.getfixturevalue(dead_redis))

    with django_capture_on_commit_callbacks(execute=True):
        product.name = "Saved while Redis is down"
        product.save()
    metrics, elapsed = timed_get(client, "/api/metrics", HTTP_AUTHORIZATION="Bearer t0ken")

    assert metrics.status_code == 200
    assert metrics.json()["cache_hits"] is None
    assert metrics.json()["active_db_connections"] >= 1
    assert elapsed < CONTRACT_BOUND_SECONDS


@pytest.mark.parametrize("dead_redis", DEAD_REDIS)
def test_django_cache_neither_raises_nor_waits_twice(redis_at, request, dead_redis, settings):
    port = request.getfixturevalue(dead_redis)
    redis_at(port)
    dead = {
        "default": {
            **settings.CACHES["default"],
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": settings.REDIS_TIMEOUT,
                "SOCKET_TIMEOUT": settings.REDIS_TIMEOUT,
                "IGNORE_EXCEPTIONS": True,
                "CONNECTION_FACTORY": "shop.redis.BreakerConnectionFactory",
            },
        }
    }
    with override_settings(CACHES=dead):
        django_cache = caches["default"]
        started = time.perf_counter()
        first = django_cache.get("key", "fallback")
        first_took = time.perf_counter() - started
        started = time.perf_counter()
        later = [django_cache.set("key", 1) for _ in range(10)] + [django_cache.get("key", "fallback")]
        later_took = time.perf_counter() - started

    assert first == "fallback"
    assert later[-1] == "fallback"
    assert first_took < CONTRACT_BOUND_SECONDS
    # Ten calls after the first failure would take 2.5 s if each waited out its own timeout.
    assert later_took < settings.REDIS_TIMEOUT
    assert breaker.is_open()


def test_redis_is_used_again_after_the_cooldown(client, make_products, needs_redis, monkeypatch):
    make_products(1)
    client.get("/api/products")
    breaker.trip(ConnectionError("simulated"))

    while_open = client.get("/api/products")
    monkeypatch.setattr(breaker, "_open_until", 0.0)
    after_cooldown = client.get("/api/products")

    assert while_open["X-Cache-Status"] == "BYPASS"
    assert after_cooldown["X-Cache-Status"] == "HIT"
