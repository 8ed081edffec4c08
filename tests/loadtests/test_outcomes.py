import pytest

from loadtests import outcomes


@pytest.mark.parametrize(
    ("status", "code", "product_ids", "available", "expected"),
    [
        (201, None, [], None, outcomes.CREATED),
        (409, "insufficient_stock", [7], 1, outcomes.SOLD_OUT),
        (409, "insufficient_stock", [7], 0, outcomes.SOLD_OUT),
        (409, "insufficient_stock", [7], 2, outcomes.IN_STOCK_409),
        (409, "insufficient_stock", [7], None, outcomes.UNVERIFIED_409),
        (409, "insufficient_stock", [8], 0, outcomes.REJECTED),
        (409, "request_in_progress", [], None, outcomes.REJECTED),
        (429, "rate_limited", [], None, outcomes.RATE_LIMITED),
        (401, "session_invalid", [], None, outcomes.REJECTED),
        (503, "database_unavailable", [], None, outcomes.FAILED),
        (503, "overloaded", [], None, outcomes.OVERLOADED),
        (0, None, [], None, outcomes.NO_ANSWER),
    ],
)
def test_checkout_outcome_a_409_is_only_sold_out_when_too_few_are_available(
    status, code, product_ids, available, expected
):
    outcome = outcomes.checkout_outcome(
        status=status, code=code, product_ids=product_ids, product_id=7, quantity=2, available=available
    )

    assert outcome == expected


@pytest.mark.parametrize(
    ("available", "reason", "expected"),
    [
        (5, "sold_out", outcomes.GATE_UNDERSELL),
        (0, "sold_out", outcomes.SOLD_OUT),
        (5, None, outcomes.IN_STOCK_409),
        (5, "sale_not_started", outcomes.IN_STOCK_409),
    ],
)
def test_checkout_outcome_a_gate_409_with_units_available_is_its_undersell_not_a_mismatch(available, reason, expected):
    outcome = outcomes.checkout_outcome(
        status=409,
        code="insufficient_stock",
        product_ids=[7],
        product_id=7,
        quantity=2,
        available=available,
        reason=reason,
    )

    assert outcome == expected
    assert (outcome in outcomes.SUCCESSFUL_OUTCOMES) == (expected != outcomes.IN_STOCK_409)


@pytest.mark.parametrize(
    ("status", "exception", "context", "expected"),
    [
        (200, None, {}, None),
        (0, TimeoutError("timed out"), {}, outcomes.TIMEOUT),
        (0, ConnectionRefusedError(111, "Connection refused"), {}, outcomes.CONNECTION),
        (502, RuntimeError("502"), {}, outcomes.SERVER_ERROR),
        (429, RuntimeError("429"), {}, outcomes.THROTTLED),
        (404, RuntimeError("404"), {}, outcomes.CLIENT_ERROR),
        (409, RuntimeError("409"), {"error_kind": outcomes.STOCK_MISMATCH}, outcomes.STOCK_MISMATCH),
        (201, RuntimeError("no order id"), {}, outcomes.BAD_RESPONSE),
        (503, RuntimeError("503"), {"error_kind": outcomes.SHED}, outcomes.SHED),
    ],
)
def test_error_kind_classifies_failed_requests(status, exception, context, expected):
    assert outcomes.error_kind(status=status, exception=exception, context=context) == expected


def test_is_timeout_recognises_gevent_style_timeouts_by_name():
    class Timeout(BaseException):
        pass

    assert outcomes.is_timeout(Timeout()) is True
    assert outcomes.is_timeout(OSError("connection reset")) is False


@pytest.mark.parametrize(
    ("status", "code", "reason", "available", "bought_before", "expected"),
    [
        (201, None, None, None, 0, outcomes.CREATED),
        (201, None, None, None, 1, outcomes.CREATED),
        (201, None, None, None, 2, outcomes.OVER_LIMIT),
        (409, "limit_exceeded", None, None, 2, outcomes.LIMIT_REFUSED),
        (409, "limit_exceeded", None, None, 1, outcomes.IN_STOCK_409),
        (409, "insufficient_stock", "sold_out", 0, 0, outcomes.SOLD_OUT),
        (409, "insufficient_stock", "sold_out", 3, 0, outcomes.GATE_UNDERSELL),
        (409, "insufficient_stock", None, 3, 0, outcomes.IN_STOCK_409),
        (409, "insufficient_stock", "sold_out", None, 0, outcomes.UNVERIFIED_409),
        (409, "insufficient_stock", "sale_not_started", None, 0, outcomes.NOT_STARTED),
        (429, "rate_limited", None, None, 0, outcomes.RATE_LIMITED),
        (503, "overloaded", None, None, 0, outcomes.OVERLOADED),
    ],
)
def test_doorbuster_outcome_judges_the_limit_and_the_gate(status, code, reason, available, bought_before, expected):
    outcome = outcomes.doorbuster_outcome(
        status=status,
        code=code,
        reason=reason,
        product_ids=[7] if status == 409 else [],
        product_id=7,
        available=available,
        bought_before=bought_before,
        limit=2,
    )

    assert outcome == expected


def test_doorbuster_outcome_without_a_limit_never_calls_a_sale_over_it():
    outcome = outcomes.doorbuster_outcome(
        status=201, code=None, reason=None, product_ids=[], product_id=7, available=None, bought_before=9, limit=None
    )

    assert outcome == outcomes.CREATED
