"""Fixtures shared by the whole suite: which real services this run has, and clean state on them."""

import os

import pytest
from django.conf import settings
from django.db import connection

REQUIRE_SERVICES = os.environ.get("SHOP_REQUIRE_SERVICES") == "1"


def _missing(service: str, how: str) -> None:
    message = f"{service} is not configured for this run ({how})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, but SHOP_REQUIRE_SERVICES=1 demands it")
    pytest.skip(message)


@pytest.fixture
def needs_postgres():
    """Skip (or fail under SHOP_REQUIRE_SERVICES=1) unless the tests run on PostgreSQL."""
    if connection.vendor != "postgresql":
        _missing("PostgreSQL", "set DATABASE_URL=postgres://...")


@pytest.fixture
def needs_redis():
    """Skip (or fail under SHOP_REQUIRE_SERVICES=1) unless REDIS_URL names a Redis that answers; flush its db."""
    if not settings.REDIS_URL:
        _missing("Redis", "set REDIS_URL=redis://...")
    from shop.redis import breaker, redis_client

    breaker.reset()
    client = redis_client()
    try:
        client.ping()
    except Exception as exc:
        _missing("Redis", f"{settings.REDIS_URL} does not answer: {exc}")
    client.flushdb()
    yield client
    breaker.reset()


@pytest.fixture(autouse=True)
def _unhashed_static_files(settings):
    """Hashed names need `collectstatic`, which only `make serve` and deploys run; pages render without it. And
    WhiteNoise would walk a collected staticfiles/ (left by `make serve` or `make bench`) for every test client."""
    settings.STATIC_ROOT = None
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache and a closed circuit breaker."""
    from django.core.cache import cache

    from shop.redis import breaker

    breaker.reset()
    cache.clear()
    yield
    breaker.reset()


@pytest.fixture(autouse=True)
def _near_cache_off(settings):
    """Off unless a test turns it on: the near cache goes live a moment after its listener thread subscribes, which
    would make a test that counts Redis round trips depend on timing. tests/catalog/test_nearcache.py turns it on
    and waits until it is live."""
    settings.PRODUCT_NEAR_CACHE_TTL_MS = 0


@pytest.fixture(autouse=True)
def _request_lines_in_the_test_output():
    """Request log lines are written in batches; the test that made them shows them, not the end of the run."""
    from shop.middleware import request_lines

    yield
    request_lines.flush()
