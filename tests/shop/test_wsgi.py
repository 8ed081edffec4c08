"""shop.wsgi, as gunicorn's master loads it before forking (preload_app)."""

import os
import subprocess
import sys

from django.conf import settings

LOAD_AND_REPORT = """
import gc
import shop.wsgi
print(gc.get_freeze_count(), len(gc.get_objects()))
"""


def test_loading_the_app_freezes_its_heap_out_of_the_collectors_reach():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "shop.settings", "DJANGO_SECRET_KEY": "test-only"}

    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_REPORT], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    frozen, tracked = map(int, result.stdout.split())
    # the loaded app (tens of thousands of objects) is frozen; a full collection in a worker walks only the rest
    assert frozen > 20_000
    assert tracked < frozen / 10
