"""Fixtures shared by the whole suite: which real services this run has, and clean state on them.

Clean state is this pytest-xdist worker's own (tests/workers.py): its test database, and in Redis only the keys
under its CACHE_KEY_PREFIX. A test never flushes a whole Redis db: other workers' keys live there too.
"""

import os
import shutil

import pytest
from django.conf import settings
from django.db import connection

from tests.redis_process import RedisProcess
from tests.workers import redis_space_flush, xdist_groups_apply

REQUIRE_SERVICES = os.environ.get("SHOP_REQUIRE_SERVICES") == "1"


def _missing(service: str, how: str) -> None:
    message = f"{service} is not configured for this run ({how})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, but SHOP_REQUIRE_SERVICES=1 demands it")
    pytest.skip(message)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under `--dist loadgroup`: a module whose tests share a fixture built once per module or class (a checkov
    scan, a chaos run) runs on one worker, so that fixture is built once, not once per worker. A test already in
    an xdist_group (tests.workers.HEAVY) keeps its group."""
    for item in items:
        if any(item.iter_markers("xdist_group")):
            continue
        definitions = getattr(item, "_fixtureinfo", None)
        # The suite's own fixtures (a plugin's have no baseid: pytest-django's class-scoped no-op is everywhere).
        scopes = {
            defs[-1].scope for defs in (definitions.name2fixturedefs.values() if definitions else ()) if defs[-1].baseid
        }
        if scopes & {"module", "class", "package"}:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    if getattr(config.option, "loadgroup", False):  # an xdist worker of a --dist loadgroup run
        xdist_groups_apply(items)


@pytest.fixture
def redis_process():
    """A redis-server of the test's own on a free port (tests/redis_process.py), to kill and start again; killed
    after the test."""
    if shutil.which("redis-server") is None:
        _missing("redis-server", "install the redis-server package: these tests kill a Redis of their own")
    server = RedisProcess()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def needs_postgres():
    """Skip (or fail under SHOP_REQUIRE_SERVICES=1) unless the tests run on PostgreSQL."""
    if connection.vendor != "postgresql":
        _missing("PostgreSQL", "set DATABASE_URL=postgres://...")


@pytest.fixture
def needs_redis():
    """Skip (or fail under SHOP_REQUIRE_SERVICES=1) unless REDIS_URL names a Redis that answers; empty this
    worker's keys there."""
    if not settings.REDIS_URL:
        _missing("Redis", "set REDIS_URL=redis://...")
    from shop.redis import breaker, redis_client

    breaker.reset()
    client = redis_client()
    try:
        client.ping()
    except Exception as exc:
        _missing("Redis", f"{settings.REDIS_URL} does not answer: {exc}")
    redis_space_flush(client)
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
    """Each test starts with an empty cache and a closed circuit breaker. On Redis, the cache is this worker's keys
    (django-redis's clear() would flush the whole db)."""
    import redis
    from django.core.cache import caches
    from django_redis.cache import RedisCache

    from shop.redis import breaker

    breaker.reset()
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        try:
            redis_space_flush(cache.client.get_client(write=True))
        except (redis.RedisError, OSError):
            pass  # a Redis that does not answer holds nothing to clear; needs_redis says so
    else:
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
