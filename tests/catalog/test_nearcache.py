"""Each process's near cache over the real Redis: hits without a round trip, cleared by every bump in the fleet,
off while its invalidation channel is lost, never storing what a concurrent bump made stale."""

import os
import subprocess
import sys
import time
from decimal import Decimal
from unittest import mock

import pytest

from catalog import cache
from catalog.nearcache import NearCache
from shop.database_identity import database_tag

pytestmark = pytest.mark.django_db


def wait_for(condition, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def near(needs_redis, settings):
    """The near cache on (the suite keeps it off), its listener subscribed before the test starts."""
    settings.PRODUCT_NEAR_CACHE_TTL_MS = 1000
    cache.near_get("warm-up")  # starts this process's listener
    assert wait_for(lambda: cache._near_cache.live), "the listener did not subscribe"
    cache._near_cache.take_hits()  # left over from an earlier test; Redis's counters were flushed
    yield cache._near_cache
    cache._near_listener.stop()


@pytest.fixture
def redis_commands():
    from shop.redis import redis_client

    client = redis_client()
    with mock.patch.object(client, "execute_command", wraps=client.execute_command) as commands:
        yield commands


def bump_from_another_process(settings) -> None:
    env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "CACHE_KEY_PREFIX": settings.CACHE_KEY_PREFIX}
    # What cache.invalidate() runs once the other process's transaction commits, in a process that serves the
    # same database (its tag is this one's: the test database is not the one DATABASE_URL names).
    code = (
        "import django; django.setup(); from shop import database_identity; "
        f"database_identity._tag = {database_tag()!r}; from catalog import cache; cache._store().bump()"
    )
    subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, check=True, timeout=60)


def test_a_repeated_hit_costs_no_redis_round_trip(client, make_products, near, redis_commands):
    make_products(2)
    first = client.get("/api/products")
    second = client.get("/api/products")
    redis_commands.reset_mock()

    third = client.get("/api/products")

    assert [r["X-Cache-Status"] for r in (first, second, third)] == ["MISS", "HIT", "HIT"]
    assert third.content == first.content and third["ETag"] == first["ETag"] and third["Link"] == first["Link"]
    assert redis_commands.call_count == 0


def test_a_save_in_this_process_makes_the_next_request_a_miss(
    client, make_products, near, django_capture_on_commit_callbacks
):
    product = make_products(1)[0]
    client.get("/api/products")
    assert client.get("/api/products")["X-Cache-Status"] == "HIT"

    with django_capture_on_commit_callbacks(execute=True):
        product.price = Decimal("42.00")
        product.save()
    response = client.get("/api/products")

    assert response["X-Cache-Status"] == "MISS"
    assert response.json()[0]["price"] == "42.00"


def test_a_bump_in_another_process_clears_this_one(client, make_products, near, settings):
    make_products(1)
    client.get("/api/products")
    client.get("/api/products")
    assert near._entries

    bump_from_another_process(settings)

    assert wait_for(lambda: not near._entries), "the other process's bump did not reach this one"
    assert client.get("/api/products")["X-Cache-Status"] == "MISS"


def test_a_lost_channel_turns_the_near_cache_off_until_it_is_back(
    client, make_products, near, needs_redis, redis_commands
):
    make_products(1)
    client.get("/api/products")
    client.get("/api/products")

    needs_redis.client_kill_filter(_type="pubsub")
    assert wait_for(lambda: not near.live), "the listener did not notice its connection closing"
    redis_commands.reset_mock()
    off = client.get("/api/products")

    assert off["X-Cache-Status"] == "HIT"
    assert redis_commands.call_count == 1  # answered by Redis, not from the near cache
    assert wait_for(lambda: near.live), "the listener did not subscribe again"
    assert not near._entries  # it starts empty: bumps may have been missed while it was off


def test_a_silent_channel_turns_the_near_cache_off(near, monkeypatch):
    near.put("k", "entry", size=5, generation=near.generation)
    assert near.get("k") == "entry"

    monkeypatch.setattr(near, "_live_until", time.monotonic() - 0.001)  # nothing heard for LIVE_SECONDS

    assert near.get("k") is None


def test_entries_expire_after_the_near_cache_ttl(client, make_products, near, settings, redis_commands):
    settings.PRODUCT_NEAR_CACHE_TTL_MS = 50
    make_products(1)
    client.get("/api/products")
    client.get("/api/products")

    time.sleep(0.1)
    redis_commands.reset_mock()
    response = client.get("/api/products")

    assert response["X-Cache-Status"] == "HIT"
    assert redis_commands.call_count == 1


def test_a_lookup_that_raced_a_bump_is_not_kept():
    near = NearCache(ttl=10)
    near.heard()
    generation = near.generation  # a lookup starts and reads the old version from Redis ...

    near.clear()  # ... a bump clears the near cache ...
    near.put("k", "old bytes", size=9, generation=generation)  # ... and the lookup ends

    assert near.get("k") is None


def test_the_oldest_entries_make_room_within_the_byte_budget():
    near = NearCache(ttl=10, max_bytes=100)
    near.heard()
    for key in ("a", "b", "c"):
        near.put(key, key.upper(), size=40, generation=near.generation)
    near.put("b", "B2", size=40, generation=near.generation)  # replacing an entry frees its bytes first
    near.put("huge", "H", size=101, generation=near.generation)  # larger than the whole budget: not kept

    assert [near.get(key) for key in ("a", "b", "c", "huge")] == [None, "B2", "C", None]
    assert near._bytes == 80


def test_near_hits_count_in_the_fleet_counters(client, make_products, near):
    make_products(1)
    for _ in range(4):
        client.get("/api/products")

    assert cache.counters() == (3, 1)


def test_without_a_ttl_the_near_cache_is_off(client, make_products, needs_redis, settings, redis_commands):
    settings.PRODUCT_NEAR_CACHE_TTL_MS = 0
    make_products(1)
    client.get("/api/products")
    client.get("/api/products")
    redis_commands.reset_mock()

    client.get("/api/products")

    assert redis_commands.call_count == 1
