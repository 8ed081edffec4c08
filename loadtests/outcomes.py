"""How a response is judged: the kind of an error, and what a checkout attempt came to."""

from collections.abc import Mapping

# Error kinds, as counted in summary.json.
TIMEOUT = "timeout"
CONNECTION = "connection"
SERVER_ERROR = "server_error"
CLIENT_ERROR = "client_error"
THROTTLED = "throttled"
STOCK_MISMATCH = "stock_mismatch"
BAD_RESPONSE = "bad_response"
REPLAY_MISMATCH = "replay_mismatch"
# A 503 "overloaded" from the nginx front (with Retry-After): load refused on purpose, at once, not a failure.
SHED = "shed"
# A doorbuster sale past the per-session limit.
LIMIT_BROKEN = "limit_broken"
# The "5xx + timeout" rate the run is judged on: the server failed or never answered.
FATAL_KINDS = frozenset({TIMEOUT, CONNECTION, SERVER_ERROR})

# What a checkout attempt came to.
CREATED = "created"
SOLD_OUT = "sold_out"
IN_STOCK_409 = "in_stock_409"
# A 409 from the flash-sale gate (reason "sold_out") while the inventory still showed the units: orders admitted by
# the gate but not yet committed, or refused and not yet given back. The gate may undersell for that moment
# (docs/doorbuster.md): counted and reported, not failed.
GATE_UNDERSELL = "gate_undersell"
# A 409 insufficient_stock whose stock was not read back (bots never check; a shopper's read failed).
UNVERIFIED_409 = "unverified_409"
# The doorbuster (docs/doorbuster.md): a 409 limit_exceeded is the per-session limit refusing a unit past it, as
# it must; a 201 past the limit is a sale it should have refused; a 409 sale_not_started came before the start.
LIMIT_REFUSED = "limit_refused"
OVER_LIMIT = "over_limit"
NOT_STARTED = "sale_not_started"
RATE_LIMITED = "rate_limited"
OVERLOADED = "overloaded"
REJECTED = "rejected"
FAILED = "failed"
NO_ANSWER = "no_answer"
# Outcomes of a shopper's valid attempt: the sale happened, or the product really was sold out.
SUCCESSFUL_OUTCOMES = frozenset({CREATED, SOLD_OUT, GATE_UNDERSELL})
OUTCOME_STATUS = {
    CREATED: "201",
    SOLD_OUT: "409",
    IN_STOCK_409: "409",
    GATE_UNDERSELL: "409",
    UNVERIFIED_409: "409",
    LIMIT_REFUSED: "409 limit_exceeded",
    NOT_STARTED: "409 sale_not_started",
    OVER_LIMIT: "201 over the limit",
    RATE_LIMITED: "429",
    OVERLOADED: "503 overloaded",
    REJECTED: "other 4xx",
    FAILED: "5xx",
    NO_ANSWER: "no answer",
}


def is_timeout(exception: BaseException | None) -> bool:
    if exception is None:
        return False
    if isinstance(exception, TimeoutError):
        return True
    # gevent.Timeout and geventhttpclient's errors are not TimeoutError subclasses.
    return "timeout" in type(exception).__name__.lower() or "timed out" in str(exception).lower()


def error_kind(*, status: int | None, exception: BaseException | None, context: Mapping) -> str | None:
    """The kind of a failed request; None for a request locust counted as a success."""
    if exception is None:
        return None
    if context.get("error_kind"):
        return context["error_kind"]
    if not status:
        return TIMEOUT if is_timeout(exception) else CONNECTION
    if status >= 500:
        return SERVER_ERROR
    if status == 429:
        return THROTTLED
    if status >= 400:
        return CLIENT_ERROR
    return BAD_RESPONSE


def checkout_outcome(
    *,
    status: int | None,
    code: str | None,
    product_ids: list,
    product_id: int,
    quantity: int,
    available: int | None,
    reason: str | None = None,
) -> str:
    """What one checkout came to. `available` is the product's `available` units (on hand less other carts'
    holds) read after a 409 (None when not read).

    A 409 insufficient_stock is only right when the product really lacks the quantity asked for: stock only
    falls during a run, so enough units available after the 409 means the checkout refused a sale it could make,
    unless the flash-sale gate refused it (`reason` "sold_out"): then it is the gate's momentary undersell.
    """
    if status == 201:
        return CREATED
    if status == 409 and code == "insufficient_stock" and product_id in product_ids:
        if available is None:
            return UNVERIFIED_409
        if available < quantity:
            return SOLD_OUT
        return GATE_UNDERSELL if reason == "sold_out" else IN_STOCK_409
    if status == 429:
        return RATE_LIMITED
    if status == 503 and code == "overloaded":
        return OVERLOADED
    if not status:
        return NO_ANSWER
    if status >= 500:
        return FAILED
    return REJECTED


def doorbuster_outcome(
    *,
    status: int | None,
    code: str | None,
    reason: str | None,
    product_ids: list,
    product_id: int,
    available: int | None,
    bought_before: int,
    limit: int | None,
) -> str:
    """What one attempt on the doorbuster product (one unit) came to, for a session that had `bought_before` units
    of it with a per-session `limit` (None: no limit). Beyond checkout_outcome: a 201 past the limit is OVER_LIMIT,
    a 409 limit_exceeded is LIMIT_REFUSED (right only once the session holds its limit: before, IN_STOCK_409, a
    refusal of a sale it could make), and a 409 sale_not_started is NOT_STARTED."""
    if status == 201:
        return OVER_LIMIT if limit is not None and bought_before >= limit else CREATED
    if status == 409 and code == "limit_exceeded" and product_id in product_ids:
        return LIMIT_REFUSED if limit is not None and bought_before + 1 > limit else IN_STOCK_409
    if status == 409 and code == "insufficient_stock" and reason == "sale_not_started":
        return NOT_STARTED
    return checkout_outcome(
        status=status,
        code=code,
        product_ids=product_ids,
        product_id=product_id,
        quantity=1,
        available=available,
        reason=reason,
    )
