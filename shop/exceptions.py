"""Domain exceptions and their one mapping to HTTP: DRF's handler for every API view, Django's error handlers for
what fails before or outside a view. Under /api/ every refusal is JSON {"code", "detail"}; pages keep Django's.
"""

import logging

from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.http import HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from shop.middleware import API_PREFIX, DB_RETRY_AFTER_SECONDS, body_too_large_response, json_error


class DomainError(Exception):
    """A rule of the shop was broken by the request. Subclasses set status and code."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "bad_request"
    headers: dict[str, str] = {}

    def __init__(self, detail: str, **extra):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict:
        return {"code": self.code, "detail": self.detail, **self.extra}


def domain_error_response(exc: DomainError) -> JsonResponse:
    """The answer to a DomainError raised outside a DRF view (catalog.middleware), as the handler below gives it."""
    response = JsonResponse(exc.body(), status=exc.status_code, headers=exc.headers or None)
    response["Cache-Control"] = "no-store"
    return response


def api_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        set_rollback()
        return Response(exc.body(), status=exc.status_code, headers=exc.headers or None)
    if isinstance(exc, OperationalError):
        set_rollback()
        return Response(
            {"code": "database_unavailable", "detail": "The database did not answer in time; retry shortly."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DB_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, RequestDataTooBig):
        return body_too_large_response()
    response = exception_handler(exc, context)
    if response is not None:
        detail = response.data
        code = getattr(exc, "default_code", "error")
        if isinstance(detail, dict) and set(detail) == {"detail"}:
            response.data = {"code": code, "detail": str(detail["detail"])}
        else:
            response.data = {"code": code, "detail": "Invalid request.", "errors": detail}
    return response


def api_response(data, *, status: int, headers: dict[str, str] | None = None) -> HttpResponse:
    """`data` as the API's views render it (DRF's JSONRenderer, the bytes a view's Response would have), kept as
    `.data` too, as on a DRF Response (shop.metrics reads a checkout refusal's reason there)."""
    response = HttpResponse(_renderer.render(data), status=status, headers=headers, content_type="application/json")
    response.data = data
    return response


def api_error_response(exc: Exception) -> HttpResponse | None:
    """The answer api_exception_handler gives `exc`, rendered outside a view (checkout.middleware); None for an
    exception a view would not catch either (a bug: the caller re-raises it)."""
    if isinstance(exc, DomainError):  # the handler's answer, without building a DRF Response first
        return api_response(exc.body(), status=exc.status_code, headers=exc.headers or None)
    response = api_exception_handler(exc, {})
    if isinstance(response, Response):
        headers = {name: value for name, value in response.items() if name.lower() != "content-type"}
        return api_response(response.data, status=response.status_code, headers=headers)
    return response


_renderer = JSONRenderer()


def _is_api(request) -> bool:
    return request.path_info.startswith(API_PREFIX)


def bad_request(request, exception):
    """handler400: a bad Host, a body Django refused (RequestDataTooBig), any SuspiciousOperation."""
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return body_too_large_response()
    return json_error(400, "bad_request", "The request is malformed or names a host this shop does not serve.")


def permission_denied(request, exception):
    if not _is_api(request):
        return defaults.permission_denied(request, exception)
    return json_error(403, "permission_denied", "You do not have permission to perform this action.")


def page_not_found(request, exception):
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    return json_error(404, "not_found", "No API endpoint at this path.")


def server_error(request):
    if not _is_api(request):
        return defaults.server_error(request)
    return json_error(500, "server_error", "The server failed to answer; the error is logged.")


class ClientErrorFilter(logging.Filter):
    """A refused client request (status below 500) is one warning line, never a traceback.

    Django logs each SuspiciousOperation (a bad Host, a body over the limit) at ERROR with its traceback; a client
    can send those as fast as it likes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", 500) < 500:
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
