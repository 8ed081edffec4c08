"""HTTP for the checkout: sessions, checkout and order lookup. Rules live in services; errors map in shop.exceptions."""

import re

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from catalog.apis import URI_TOO_LONG
from checkout.carts import cart_checkout, cart_get, cart_line_remove, cart_line_set
from checkout.exceptions import InvalidRequest, OrderNotFound
from checkout.ratelimit import client_ip, ratelimit_ip, ratelimit_session
from checkout.selectors import order_get_for_session, session_get_by_token
from checkout.serializers import (
    SESSION_TOKEN_MAX_LENGTH,
    CartItemInputSerializer,
    CartOutputSerializer,
    CheckoutErrorSerializer,
    CheckoutInputSerializer,
    OrderOutputSerializer,
    SessionOutputSerializer,
    cart_item_input,
    cart_output,
    checkout_input,
    order_output,
)
from checkout.services import checkout_place, session_create
from shop.apis import NO_STORE, NoStoreApi
from shop.exceptions import api_error_response, api_response

# 1-255 printable ASCII characters, no blank at either end (an HTTP server strips those from a header value).
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?")
MAX_ORDER_ID = 2**63 - 1  # a bigint primary key
CHECKOUT_PATH = "/api/checkout"
CHECKOUT_ALLOW = "POST, OPTIONS"  # what DRF puts in the Allow header of CheckoutApi's answers

SESSION_HEADER = OpenApiParameter(
    "X-Session-Token",
    {"type": "string", "minLength": 1, "maxLength": SESSION_TOKEN_MAX_LENGTH, "pattern": "^[\\u0021-\\u007e]+$"},
    OpenApiParameter.HEADER,
    description="The token from POST /api/sessions (printable ASCII, no blanks); any other value is 401.",
)
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[\\u0021-\\u007e]([\\u0020-\\u007e]*[\\u0021-\\u007e])?$",
    },
    OpenApiParameter.HEADER,
    description="1-255 printable ASCII characters, no blank at either end, kept 24 h per session: a repeat gets "
    "the first answer again. Any other value is 400.",
)


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(CheckoutErrorSerializer, description=description)


RATE_LIMITED = _error("rate_limited: per client IP, and per session on checkout; header Retry-After in seconds.")
SESSION_MISSING = _error("No session token (session_required), or unknown or expired (session_invalid).")


class SessionCreateApi(NoStoreApi):
    @extend_schema(
        operation_id="session_create",
        request=None,
        responses={201: SessionOutputSerializer, 429: RATE_LIMITED},
        summary="Start a guest shopper session (24 h).",
    )
    def post(self, request):
        ratelimit_ip(request, scope="sessions", rate=settings.RATELIMIT_SESSIONS_PER_IP)
        session, token = session_create()
        body = SessionOutputSerializer({"session_token": token, "expires_at": session.expires_at}).data
        return Response(body, status=status.HTTP_201_CREATED)


class BodyRequiredSchema(AutoSchema):
    """drf-spectacular marks a body required only when one of its fields is; a checkout's needs one of two shapes."""

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        body["required"] = True
        return body


class CheckoutApi(NoStoreApi):
    schema = BodyRequiredSchema()

    @extend_schema(
        operation_id="checkout",
        request=CheckoutInputSerializer,
        parameters=[SESSION_HEADER, IDEMPOTENCY_HEADER],
        responses={
            201: OrderOutputSerializer,
            400: _error("Malformed JSON, a missing or invalid field, too many lines or units, a bad Idempotency-Key."),
            401: SESSION_MISSING,
            404: _error("product_not_found: product_ids names the unknown products."),
            409: _error(
                "insufficient_stock (product_ids: the lines short of stock; nothing was written; reason, when given: "
                "sold_out (refused by the flash-sale gate) or sale_not_started), limit_exceeded (product_ids: "
                "products this session may buy no more of), or request_in_progress (a request with this "
                "Idempotency-Key is still running)."
            ),
            422: _error("idempotency_key_reused: this Idempotency-Key came with a different body."),
            429: RATE_LIMITED,
        },
        summary="Buy one or more products at their current prices, all or nothing.",
    )
    def post(self, request):
        # A JSON body is answered by checkout.middleware before the request gets here; this view sees the bodies
        # DRF's parser must judge (another media type, malformed JSON, none), and the schema.
        return checkout_answer(request, request.data)


def checkout_answer(request, data) -> HttpResponse:
    """The answer to POST /api/checkout with its body parsed to `data`: the order (201) or the refusal, rendered
    as DRF renders them (shop.exceptions.api_error_response), with the headers CheckoutApi adds."""
    try:
        ratelimit_ip(request, scope="checkout", rate=settings.RATELIMIT_CHECKOUT_PER_IP)
        lines, body_token = checkout_input(data)
        idempotency_key = _idempotency_key(request)
        token = request.META.get("HTTP_X_SESSION_TOKEN")
        if token is None:
            token = body_token
        if token:
            ratelimit_session(request, token=token, rate=settings.RATELIMIT_CHECKOUT_PER_SESSION)
        order = checkout_place(token=token, lines=lines, idempotency_key=idempotency_key)
    except Exception as exc:
        response = api_error_response(exc)
        if response is None:
            raise
    else:
        response = api_response(order_output(order), status=status.HTTP_201_CREATED)
    response["Cache-Control"] = NO_STORE
    response["Allow"] = CHECKOUT_ALLOW
    return response


