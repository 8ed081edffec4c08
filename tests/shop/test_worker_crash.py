"""An Idempotency-Key whose request died: a gunicorn worker killed, or its database backend terminated, in the
middle of a checkout held on a stock row lock. The retry gets the first answer or a clean re-run, never a second
order, and never waits for the key longer than the worker timeout."""

import os
import signal
import subprocess
import threading
import time
from decimal import Decimal
from typing import NamedTuple

import psycopg
import pytest
from django.db import connection

from catalog.models import Inventory, Product
from checkout.models import IdempotencyRecord, Order
from checkout.services import session_create
from tests.workers import HEAVY

pytestmark = [HEAVY, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("needs_postgres")]

WORKER_TIMEOUT_S = 3


def database_port() -> int:
    return int(connection.settings_dict["PORT"] or 5432)


def side_connection() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=database_port(), user=db["USER"], dbname=db["NAME"], autocommit=True
    )


def checkout_backend_waiting_on_a_lock(side: psycopg.Connection, timeout: float = 15) -> int:
    """The pid of the backend whose statement waits for a row lock (the checkout's stock UPDATE)."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        row = side.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND pid <> pg_backend_pid()"
        ).fetchone()
        if row:
            return row[0]
        time.sleep(0.05)
    raise AssertionError("no checkout waited on the stock row lock")


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


@pytest.fixture
def shop_to_sell():
    """A product with 10 in stock and a shopper session's token."""
    product = Product.objects.create(sku="SKU-C1", name="Crash TV", category="tv", price=Decimal("19.99"))
    Inventory.objects.create(product=product, quantity=10)
    _, token = session_create()
    return product, token


def start_checkout(server, product, token, key) -> tuple[threading.Thread, list]:
    answers = []

    def run():
        try:
            answers.append(checkout(server, product, token, key))
        except OSError as exc:
            answers.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, answers


def checkout(server, product, token, key):
    return server.request(
        "POST",
        "/api/checkout",
        body={"product_id": product.pk, "quantity": 1},
        headers={"X-Session-Token": token, "Idempotency-Key": key},
    )


def stock_of(product) -> int:
    return Inventory.objects.get(product=product).quantity


class HeldCheckout(NamedTuple):
    server: object
    side: psycopg.Connection
    holder: psycopg.Connection
    thread: threading.Thread
    answers: list
    backend: int


def checkout_held_on_its_stock_row(shop_server, product, token, key) -> HeldCheckout:
    """A shop server with a checkout of `product` under way on it, its statement waiting for the stock row lock
    that `holder` (an open transaction on a side connection) holds."""
    server = shop_server(database_port=database_port(), GUNICORN_TIMEOUT=WORKER_TIMEOUT_S)
    side, holder = side_connection(), side_connection()
    holder.execute("BEGIN")
    holder.execute("SELECT 1 FROM catalog_inventory WHERE product_id = %s FOR UPDATE", [product.pk])
    thread, answers = start_checkout(server, product, token, key)
    backend = checkout_backend_waiting_on_a_lock(side)
    return HeldCheckout(server, side, holder, thread, answers, backend)


def kill_the_worker(held: HeldCheckout) -> None:
    """SIGKILL the server's one worker (nothing runs after it) and wait for the client to see the drop."""
    (worker,) = worker_pids(held.server.process.pid)
    os.kill(worker, signal.SIGKILL)
    held.thread.join(timeout=15)


def test_a_checkout_whose_backend_is_terminated_releases_its_key_at_once(shop_server, shop_to_sell):
    # given: a checkout held on its stock row by another transaction
    product, token = shop_to_sell
    held = checkout_held_on_its_stock_row(shop_server, product, token, "k1")

    # when: its database backend is terminated, then the lock goes away
    held.side.execute("SELECT pg_terminate_backend(%s)", [held.backend])
    held.thread.join(timeout=15)
    held.holder.execute("ROLLBACK")

    # then: that request got a 503 and sold nothing; the retry runs at once and sells exactly once
    (first,) = held.answers
    assert first.status == 503, first.body
    assert Order.objects.count() == 0 and stock_of(product) == 10
    retry = checkout(held.server, product, token, "k1")
    assert retry.status == 201, retry.body
    assert Order.objects.count() == 1 and stock_of(product) == 9
    again = checkout(held.server, product, token, "k1")
    assert (again.status, again.json()["order_id"]) == (201, retry.json()["order_id"])
    assert Order.objects.count() == 1 and stock_of(product) == 9


def test_a_checkout_whose_worker_is_killed_is_taken_over_within_the_worker_timeout(shop_server, shop_to_sell):
    # given: a checkout held on its stock row
    product, token = shop_to_sell
    held = checkout_held_on_its_stock_row(shop_server, product, token, "k2")

    # when: its worker is killed (SIGKILL: nothing runs after it), and its orphaned backend goes too
    kill_the_worker(held)
    held.side.execute("SELECT pg_terminate_backend(%s)", [held.backend])
    held.holder.execute("ROLLBACK")
    killed_at = time.monotonic()

    # then: the client saw its connection drop; the key stays claimed (409) only until the lease, the worker
    # timeout, runs out, and the retry then sells exactly once
    assert isinstance(held.answers[0], OSError)
    assert IdempotencyRecord.objects.get(key="k2").order_id is None
    statuses = []
    while (retry := checkout(held.server, product, token, "k2")).status == 409:
        statuses.append(409)
        assert time.monotonic() - killed_at < WORKER_TIMEOUT_S + 5, retry.body
        time.sleep(0.25)
    assert retry.status == 201, retry.body
    assert statuses  # the claim was not taken over while it could still have been running
    assert Order.objects.count() == 1 and stock_of(product) == 9


def test_a_killed_worker_whose_checkout_still_commits_answers_the_retry_with_that_order(shop_server, shop_to_sell):
    # given: a checkout held on its stock row, and its worker killed: its backend still waits for the lock
    product, token = shop_to_sell
    held = checkout_held_on_its_stock_row(shop_server, product, token, "k3")
    kill_the_worker(held)
    assert isinstance(held.answers[0], OSError)

    # when: the lock goes away, so the orphaned statement finishes, and the client retries past the lease
    held.holder.execute("ROLLBACK")
    time.sleep(WORKER_TIMEOUT_S + 0.5)
    retry = checkout(held.server, product, token, "k3")

    # then: the retry gets the order the dead request placed; nothing is sold twice
    assert retry.status == 201, retry.body
    (order,) = Order.objects.all()
    assert retry.json()["order_id"] == order.pk
    assert stock_of(product) == 9
