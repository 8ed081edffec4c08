"""Request logging, the limits a request's body must keep, and the JSON answers the shop gives when it refuses one
or when the database does not answer in time."""

import logging
import time

from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware
from django.db import OperationalError
from django.http import JsonResponse

from shop.logs import BufferedLines, request_line
from shop.metrics import app_metrics

request_log = logging.getLogger("shop.request")
request_lines = BufferedLines()
db_log = logging.getLogger("shop.db")

DB_RETRY_AFTER_SECONDS = 5
API_PREFIX = "/api/"


def json_error(status: int, code: str, detail: str, *, retry_after: int | None = None) -> JsonResponse:
    """The one shape of every refusal under /api/: {"code", "detail"}, never cached."""
    response = JsonResponse({"code": code, "detail": detail}, status=status)
    response["Cache-Control"] = "no-store"
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def request_id(request) -> str:
    meta = request.META
    return meta.get("HTTP_X_AMZN_TRACE_ID") or meta.get("HTTP_X_AMZ_CF_ID") or ""


class RequestLogMiddleware:
    """One structured line per request: method, path, status, duration, cache status, request id; and the same
    request counted in the app's metrics (shop.metrics, when METRICS_EMF_FILE is set).

    Written through shop.logs.BufferedLines rather than a logging call (see there why); the level of the
    `shop.request` logger (LOG_LEVEL) still decides whether lines are written.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        app_metrics.configure(
            path=settings.METRICS_EMF_FILE,
            namespace=settings.METRICS_NAMESPACE,
            interval=settings.METRICS_INTERVAL_SECONDS,
            properties={"version": settings.VERSION},
        )

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        cache = response.get("X-Cache-Status", "")
        if app_metrics.enabled:
            app_metrics.request(request.path_info, response.status_code, duration_ms, cache, response)
        if request_log.isEnabledFor(logging.INFO):
            request_lines.append(
                request_line(
                    created=time.time(),
                    method=request.method,
                    path=request.path,
                    status=response.status_code,
                    duration_ms=duration_ms,
                    cache=cache,
                    rid=request_id(request),
                )
            )
        return response


class DatabaseUnavailableMiddleware:
    """A statement or connect timeout becomes a 503 with Retry-After rather than a hung worker or a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError):
            return None
        db_log.error("database unavailable", extra={"path": request.path, "error": str(exception).strip()})
        return database_unavailable_response()


def database_unavailable_response() -> JsonResponse:
    return json_error(
        503,
        "database_unavailable",
        "The database did not answer in time; retry shortly.",
        retry_after=DB_RETRY_AFTER_SECONDS,
    )


class RequestBodyLimitMiddleware:
    """Refuses a body the shop will not read, before anything reads it.

    Over DATA_UPLOAD_MAX_MEMORY_SIZE by its Content-Length: 413. A body without a length (Transfer-Encoding:
    chunked): 411, because Django reads CONTENT_LENGTH bytes and would otherwise see an empty body. Behind nginx
    neither reaches the app: nginx reads chunked bodies whole and forwards them with a Content-Length, and refuses
    an oversized one with the same 413.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        if meta.get("HTTP_TRANSFER_ENCODING", "identity").lower() != "identity":
            return json_error(411, "length_required", "Send the body with a Content-Length.")
        try:
            too_big = int(meta.get("CONTENT_LENGTH") or 0) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        except ValueError:
            return json_error(400, "bad_request", "Content-Length is not a number.")
        if too_big:
            return body_too_large_response()
        return self.get_response(request)


def body_too_large_response() -> JsonResponse:
    return json_error(413, "body_too_large", f"The request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")


class PageMessageMiddleware(MessageMiddleware):
    """Django's messages for pages (the admin, the storefront), not for the API, which never adds or shows one.

    Building the message storage (a cookie store and a session store) for each API request was about 3% of a
    checkout's CPU in the web worker. On an API request, messages.add_message() raises MessageFailure.
    """

    def process_request(self, request):
        if not request.path_info.startswith(API_PREFIX):
            super().process_request(request)
