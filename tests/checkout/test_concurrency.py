"""Real threads against a real database: a test transaction would hide every race these tests look for."""

import json
import os
import random
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.test import Client

from catalog.models import Inventory
from checkout.models import IdempotencyRecord, Order, OrderLine
from checkout.services import session_create
from tests.checkout.conftest import stock_of
from tests.workers import HEAVY

pytestmark = [HEAVY, pytest.mark.django_db(transaction=True)]

# Well under PostgreSQL's 100 connections, which other test runs on the same server share.
THREADS = 20
DEADLINE_SECONDS = 60


def post_checkout(body: dict, *, token: str, key: str | None = None) -> tuple[int, dict]:
    """One checkout from a worker thread, on that thread's own database connection, closed afterwards."""
    headers = {"X-Session-Token": token}
    if key:
        headers["Idempotency-Key"] = key
    try:
        response = Client().post(
            "/api/checkout", data=json.dumps(body), content_type="application/json", headers=headers
        )
        return response.status_code, response.json()
    finally:
        connection.close()


def run_together(
    calls: list, *, deadline: float = DEADLINE_SECONDS, join_stuck: bool = False
) -> list[tuple[int, dict]]:
    """Run the calls on THREADS threads, released at once; fail (not hang) past `deadline` seconds. The calls not
    yet started are cancelled then; those still running are waited for only with `join_stuck`."""
    start = threading.Event()

    def call(fn):
        start.wait(deadline)
        return fn()

    pool = ThreadPoolExecutor(max_workers=THREADS)
    futures = [pool.submit(call, fn) for fn in calls]
    start.set()
    _, pending = wait(futures, timeout=deadline)
    # Without join_stuck, stuck threads are not waited for: a hang fails this test instead of blocking the run.
    pool.shutdown(wait=join_stuck or not pending, cancel_futures=True)
    assert not pending, f"{len(pending)} checkouts still running after {deadline} s"
    return [future.result() for future in futures]


def tokens(count: int) -> list[str]:
    return [session_create()[1] for _ in range(count)]


def test_hundred_checkouts_of_twenty_units_sell_exactly_twenty(needs_postgres, make_product):
    # given
    product = make_product(stock=20)
    body = {"product_id": product.pk, "quantity": 1}
    shoppers = tokens(100)

    # when
    results = run_together([lambda token=token: post_checkout(body, token=token) for token in shoppers])

    # then
    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 20, 409: 80}
    assert all(body["code"] == "insufficient_stock" for status, body in results if status == 409)
    assert stock_of(product) == 0
    assert Order.objects.count() == 20
    assert OrderLine.objects.aggregate(units=Sum("quantity"))["units"] == 20
    assert len({body["order_id"] for status, body in results if status == 201}) == 20


def test_carts_over_the_same_products_in_opposite_orders_never_deadlock_or_oversell(needs_postgres, make_product):
    # given: four products, carts listing them ascending or descending, more demand than stock
    products = [make_product(stock=30) for _ in range(4)]
    initial = {p.pk: 30 for p in products}
    rng = random.Random(7)
    carts = []
    for index in range(60):
        ordered = products if index % 2 else list(reversed(products))
        carts.append({"items": [{"product_id": p.pk, "quantity": rng.randint(1, 3)} for p in ordered]})
    shoppers = tokens(len(carts))

    # when
    calls = [
        lambda cart=cart, token=token: post_checkout(cart, token=token)
        for cart, token in zip(carts, shoppers, strict=True)
    ]
    results = run_together(calls)

    # then: only sales and clean refusals (a deadlock would be a 500 or a 503)
    statuses = Counter(status for status, _ in results)
    assert set(statuses) <= {201, 409}, statuses
    assert statuses[201] > 0 and statuses[409] > 0
    final = dict(Inventory.objects.values_list("product_id", "quantity"))
    sold_in_lines = dict(
        OrderLine.objects.values("product_id").annotate(units=Sum("quantity")).values_list("product_id", "units")
    )
    sold_in_answers = Counter()
    for status, body in results:
        if status == 201:
            for item in body["items"]:
                sold_in_answers[item["product_id"]] += item["quantity"]
    for pid in initial:
        assert final[pid] >= 0
        assert initial[pid] - final[pid] == sold_in_lines.get(pid, 0) == sold_in_answers[pid]
    assert Order.objects.count() == statuses[201]


def test_same_idempotency_key_ten_times_at_once_places_one_order(needs_postgres, make_product):
    # given
    product = make_product(stock=10)
    (token,) = tokens(1)
    body = {"product_id": product.pk, "quantity": 2}

    # when
    results = run_together([lambda: post_checkout(body, token=token, key="black-friday-1") for _ in range(10)])

    # then
    assert Order.objects.count() == 1
    order_id = Order.objects.get().pk
    for status, answer in results:
        assert (status, answer.get("order_id")) == (201, order_id) or (
            status,
            answer.get("code"),
        ) == (409, "request_in_progress"), (status, answer)
    assert stock_of(product) == 8
    later_status, later = post_checkout(body, token=token, key="black-friday-1")
    assert (later_status, later["order_id"]) == (201, order_id)
    assert stock_of(product) == 8
    assert IdempotencyRecord.objects.get().order_id == order_id


def test_hundred_checkouts_never_oversell_on_a_sqlite_file(tmp_path):
    # given: a fresh SQLite file in its own process (see tests/checkout/sqlite_oversell.py for why)
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.sqlite3'}",
        "RATELIMIT_ENABLED": "0",
        "DJANGO_ALLOWED_HOSTS": "testserver",
    }
    env.pop("REDIS_URL", None)

    # when
    run = subprocess.run(
        [sys.executable, "-m", "tests.checkout.sqlite_oversell"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
    )

    # then
    assert run.returncode == 0, run.stderr[-2000:]
    # The request log lines, written in batches, share stdout with the result, before or after it.
    (line,) = [line for line in run.stdout.splitlines() if line.startswith('{"statuses"')]
    result = json.loads(line)
    assert result == {"statuses": {"201": 20, "409": 80}, "stock": 0, "orders": 20}
