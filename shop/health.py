"""Liveness (/health) and readiness (/health/ready).

/health is pure liveness: it touches no dependency. Under gunicorn the worker's main loop answers it
(shop/workers.py), so it never waits behind busy request threads; HealthMiddleware answers it anywhere else
(runserver, tests) before any other middleware. /health/ready asks the database and Redis, each within its own
deadline, and says which fails.
"""

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from urllib import error, request

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from shop.redis import redis_call, redis_client

_DMI = Path("/sys/devices/virtual/dmi/id")
_IMDS = "http://169.254.169.254/latest"
_IMDS_TIMEOUT_SECONDS = 0.3


@cache
def instance_id() -> str:
    """The EC2 instance id (read once per process), or "local" anywhere else."""
    try:
        tag = (_DMI / "board_asset_tag").read_text().strip()
        vendor = (_DMI / "sys_vendor").read_text().strip()
    except OSError:
        return "local"
    if tag.startswith("i-"):
        return tag  # Nitro instances carry their id in the DMI asset tag: no network round trip.
    if vendor != "Amazon EC2":
        return "local"
    try:
        token_request = request.Request(
            f"{_IMDS}/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        token = request.urlopen(token_request, timeout=_IMDS_TIMEOUT_SECONDS).read().decode()
        id_request = request.Request(f"{_IMDS}/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token})
        return request.urlopen(id_request, timeout=_IMDS_TIMEOUT_SECONDS).read().decode()
    except (OSError, error.URLError):
        return "local"


def _no_store(response: JsonResponse) -> JsonResponse:
    response["Cache-Control"] = "no-store"
    return response


def health_body() -> dict:
    return {
        "status": "ok",
        "version": settings.VERSION,
        "instance_id": instance_id(),
        "timestamp": datetime.now(UTC).isoformat(),
    }


def health_response() -> JsonResponse:
    return _no_store(JsonResponse(health_body()))


def health_http_response(*, head_only: bool = False) -> bytes:
    """The whole HTTP/1.1 answer to /health, for the worker's main loop; the connection closes after it."""
    body = json.dumps(health_body()).encode()
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode()
    return head if head_only else head + body


class HealthMiddleware:
    """Answers GET /health before host validation: the load balancer asks by the instance's private IP."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/health" and request.method in ("GET", "HEAD"):
            return health_response()
        return self.get_response(request)


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_cache() -> str:
    if redis_client() is None:
        return "ok (local memory)"
    return "ok" if redis_call(lambda client: client.ping(), False) else "unavailable"


def ready(request) -> JsonResponse:
    checks = {}
    try:
        checks["database"] = _check_database()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready, and is named
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks["cache"] = _check_cache()
    failing = [name for name, result in checks.items() if not result.startswith("ok")]
    body = {"status": "unavailable" if failing else "ok", "checks": checks}
    if failing:
        body["failing"] = failing
    return _no_store(JsonResponse(body, status=503 if failing else 200))
