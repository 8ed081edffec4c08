"""What a checkout request can get wrong, each with its HTTP status (mapped once in shop.exceptions)."""

from shop.exceptions import DomainError


class InvalidRequest(DomainError):
    status_code = 400
    code = "invalid_request"


class SessionRequired(DomainError):
    status_code = 401
    code = "session_required"

    def __init__(self):
        super().__init__("Send the session token from POST /api/sessions as X-Session-Token or session_token.")


class SessionInvalid(DomainError):
    status_code = 401
    code = "session_invalid"

    def __init__(self):
        super().__init__("The session token is unknown or has expired; create a new session.")


class OrderNotFound(DomainError):
    status_code = 404
    code = "order_not_found"

    def __init__(self, *, order_id: int | str):
        super().__init__(f"No order {order_id} for this session.")


class RequestInProgress(DomainError):
    status_code = 409
    code = "request_in_progress"

    def __init__(self):
        super().__init__("A request with this Idempotency-Key is still being processed; retry shortly.")


class IdempotencyKeyReused(DomainError):
    status_code = 422
    code = "idempotency_key_reused"

    def __init__(self):
        super().__init__("This Idempotency-Key was already used with a different request body.")


class ReplayedError(DomainError):
    """The stored failure of an earlier request with the same Idempotency-Key, answered again as it was."""

    def __init__(self, *, status_code: int, body: dict):
        super().__init__(body.get("detail", ""))
        self.status_code = status_code
        self.stored_body = body

    def body(self) -> dict:
        return self.stored_body


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, *, retry_after: int):
        super().__init__(f"Too many requests; retry in {retry_after} s.", retry_after=retry_after)
        self.headers = {"Retry-After": str(retry_after)}


class PurchaseLimitExceeded(DomainError):
    status_code = 409
    code = "limit_exceeded"

    def __init__(self, *, product_ids: list[int]):
        names = ", ".join(str(pid) for pid in product_ids)
        super().__init__(
            f"This session may buy no more of product(s) {names}: each allows a limited number per shopper.",
            product_ids=product_ids,
        )
        self.product_ids = product_ids


class HoldLimitExceeded(DomainError):
    status_code = 409
    code = "hold_limit_exceeded"

    def __init__(self, detail: str):
        super().__init__(detail)


class HoldNotAllowed(DomainError):
    status_code = 409
    code = "hold_not_allowed"

    def __init__(self, *, product_id: int):
        super().__init__(
            f"Product {product_id} is on flash sale: it sells first come, first served at checkout and cannot be held.",
            product_ids=[product_id],
        )


class CartEmpty(DomainError):
    status_code = 409
    code = "cart_empty"

    def __init__(self):
        super().__init__("The cart holds nothing to check out; add lines with PUT /api/cart/items/<product_id>.")
