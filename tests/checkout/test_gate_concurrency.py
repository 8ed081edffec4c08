"""The flash-sale gate under real threads on PostgreSQL and Redis: the gate and the database agree, nothing is
oversold, and a gate lost mid-sale is rebuilt."""

import random
import threading
from collections import Counter

import pytest
from django.db.models import Sum

from catalog import gate
from checkout.models import Order, OrderLine
from tests.checkout.conftest import stock_of
from tests.checkout.test_concurrency import post_checkout, tokens
from tests.checkout.test_concurrency import run_together as run_on_threads
from tests.workers import HEAVY, redis_space_flush

pytestmark = [HEAVY, pytest.mark.django_db(transaction=True)]

# 10,000 attempts take 40-50 s on the shared 2-core machine; most of them are sold-out answers from the gate.
MIXED_ATTEMPTS = 10_000
DOORBUSTER_UNITS = 300
# A bound for a hang, not a speed target: ten times what the races take when the machine is busy.
DEADLINE_SECONDS = 600


def run_together(calls: list) -> list[tuple[int, dict]]:
    """test_concurrency's run_together with this file's deadline; it then stops the calls not yet started and
    waits for those running, so none runs on into the next test."""
    return run_on_threads(calls, deadline=DEADLINE_SECONDS, join_stuck=True)


def sold(product) -> int:
    return OrderLine.objects.filter(product=product).aggregate(total=Sum("quantity"))["total"] or 0


def test_gate_and_database_agree_after_mixed_attempts(needs_postgres, make_product, on_sale):
    # given: a doorbuster, an ordinary product that runs short, and shoppers
    doorbuster = on_sale(make_product(stock=DOORBUSTER_UNITS))
    ordinary = make_product(stock=40)
    shoppers = tokens(50)
    rng = random.Random(21)
    keyed: list[tuple[str, str]] = []

    def attempt(number: int):
        kind = rng.random()
        token = rng.choice(shoppers)
        if kind < 0.6:
            return post_checkout({"product_id": doorbuster.pk, "quantity": rng.choice((1, 2))}, token=token)
        if kind < 0.75:
            items = [{"product_id": doorbuster.pk, "quantity": 1}, {"product_id": ordinary.pk, "quantity": 1}]
            return post_checkout({"items": items}, token=token)
        if kind < 0.85:
            return post_checkout({"product_id": doorbuster.pk, "quantity": 1}, token="not-a-session")
        key = f"key-{number}"
        keyed.append((token, key))
        return post_checkout({"product_id": doorbuster.pk, "quantity": 1}, token=token, key=key)

    calls = [lambda number=number: attempt(number) for number in range(MIXED_ATTEMPTS)]

    # when
    results = run_together(calls)

    # then: every unit sold once, never more; the gate holds what PostgreSQL holds
    statuses = Counter(status for status, _ in results)
    assert set(statuses) <= {201, 401, 409}
    assert stock_of(doorbuster) == 0
    assert sold(doorbuster) == DOORBUSTER_UNITS
    assert stock_of(ordinary) == 40 - sold(ordinary) >= 0
    assert gate.gate_units() == {doorbuster.pk: 0}
    assert statuses[201] == Order.objects.count()
    reasons = Counter(body.get("reason") for status, body in results if status == 409)
    assert reasons["sold_out"] > MIXED_ATTEMPTS / 2, reasons


def test_gate_flushed_mid_sale_is_rebuilt_and_nothing_is_oversold(needs_postgres, make_product, on_sale, needs_redis):
    # given: a doorbuster, and Redis to lose everything after the 150th attempt
    doorbuster = on_sale(make_product(stock=DOORBUSTER_UNITS))
    shoppers = tokens(50)
    body = {"product_id": doorbuster.pk, "quantity": 1}
    started = Counter()
    lock = threading.Lock()

    def attempt(token: str):
        with lock:
            started["n"] += 1
            if started["n"] == 150:
                redis_space_flush(needs_redis)
        return post_checkout(body, token=token)

    # when
    results = run_together([lambda token=token: attempt(token) for token in shoppers * 40])

    # then: all units sold exactly once
    assert Counter(status for status, _ in results).keys() <= {201, 409}
    assert stock_of(doorbuster) == 0
    assert sold(doorbuster) == DOORBUSTER_UNITS == Order.objects.count()
    # the gate was rebuilt from PostgreSQL; orders in flight during the rebuild may leave it a few units above
    # PostgreSQL, and PostgreSQL refuses those few attempts, each taking one unit off until the two agree
    surplus = gate.gate_units()[doorbuster.pk]
    assert 0 <= surplus <= 40
    for _ in range(surplus):
        status, answer = post_checkout(body, token=shoppers[0])
        assert (status, "reason" in answer) == (409, False)
    status, answer = post_checkout(body, token=shoppers[0])
    assert (status, answer["reason"]) == (409, "sold_out")
    assert gate.gate_units() == {doorbuster.pk: 0}


def test_one_session_racing_itself_buys_no_more_than_its_limit(needs_postgres, make_product, on_sale):
    # given: at most 2 per session, one bot session with 30 parallel attempts, and one shopper
    doorbuster = on_sale(make_product(stock=50), max_per_session=2)
    bot, shopper = tokens(2)
    body = {"product_id": doorbuster.pk, "quantity": 1}

    # when
    results = run_together([lambda: post_checkout(body, token=bot) for _ in range(30)])
    shopper_status, _ = post_checkout(body, token=shopper)

    # then
    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 2, 409: 28}
    assert all(answer["code"] == "limit_exceeded" for status, answer in results if status == 409)
    assert shopper_status == 201
    assert stock_of(doorbuster) == 47
    assert gate.gate_units() == {doorbuster.pk: 47}
