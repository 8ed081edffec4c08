"""Gunicorn settings for the shop. Plain values read from the environment; imports nothing from the project
(the worker class is named, and gunicorn imports it).

Timeout chain (each gives up inside the next; docs/timeouts.md): RDS Proxy borrow timeout 2 s + DB statement
timeout 5 s < the app's database deadline 8 s (+ connect timeout 3 s) < worker timeout 20 s < CloudFront origin read
timeout 30 s < ALB idle timeout 60 s < keep-alive 75 s.
"""

import multiprocessing
import os

bind = f"{os.environ.get('GUNICORN_BIND', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
wsgi_app = "shop.wsgi:application"

# A 2-vCPU t3.medium: 2 workers per core, a few threads each to overlap database and Redis round trips.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# gthread that spreads new connections over the workers by how many each holds (shop/workers.py).
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "shop.workers.FairThreadWorker")

# Longer than any request runs (the app's 8 s database deadline after a 3 s connect), shorter than CloudFront's 30 s
# origin read timeout. A request thread running longer makes its worker exit (shop/workers.py).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 20))
# At least the ALB's 30 s deregistration delay, so in-flight requests finish during a scale-in.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 35))
# Longer than the ALB's 60 s idle timeout, so the ALB never reuses a connection gunicorn has closed.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 75))

# At 1,000 requests/s spread over 4 workers a recycle comes every few minutes per worker, staggered by jitter.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 100_000))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", 10_000))

# Load the app once in the master: secrets are read once and workers share its memory pages.
preload_app = True
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
