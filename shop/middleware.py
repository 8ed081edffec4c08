"""Request logging and the answer a request gets when the database does not answer in time."""

import logging
import time

from django.contrib.messages.middleware import MessageMiddleware
from django.db import OperationalError
from django.http import JsonResponse

from shop.logs import BufferedLines, request_line

request_log = logging.getLogger("shop.request")
request_lines = BufferedLines()
db_log = logging.getLogger("shop.db")

DB_RETRY_AFTER_SECONDS = 5
API_PREFIX = "/api/"


def request_id(request) -> str:
    meta = request.META
    return meta.get("HTTP_X_AMZN_TRACE_ID") or meta.get("HTTP_X_AMZ_CF_ID") or ""


class RequestLogMiddleware:
    """One structured line per request: method, path, status, duration, cache status, request id.

    Written through shop.logs.BufferedLines rather than a logging call (see there why); the level of the
    `shop.request` logger (LOG_LEVEL) still decides whether lines are written.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        if request_log.isEnabledFor(logging.INFO):
            request_lines.append(
                request_line(
                    created=time.time(),
                    method=request.method,
                    path=request.path,
                    status=response.status_code,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    cache=response.get("X-Cache-Status", ""),
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
    response = JsonResponse(
        {"code": "database_unavailable", "detail": "The database did not answer in time; retry shortly."},
        status=503,
    )
    response["Retry-After"] = str(DB_RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class PageMessageMiddleware(MessageMiddleware):
    """Django's messages for pages (the admin, the storefront), not for the API, which never adds or shows one.

    Building the message storage (a cookie store and a session store) for each API request was about 3% of a
    checkout's CPU in the web worker. On an API request, messages.add_message() raises MessageFailure.
    """

    def process_request(self, request):
        if not request.path_info.startswith(API_PREFIX):
            super().process_request(request)
