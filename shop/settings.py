"""Settings for the shop. The only module that reads the environment (through shop.env)."""

import multiprocessing
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from shop import env
from shop.secrets import app_secrets, database_credentials

BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = BASE_DIR / ".shop"

DEBUG = env.flag("DJANGO_DEBUG", False)
VERSION = env.text("SHOP_VERSION", "dev")

# --- Secrets: from Secrets Manager on AWS, from plain variables locally ---------------------------
APP_SECRET_ARN = env.text("APP_SECRET_ARN")
_app_secret = app_secrets(APP_SECRET_ARN) if APP_SECRET_ARN else {}
SECRET_KEY = _app_secret.get("django_secret_key") or env.text("DJANGO_SECRET_KEY")
# Management commands other than runserver (the ops toolkit, migrate, seed_products) sign nothing, so an operator's
# machine needs no key; a process that serves requests (gunicorn, runserver) refuses to start without one.
_SERVES_REQUESTS = not sys.argv[0].endswith("manage.py") or sys.argv[1:2] == ["runserver"]
if not SECRET_KEY and DEBUG:
    SECRET_KEY = "insecure-local-development-key-do-not-deploy"  # noqa: S105 - DEBUG only
elif not SECRET_KEY and _SERVES_REQUESTS:
    raise SystemExit(
        "shop: DJANGO_SECRET_KEY (or django_secret_key in APP_SECRET_ARN) is required when DJANGO_DEBUG is off."
    )
METRICS_TOKEN = _app_secret.get("metrics_token") or env.text("METRICS_TOKEN")
ORIGIN_VERIFY = _app_secret.get("origin_verify") or env.text("ORIGIN_VERIFY")
REDIS_AUTH_TOKEN = _app_secret.get("redis_auth_token") or env.text("REDIS_AUTH_TOKEN")

