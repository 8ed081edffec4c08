"""catalog.closing: Django's per-request cache close is skipped only while it would close nothing."""

import pytest
from django.core.cache import close_caches
from django.core.signals import request_finished

from catalog.closing import skip_closing_caches_that_close_nothing


def connected() -> bool:
    return close_caches in request_finished._live_receivers(None)[0]


@pytest.fixture
def restore_receiver():
    """Put the receiver back as the real settings want it; set up before (so torn down after) `settings`."""
    yield
    request_finished.connect(close_caches)
    skip_closing_caches_that_close_nothing()


def test_the_configured_caches_close_nothing_so_the_receiver_is_gone():
    assert not connected()


@pytest.mark.parametrize(
    "caches",
    [
        {"default": {"BACKEND": "django_redis.cache.RedisCache", "OPTIONS": {"CLOSE_CONNECTION": True}}},
        {"default": {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache"}},
        {
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "sessions": {"BACKEND": "django.core.cache.backends.db.DatabaseCache"},
        },
    ],
    ids=["redis-closing-its-connection", "memcached", "one-of-two"],
)
def test_a_cache_whose_close_does_something_keeps_the_receiver(restore_receiver, settings, caches):
    request_finished.connect(close_caches)
    settings.CACHES = caches

    assert skip_closing_caches_that_close_nothing() is False
    assert connected()


def test_redis_told_to_close_its_connections_by_setting_keeps_the_receiver(restore_receiver, settings):
    request_finished.connect(close_caches)
    settings.DJANGO_REDIS_CLOSE_CONNECTION = True

    assert skip_closing_caches_that_close_nothing() is False
    assert connected()
