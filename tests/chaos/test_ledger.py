"""How the chaos table counts lost and doubled orders, stock drift, and which broken checks fail a run."""

from chaos.client import Checkout, Reply, Traffic
from chaos.expectations import EXPECTATIONS
from chaos.faults import Measured
from chaos.ledger import Ledger, ledger_count, stock_drift
from chaos.table import Result, evaluate, format_table


def reply(
    status: str,
    *,
    order_id: int | None = None,
    code: str = "",
    kind: str = "checkout",
    latency=0.1,
    retry_after: str = "1",
) -> Reply:
    return Reply(
        kind=kind, status=status, latency=latency, started=0.0, code=code, order_id=order_id, retry_after=retry_after
    )


def checkout(key: str, *replies: Reply) -> Checkout:
    return Checkout(key=key, token="t", product_id=1, quantity=1, replies=list(replies))


STOCK = {1: (100, 0)}


def test_each_201_with_its_one_order_counts_nothing():
    checkouts = {"a": checkout("a", reply("201", order_id=7)), "b": checkout("b", reply("409", code="x"))}

    ledger = ledger_count(checkouts=checkouts, rows={"a": [7]}, before=STOCK, after={1: (99, 1)})

    assert ledger == Ledger(orders=1, lost=0, doubled=0, unresolved=0, stock_drift=0)


def test_a_201_without_its_order_row_is_lost():
    checkouts = {"a": checkout("a", reply("201", order_id=7)), "b": checkout("b", reply("201", order_id=8))}

    ledger = ledger_count(checkouts=checkouts, rows={"a": [7], "b": [9]}, before=STOCK, after={1: (98, 2)})

    assert ledger.lost == 1  # b was told order 8; the row says 9


def test_two_orders_for_one_key_or_an_order_the_client_was_told_failed_are_doubled():
    checkouts = {
        "twice": checkout("twice", reply("201", order_id=7)),
        "told_failed": checkout("told_failed", reply("409", code="insufficient_stock")),
    }

    ledger = ledger_count(
        checkouts=checkouts, rows={"twice": [7, 8], "told_failed": [9]}, before=STOCK, after={1: (97, 3)}
    )

    assert ledger.doubled == 2


def test_a_checkout_still_in_doubt_is_unresolved_not_doubled():
    checkouts = {
        "cut": checkout("cut", reply("reset")),
        "held": checkout("held", reply("503"), reply("409", code="request_in_progress")),
    }

    ledger = ledger_count(checkouts=checkouts, rows={"cut": [7]}, before=STOCK, after={1: (99, 1)})

    assert (ledger.unresolved, ledger.doubled, ledger.lost) == (2, 0, 0)


def test_stock_drift_is_stock_taken_against_units_sold():
    before = {1: (100, 10), 2: (50, 0)}

    assert stock_drift(before, {1: (95, 15), 2: (50, 0)}) == 0
    assert stock_drift(before, {1: (94, 15), 2: (50, 0)}) == 1  # a unit taken without an order line
    assert stock_drift(before, {1: (95, 15), 2: (50, 2)}) == 2  # two units sold without being taken


def result_of(name: str, replies: list[Reply], ledger: Ledger) -> Result:
    result = Result(name, measured=Measured(Traffic(url="", tokens=[], product_ids=[], replies=replies)), ledger=ledger)
    result.checks = evaluate(result)
    return result


CLEAN = Ledger(orders=1, lost=0, doubled=0, unresolved=0, stock_drift=0)


def test_a_promise_outside_strict_is_reported_not_failed():
    assert "worst_s" not in EXPECTATIONS["redis_frozen"].strict
    slow = [reply("201", latency=1.5), reply("200", kind="health", latency=0.2)]

    result = result_of("redis_frozen", slow, CLEAN)

    assert result.failed == []
    assert [check.name for check in result.not_yet] == ["worst_s"]
    assert "not yet: worst_s" in format_table([result])


def test_a_strict_promise_or_an_invariant_fails_the_run():
    assert "statuses" in EXPECTATIONS["redis_killed"].strict
    replies = [reply("503"), reply("500"), reply("200", kind="health")]

    result = result_of("redis_killed", replies, Ledger(orders=1, lost=1, doubled=0, unresolved=0, stock_drift=3))

    assert {check.name for check in result.failed} == {"lost", "stock_drift", "defined_statuses", "statuses"}
    assert "FAILED" in format_table([result])


def test_a_shed_checkout_is_an_outcome_of_its_own_not_an_error_nor_in_doubt():
    checkouts = {"shed": checkout("shed", reply("shed", code="overloaded"))}

    ledger = ledger_count(checkouts=checkouts, rows={}, before=STOCK, after=STOCK)
    result = result_of("baseline", [reply("201", order_id=7), reply("shed", code="overloaded")], CLEAN)

    assert ledger == Ledger(orders=0, lost=0, doubled=0, unresolved=0, stock_drift=0)
    assert result.failed == [] and result.not_yet == []
    assert "shed:1" in format_table([result])


def test_a_shed_checkout_with_an_order_row_is_doubled():
    checkouts = {"shed": checkout("shed", reply("shed", code="overloaded"))}

    ledger = ledger_count(checkouts=checkouts, rows={"shed": [7]}, before=STOCK, after={1: (99, 1)})

    assert ledger.doubled == 1


def test_a_503_without_retry_after_breaks_its_promise():
    result = result_of("db_refused", [reply("503", code="database_unavailable", retry_after="")], CLEAN)

    assert [check.name for check in result.not_yet + result.failed] == ["retry_after"]


def test_the_overload_promises_count_admitted_and_shed_apart():
    replies = [reply("201", latency=0.5)] * 99 + [reply("shed", code="overloaded", latency=0.01)] * 300

    result = result_of("overload_4x", replies, CLEAN)

    assert not {"admitted_p99_s", "shed_p99_s", "statuses"} & {c.name for c in result.failed + result.not_yet}


def test_a_frozen_database_answered_past_its_budget_fails_the_run():
    slow = [reply("503", code="database_unavailable", latency=12.5), reply("200", kind="health", latency=1.2)]

    result = result_of("db_frozen", slow, CLEAN)

    assert {check.name for check in result.failed} == {"worst_s", "health_s"}


def test_a_request_at_the_hang_bound_breaks_the_invariant():
    result = result_of("db_frozen", [reply("timeout", latency=30.0)], CLEAN)

    assert "no_hang" in {check.name for check in result.failed}
