"""schemathesis against a real gunicorn on PostgreSQL and Redis with seeded products: `--checks all` finds nothing.

Every check of schemathesis runs: no 5xx, every status, header and body as the schema states it, data valid by the
schema accepted, data invalid by the schema refused. Bounded for CI: SCHEMATHESIS_MAX_EXAMPLES cases per operation
and phase (default 25) from a fixed seed (SCHEMATHESIS_SEED, default 20261206), one worker, so a run takes about a
minute and a failure reproduces. `make schemathesis` runs this test with more examples.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from catalog.models import Product
from checkout.models import Order
from checkout.services import session_create
from tests.servers import gunicorn_servers, server_env

MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25")
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261206")
METRICS_TOKEN = "schemathesis-metrics-token"
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_failure(needs_postgres, needs_redis, tmp_path):
    # given: the shop as `make serve` runs it, with seeded products and limits high enough not to stop the run
    call_command("seed_products", "--products", "100", "--seed", "1", verbosity=0)
    assert Product.objects.count() == 100
    # A live session for every request, so checkouts get past 401 and place orders that can then be looked up.
    _, token = session_create()
    env = server_env(
        GUNICORN_WORKERS="2",
        METRICS_TOKEN=METRICS_TOKEN,
        RATELIMIT_ENABLED="1",
        RATELIMIT_SESSIONS_PER_IP="100000/m",
        RATELIMIT_CHECKOUT_PER_IP="100000/m",
        RATELIMIT_CHECKOUT_PER_SESSION="100000/m",
    )
    with gunicorn_servers(env, log_dir=tmp_path) as (url,):
        # when
        run = subprocess.run(
            [
                *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG)),
                *("run", f"{url}/api/schema/?format=json"),
                *("--checks", "all", "--max-examples", MAX_EXAMPLES, "--seed", SEED, "--workers", "1"),
                *("--header", f"Authorization: Bearer {METRICS_TOKEN}", "--header", f"X-Session-Token: {token}"),
                *("--request-timeout", "10", "--no-color"),
            ],
            cwd=tmp_path,
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": str(HOOKS),
                "SHOP_MAX_QUANTITY_PER_LINE": str(settings.CHECKOUT_MAX_QUANTITY_PER_LINE),
            },
            capture_output=True,
            text=True,
            timeout=120 + 10 * int(MAX_EXAMPLES),
        )
    server_log = (tmp_path / "gunicorn-0.log").read_text()

    # then: no failure, every operation tested, and no traceback in the server's log
    assert run.returncode == 0, run.stdout[run.stdout.find("== FAILURES ==") :][:8000] + run.stderr[-2000:]
    assert "Tested: 12" in run.stdout, run.stdout[-3000:]
    assert "Traceback" not in server_log, server_log[-6000:]
    assert Order.objects.exists()
