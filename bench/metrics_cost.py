"""What the app's metrics (shop.metrics) cost a product cache hit: metrics on vs off in one process, alternating.

`make bench-metrics` (DATABASE_URL and REDIS_URL as for `make serve`; the database is migrated and
gets the sample products when it has none). The request goes through the whole WSGI stack
(`shop.wsgi.application`) as gunicorn calls it, without the network: GET /api/products, a hit in the process's
near copy after the warm-up, the cheapest request the shop serves, so the metrics' share of it is the largest
there is. Rounds alternate metrics off and on, so both see the same machine load; the figure is the median of
the request thread's CPU time per request (time.thread_time: the writer thread's once-a-minute work is not in it,
and is printed apart). Request log lines are off (LOG_LEVEL=WARNING) in both, which makes the request cheaper and
the metrics' share larger.

Environment (optional): METRICS_BENCH_ROUNDS (10 a mode), METRICS_BENCH_REQUESTS (20,000 a round).
"""

import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-not-a-secret")
os.environ["DJANGO_DEBUG"] = "0"
os.environ["LOG_LEVEL"] = "WARNING"
os.environ["METRICS_EMF_FILE"] = ""  # turned on and off below


def _environ() -> dict:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/products",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def _round(application, requests: int) -> float:
    """CPU µs of this thread per request."""
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    started = time.thread_time()
    for _ in range(requests):
        body = application(_environ(), start_response)
        for _chunk in body:
            pass
        body.close()
    spent = time.thread_time() - started
    assert statuses[-1].startswith("200"), statuses[-1]
    return spent / requests * 1_000_000


def main() -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    if not settings.REDIS_URL:
        raise SystemExit("bench/metrics_cost.py: set REDIS_URL (the cache hit goes through Redis's near copy)")
    call_command("migrate", interactive=False, verbosity=0)
    call_command("seed_products", if_empty=True, verbosity=0)

    from shop.metrics import app_metrics
    from shop.wsgi import application

    rounds = int(os.environ.get("METRICS_BENCH_ROUNDS", 10))
    requests = int(os.environ.get("METRICS_BENCH_REQUESTS", 20_000))
    emf_file = Path(tempfile.mkdtemp(prefix="shop-metrics-bench-")) / "metrics.log"
    app_metrics.configure(path=str(emf_file), namespace="shop-bench", interval=60)
    for enabled in (False, True):  # warm up both paths: the near copy, the writer thread
        app_metrics.enabled = enabled
        _round(application, 2_000)
    cost = {False: [], True: []}
    for _ in range(rounds):
        for enabled in (False, True):
            app_metrics.enabled = enabled
            cost[enabled].append(_round(application, requests))
    app_metrics.enabled = True
    started = time.thread_time()
    app_metrics.flush()
    flush_us = (time.thread_time() - started) * 1_000_000
    off, on = statistics.median(cost[False]), statistics.median(cost[True])
    load = os.getloadavg()[0]
    print(f"GET /api/products (near-cache hit), {rounds} rounds x {requests:,} requests a mode, load avg {load:.1f}")
    print(f"  metrics off: median {off:.1f} µs CPU a request (rounds {min(cost[False]):.1f}-{max(cost[False]):.1f})")
    print(f"  metrics on:  median {on:.1f} µs CPU a request (rounds {min(cost[True]):.1f}-{max(cost[True]):.1f})")
    print(f"  on / off: {on / off:.3f} ({on - off:+.1f} µs); one interval's write: {flush_us:.0f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
