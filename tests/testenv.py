"""Loaded with `-p tests.testenv` before Django's settings: values a test run needs when the caller set none."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-not-a-secret")