ALLOWED_HOSTS = env.items("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
# CloudFront + ALB each append one address to X-Forwarded-For: 2 on AWS, 0 locally. The header is read only on
# requests carrying ORIGIN_VERIFY in X-Origin-Verify (checkout.ratelimit.client_ip).
TRUSTED_PROXY_COUNT = env.integer("TRUSTED_PROXY_COUNT", 0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "catalog",
    "checkout",
    "opsinfra",
]

MIDDLEWARE = [
    "shop.health.HealthMiddleware",
    "shop.middleware.RequestLogMiddleware",
    "shop.middleware.DatabaseUnavailableMiddleware",
    "shop.middleware.RequestBodyLimitMiddleware",
    # Product GETs (mostly cache hits) are answered here, before the session/auth/messages/CSRF work below.
    "catalog.middleware.ProductCacheMiddleware",
    # POST /api/checkout with a JSON body, likewise (a doorbuster's sold-out refusals are most of them).
    "checkout.middleware.CheckoutMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "shop.middleware.PageMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Answers the admin login with 429 once a client or a user name has failed AXES_FAILURE_LIMIT times.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "shop" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# --- Database ---------------------------------------------------------------------------------------
DATABASE_URL = env.text("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASE_PROXY = env.text("DATABASE_PROXY")
DB_STATEMENT_TIMEOUT_MS = env.integer("DB_STATEMENT_TIMEOUT_MS", 5000)
# The app's own deadline on each database call (docs/timeouts.md): longer than RDS Proxy's borrow timeout (2 s) and
# the server's statement timeout together, so a proxy or server that answers gives its own error first; this one
# fires only when no answer comes at all.
DB_DEADLINE_MS = env.integer("DB_DEADLINE_MS", 8000)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.postgresql":
    # Persistent connections skip a TLS handshake per request; health checks drop ones the proxy closed.
    _db["CONN_MAX_AGE"] = env.integer("DB_CONN_MAX_AGE", 60)
    _db["CONN_HEALTH_CHECKS"] = True
    # Django's backend, checking only connections that may have sat idle (shop/postgres/base.py).
    _db["ENGINE"] = "shop.postgres"
    # A database that does not answer fails fast (503) instead of holding a worker: connecting is bounded by
    # connect_timeout, every call after it by the app's own deadline (shop/postgres/deadline.py, DB_DEADLINE_MS),
    # and the kernel drops a dead path (keepalives, tcp_user_timeout). All client-side: nothing reaches the server.
    _db["OPTIONS"] = {
        "connect_timeout": env.integer("DB_CONNECT_TIMEOUT", 3),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": DB_DEADLINE_MS,
    }
    if DATABASE_PROXY == "rds":
        # Transaction pooling cannot keep a named cursor open across statements.
        _db["DISABLE_SERVER_SIDE_CURSORS"] = True
        # RDS Proxy requires TLS from clients.
        _db["OPTIONS"]["sslmode"] = "require"
        # No `options` startup parameter or SET: the proxy rejects the first and pins on the second;
        # timezone=UTC and statement_timeout are set on the database role instead.
    else:
        _db["OPTIONS"]["options"] = f"-c statement_timeout={DB_STATEMENT_TIMEOUT_MS}"
    DB_SECRET_ARN = env.text("DB_SECRET_ARN")
    if DB_SECRET_ARN:
        _db["USER"], _db["PASSWORD"] = database_credentials(DB_SECRET_ARN)
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # Waiting writers queue on the file lock instead of failing at once.
    _db["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ------------------------------------------------------------------------------------------
REDIS_URL = env.text("REDIS_URL")
# Every Redis client answers or gives up within this many seconds; no retries.
REDIS_TIMEOUT = 0.25
CACHE_KEY_PREFIX = env.text("CACHE_KEY_PREFIX", "shop")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": REDIS_TIMEOUT,
                "SOCKET_TIMEOUT": REDIS_TIMEOUT,
                "PASSWORD": REDIS_AUTH_TOKEN or None,
                "IGNORE_EXCEPTIONS": True,
                "CONNECTION_POOL_KWARGS": {"retry_on_timeout": False},
                # The Django cache shares the breaker of shop.redis: after one failure its calls return at once.
                "CONNECTION_FACTORY": "shop.redis.BreakerConnectionFactory",
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": CACHE_KEY_PREFIX}}
# shop.redis's breaker logs one warning per outage; a traceback per skipped cache call would flood the log.
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = False

# --- Catalogue ----------------------------------------------------------------------------------------
PRODUCT_CACHE_TTL = 300
# Each process also keeps the entries it served for this long (catalog.nearcache), while it hears Redis's
# invalidation channel; 0 turns that copy off.
PRODUCT_NEAR_CACHE_TTL_MS = env.integer("PRODUCT_NEAR_CACHE_TTL_MS", 1000)

# --- Checkout -----------------------------------------------------------------------------------------
# gunicorn's worker timeout (shop/gunicorn.conf.py reads the same variable): no request runs longer, since the worker
# exits when one of its request threads does (shop/workers.py). An Idempotency-Key claim this old was abandoned.
WORKER_TIMEOUT_SECONDS = env.integer("GUNICORN_TIMEOUT", 20)
RATELIMIT_ENABLED = env.flag("RATELIMIT_ENABLED", True)
RATELIMIT_SESSIONS_PER_IP = env.text("RATELIMIT_SESSIONS_PER_IP", "30/m")
RATELIMIT_CHECKOUT_PER_IP = env.text("RATELIMIT_CHECKOUT_PER_IP", "60/m")
RATELIMIT_CHECKOUT_PER_SESSION = env.text("RATELIMIT_CHECKOUT_PER_SESSION", "20/m")
RATELIMIT_ALLOW_IPS = env.items("RATELIMIT_ALLOW_IPS")
# While Redis is away each process admits limit // this many per window, so one instance admits at most the limit:
# the processes that share an instance's limits, gunicorn's workers (the same default as shop/gunicorn.conf.py).
RATELIMIT_LOCAL_PROCESSES = env.integer(
    "RATELIMIT_LOCAL_PROCESSES", env.integer("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2)
)
# Units of one product a single checkout may buy; larger quantities get 400.
CHECKOUT_MAX_QUANTITY_PER_LINE = env.integer("CHECKOUT_MAX_QUANTITY_PER_LINE", 10)
# Carts (checkout.carts): how long adding a line holds its units (renewed once when the cart's checkout starts),
# how many products one session may hold at once, and how many units all the sessions of one client address may.
CART_HOLD_SECONDS = env.integer("CART_HOLD_SECONDS", 600)
CART_MAX_HOLDS_PER_SESSION = env.integer("CART_MAX_HOLDS_PER_SESSION", 20)
CART_MAX_HELD_UNITS_PER_IP = env.integer("CART_MAX_HELD_UNITS_PER_IP", 50)

# --- Admin ----------------------------------------------------------------------------------------------
# Off, or at a path of your choosing, in production (shop.urls); the models stay installed either way.
ADMIN_ENABLED = env.flag("DJANGO_ADMIN_ENABLED", True)
ADMIN_PATH = (env.text("DJANGO_ADMIN_PATH", "admin/").strip("/") or "admin") + "/"
# django-axes: after 5 wrong passwords from one client address, or for one user name, that client or name gets
# 429 for 15 minutes (the attempts are rows in PostgreSQL, so the throttle holds while Redis is away).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# The client address as the rate limits see it (TRUSTED_PROXY_COUNT), not the last proxy's.
AXES_CLIENT_IP_CALLABLE = "checkout.ratelimit.client_ip"

# --- HTTP ---------------------------------------------------------------------------------------------
# The largest request body the shop reads: a bigger Content-Length is refused with 413 before the body is read
# (shop.middleware), and nginx's client_max_body_size is rendered from the same number (shop/nginx).
REQUEST_BODY_MAX_BYTES = 262_144
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "shop.exceptions.api_exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "shop.negotiation.FirstRendererNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "shop API",
    "DESCRIPTION": "Catalogue, live inventory and checkout.",
    "VERSION": VERSION,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
}

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed file names let CloudFront cache /static/* for a year.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

SECURE_PROXY_SSL_HEADER = ("HTTP_CLOUDFRONT_FORWARDED_PROTO", "https") if TRUSTED_PROXY_COUNT else None
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True

# The app's CloudWatch metrics (shop.metrics, docs/metrics.md): EMF records appended to this file once an interval;
# empty: nothing is counted. The namespace is the stack's on AWS (the user data sets it).
METRICS_EMF_FILE = env.text("METRICS_EMF_FILE")
METRICS_NAMESPACE = env.text("METRICS_NAMESPACE", "shop-local")
METRICS_INTERVAL_SECONDS = env.integer("METRICS_INTERVAL_SECONDS", 60)
if METRICS_INTERVAL_SECONDS < 1:
    raise ImproperlyConfigured(f"METRICS_INTERVAL_SECONDS={METRICS_INTERVAL_SECONDS} must be at least 1.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "shop.logs.JsonFormatter"}},
    "filters": {"client_errors": {"()": "shop.exceptions.ClientErrorFilter"}},
    # The same warning or error is written once per 10 s, then with its count (shop.logs.QuietStreamHandler).
    "handlers": {
        "stdout": {
            "class": "shop.logs.QuietStreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["client_errors"],
        }
    },
    "root": {"handlers": ["stdout"], "level": env.text("LOG_LEVEL", "INFO")},
    # runserver's own per-request line ("GET / 200") would repeat the request log's.
    "loggers": {"django.request": {"level": "ERROR"}, "django.server": {"level": "CRITICAL"}},
}

# --- Ops toolkit (opsinfra) -----------------------------------------------------------------------------
# What `manage.py synth_stack` builds. Plain values, not the environment: a committed template must not depend on
# who synthesizes it (`synth_stack --check`). Staging overrides what differs from production.
_OPSINFRA_PRODUCTION = {
    "domain": "",  # e.g. "shop.example.com"; needs hosted_zone_id (DNS-validated certificate, alias records)
    "hosted_zone_id": "",
    "alert_email": "",  # default of the AlertEmail parameter; empty: no subscription
    "instance_type": "t3.medium",
    "db_instance_class": "db.t3.medium",
    "db_multi_az": True,
    "db_engine_version": "15.14",
    "cache_node_type": "cache.t3.micro",
    "asg_min": 2,
    "asg_max": 20,
    "asg_desired": 2,
    "warm_pool_size": 3,
    "prescale_capacity": 10,
    "nat_gateways": 3,
    "interface_endpoints": True,
    "app_port": 8000,
    # First boot: Python 3.11, the CloudWatch agent, the release's wheels, then /health.
    "boot_seconds": 600,
    # Written to each instance's environment, so the connection budget below is what runs.
    "gunicorn_workers": 4,
    "gunicorn_threads": 4,
    "gunicorn_timeout": 20,  # the worker timeout of shop/gunicorn.conf.py
    # Inside the app's database deadline with the statement timeout after it (docs/timeouts.md).
    "proxy_borrow_timeout": 2,
    "proxy_max_connections_percent": 100,
    "origin_read_timeout": 30,
    "alb_idle_timeout": 60,
    "log_retention_days": 30,
    "allow_list": [],  # CIDRs the WAF rate rule never counts (offices, load generators)
}
OPSINFRA = {
    "PROJECT": "shop",
    "REGION": "us-east-1",
    "GITHUB_REPOSITORY": "example/shop",
    # The ops commands (deploy_stack and friends). A template over this many bytes (compact JSON) goes to the
    # artifacts bucket as a TemplateURL: CloudFormation takes at most 51,200 inline.
    "TEMPLATE_URL_THRESHOLD": 51_200,
    # deploy_stack writes outputs-<stack-name>.json here (relative to the project); purge_cdn and deploy_app read it.
    "OUTPUTS_DIR": ".shop",
    # Seconds between polls of a stack operation: the first, then backing off by half up to the second.
    "POLL_SECONDS": (2, 15),
    # Clients for which no region is given (CloudFront) use AWS_REGION as the AWS CLI v2 does, else boto3's chain.
    "AWS_REGION": env.text("AWS_REGION"),
    "ENVIRONMENTS": {
        "production": _OPSINFRA_PRODUCTION,
        "staging": {
            **_OPSINFRA_PRODUCTION,
            "instance_type": "t3.small",
            "db_instance_class": "db.t3.small",
            "db_multi_az": False,
            "asg_max": 4,
            "warm_pool_size": 1,
            "prescale_capacity": 4,
            "nat_gateways": 1,
            "interface_endpoints": False,
        },
    },
}
