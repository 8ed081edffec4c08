"""Loaded with `-p tests.testenv` before Django's settings: values a test run needs when the caller set none, and
each pytest-xdist worker's own Redis key prefix (tests/workers.py)."""

import os

from tests.workers import worker_key_prefix

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-not-a-secret")
os.environ["CACHE_KEY_PREFIX"] = worker_key_prefix(os.environ.get("CACHE_KEY_PREFIX", "shop"))
