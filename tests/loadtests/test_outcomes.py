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
