"""Domain exceptions and their one mapping to HTTP, used by DRF for every API view."""

from django.db import OperationalError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from shop.middleware import DB_RETRY_AFTER_SECONDS


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
    response = exception_handler(exc, context)
    if response is not None:
        detail = response.data
        code = getattr(exc, "default_code", "error")
        if isinstance(detail, dict) and set(detail) == {"detail"}:
            response.data = {"code": code, "detail": str(detail["detail"])}
        else:
            response.data = {"code": code, "detail": "Invalid request.", "errors": detail}
    return response
