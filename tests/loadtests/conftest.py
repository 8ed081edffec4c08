import os

import pytest
from django.conf import settings

from tests.loadtests.runs import database_url_of


@pytest.fixture
def server_env(needs_postgres, needs_redis, transactional_db):
    """The environment for a server in another process: the test database (data committed, so that process sees
    it; pytest-django empties it afterwards) and the test Redis."""
    return dict(
        os.environ,
        DATABASE_URL=database_url_of(settings.DATABASES["default"]),
        REDIS_URL=settings.REDIS_URL,
        METRICS_TOKEN="smoke-metrics-token",
        GUNICORN_WORKERS="2",
        # The bot (no think time) meets it within a second even on a slow machine; a shopper thinks 0.5-2.5 s
        # between actions, so in the ~6 s run it cannot reach 15 checkouts (with 5/m one sometimes did).
        RATELIMIT_CHECKOUT_PER_SESSION="15/m",
    )