class OrderDetailApi(NoStoreApi):
    @extend_schema(
        operation_id="order_detail",
        parameters=[
            OpenApiParameter(
                "X-Session-Token",
                SESSION_HEADER.type,
                OpenApiParameter.HEADER,
                required=True,
                description=SESSION_HEADER.description,
            ),
            OpenApiParameter(
                "order_id", {"type": "integer", "minimum": 1, "maximum": MAX_ORDER_ID}, OpenApiParameter.PATH
            ),
        ],
        responses={
            200: OrderOutputSerializer,
            401: SESSION_MISSING,
            404: _error("order_not_found: no such order for this session."),
            414: URI_TOO_LONG,
        },
        summary="An order, for the session that placed it.",
    )
    def get(self, request, order_id: str):
        session = session_get_by_token(token=request.META.get("HTTP_X_SESSION_TOKEN"))
        if not (order_id.isascii() and order_id.isdigit()) or len(order_id) > 19 or int(order_id) > MAX_ORDER_ID:
            raise OrderNotFound(order_id=order_id)
        order = order_get_for_session(order_id=int(order_id), session=session)
        return Response(OrderOutputSerializer(order).data)


class CartApi(NoStoreApi):
    @extend_schema(
        operation_id="cart_retrieve",
        parameters=[SESSION_HEADER],
        responses={200: CartOutputSerializer, 401: SESSION_MISSING},
        summary="The session's cart: the lines it holds and until when.",
    )
    def get(self, request):
        session = session_get_by_token(token=request.META.get("HTTP_X_SESSION_TOKEN"))
        return Response(cart_output(cart_get(session=session)))


PRODUCT_ID_PATH = OpenApiParameter(
    "product_id", {"type": "integer", "minimum": 1, "maximum": MAX_ORDER_ID}, OpenApiParameter.PATH
)


class CartItemApi(NoStoreApi):
    @extend_schema(
        operation_id="cart_item_set",
        request=CartItemInputSerializer,
        parameters=[SESSION_HEADER, PRODUCT_ID_PATH],
        responses={
            200: CartOutputSerializer,
            400: _error(
                "invalid_request: quantity missing, not a whole number, or over the per-line cap; product_id not a "
                "whole number from 1 to 2^63-1."
            ),
            401: SESSION_MISSING,
            404: _error("product_not_found."),
            409: _error(
                "insufficient_stock (not that many units available), limit_exceeded (the product's max_per_session, "
                "counting the session's orders), hold_limit_exceeded (products per cart, units per address), or "
                "hold_not_allowed (the product is on flash sale)."
            ),
            414: URI_TOO_LONG,
        },
        summary="Hold `quantity` units of a product in the cart (0 removes the line); renews the hold's time.",
    )
    def put(self, request, product_id: str):
        pid = _product_id(product_id)
        quantity = cart_item_input(request.data)
        session = cart_line_set(
            token=request.META.get("HTTP_X_SESSION_TOKEN"),
            product_id=pid,
            quantity=quantity,
            client_ip=client_ip(request),
        )
        return Response(cart_output(cart_get(session=session)))

    @extend_schema(
        operation_id="cart_item_remove",
        parameters=[SESSION_HEADER, PRODUCT_ID_PATH],
        responses={
            200: CartOutputSerializer,
            400: _error("invalid_request: product_id is not a whole number from 1 to 2^63-1."),
            401: SESSION_MISSING,
            404: _error("product_not_found."),
            414: URI_TOO_LONG,
        },
        summary="Release the cart's hold of a product (nothing to release is not an error).",
    )
    def delete(self, request, product_id: str):
        session = cart_line_remove(token=request.META.get("HTTP_X_SESSION_TOKEN"), product_id=_product_id(product_id))
        return Response(cart_output(cart_get(session=session)))


class CartCheckoutApi(NoStoreApi):
    @extend_schema(
        operation_id="cart_checkout",
        request=None,
        parameters=[SESSION_HEADER, IDEMPOTENCY_HEADER],
        responses={
            201: OrderOutputSerializer,
            400: _error("A bad Idempotency-Key."),
            401: SESSION_MISSING,
            409: _error(
                "cart_empty; or as POST /api/checkout: insufficient_stock, limit_exceeded, request_in_progress."
            ),
            429: RATE_LIMITED,
        },
        summary="Buy what the cart holds, all or nothing; the holds become the order.",
    )
    def post(self, request):
        ratelimit_ip(request, scope="checkout", rate=settings.RATELIMIT_CHECKOUT_PER_IP)
        token = request.META.get("HTTP_X_SESSION_TOKEN")
        if token:
            ratelimit_session(request, token=token, rate=settings.RATELIMIT_CHECKOUT_PER_SESSION)
        order = cart_checkout(token=token, idempotency_key=_idempotency_key(request))
        return Response(order_output(order), status=status.HTTP_201_CREATED)


def _product_id(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 19 or not 1 <= int(value) <= MAX_ORDER_ID:
        raise InvalidRequest(f"product_id must be a whole number from 1 to {MAX_ORDER_ID}.")
    return int(value)


def _idempotency_key(request) -> str | None:
    key = request.META.get("HTTP_IDEMPOTENCY_KEY")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidRequest("Idempotency-Key must be 1 to 255 printable ASCII characters, no blank at either end.")
    return key
