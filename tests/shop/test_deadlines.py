"""Deadlines the app enforces on the database, the circuit after one passes, /health and the worker's liveness:
against gunicorn running the shop, with the database behind a proxy that is frozen (SIGSTOP) mid-test."""

import threading
import time
from decimal import Decimal

import pytest

from catalog.models import Inventory, Product
from tests.workers import HEAVY

pytestmark = [HEAVY, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("needs_postgres")]

DEADLINE_S = 1.0
# The answer comes within the deadline, the watchdog's tick and the 503's own work: generous on a busy machine.
BUDGET_S = DEADLINE_S + 2.0


def product_with_stock(stock: int = 10) -> Product:
    product = Product.objects.create(sku="SKU-D1", name="Frozen TV", category="tv", price=Decimal("19.99"))
    Inventory.objects.create(product=product, quantity=stock)
    return product


def test_a_frozen_database_answers_503_within_the_deadline_then_fails_fast(db_proxy, shop_server):
    # given: the shop serving inventory through the proxy
    product = product_with_stock()
    server = shop_server(database_port=db_proxy.port, DB_DEADLINE_MS=int(DEADLINE_S * 1000))
    assert server.request("GET", f"/api/inventory/{product.pk}").status == 200

    # when: the proxy freezes (TCP stays up, nothing answers)
    db_proxy.freeze()
    first = server.request("GET", f"/api/inventory/{product.pk}")
    second = server.request("GET", f"/api/inventory/{product.pk}")
    health = server.request("GET", "/health")
    ready = server.request("GET", "/health/ready")

    # then: a 503 with Retry-After within the budget, and the circuit answers the next one without waiting
    assert first.status == 503, first.body
    assert first.json()["code"] == "database_unavailable"
    assert int(first.headers["retry-after"]) >= 1
    assert first.seconds < BUDGET_S
    assert second.status == 503 and "retry-after" in second.headers
    assert second.seconds < DEADLINE_S
    assert health.status == 200 and health.seconds < 1.0
    assert ready.status == 503
    assert ready.json()["failing"] == ["database"]

    # when: the outage goes on
    more = [server.request("GET", f"/api/inventory/{product.pk}") for _ in range(20)]
    time.sleep(0.5)  # request lines are written in batches

    # then: every request has its request-log line, but the repeated error is written once (counted later)
    assert {answer.status for answer in more} == {503}
    lines = server.log_lines()
    inventory = [line for line in lines if line["logger"] == "shop.request" and line["path"].startswith("/api/inv")]
    assert [line["status"] for line in inventory] == [200] + [503] * 22
    errors = [line for line in lines if line["level"] in ("WARNING", "ERROR")]
    assert len([line for line in errors if line["message"].startswith("Service Unavailable")]) == 1
    assert len(errors) <= 3, errors

    # when: the database answers again, a probe after the cool-down closes the circuit
    db_proxy.thaw()
    give_up = time.monotonic() + 15
    while (answer := server.request("GET", f"/api/inventory/{product.pk}")).status != 200:
        assert time.monotonic() < give_up, answer.body
        time.sleep(0.5)
    assert answer.json()["quantity"] == 10


def test_health_answers_while_every_request_thread_waits_on_the_database(db_proxy, shop_server):
    # given: both request threads of the one worker held by a frozen database (deadline and connect timeout far off)
    product = product_with_stock()
    server = shop_server(database_port=db_proxy.port, DB_DEADLINE_MS=10_000, DB_CONNECT_TIMEOUT=10, GUNICORN_TIMEOUT=30)
    assert server.request("GET", f"/api/inventory/{product.pk}").status == 200
    db_proxy.freeze()
    held = [
        threading.Thread(target=server.request, args=("GET", f"/api/inventory/{product.pk}"), daemon=True)
        for _ in range(2)
    ]
    for thread in held:
        thread.start()
    time.sleep(0.5)

    # when / then: /health is answered at once, by the worker's main loop (plain gthread queued it behind them)
    for _ in range(3):
        health = server.request("GET", "/health", timeout=5)
        assert health.status == 200 and health.seconds < 1.0
        assert health.json()["status"] == "ok"
    assert any(thread.is_alive() for thread in held)  # the requests are still waiting: health did not wait for them
    db_proxy.thaw()
    for thread in held:
        thread.join(timeout=15)


def test_a_stuck_request_thread_makes_its_worker_exit_after_the_worker_timeout(db_proxy, shop_server):
    # given: no app deadline or connect timeout within reach (60 s) and a worker timeout of 2 s
    product = product_with_stock()
    server = shop_server(database_port=db_proxy.port, DB_DEADLINE_MS=60_000, DB_CONNECT_TIMEOUT=60, GUNICORN_TIMEOUT=2)
    assert server.request("GET", f"/api/inventory/{product.pk}").status == 200
    db_proxy.freeze()

    # when: a request hangs on the database
    started = time.monotonic()
    with pytest.raises((ConnectionError, OSError)):
        server.request("GET", f"/api/inventory/{product.pk}", timeout=30)
    cut_after = time.monotonic() - started

    # then: the worker saw it (gthread's heartbeat would not have), exited, and a new one serves
    assert cut_after < 15
    stuck = [line for line in server.log_lines() if line.get("message") == "request thread stuck, worker exits"]
    assert len(stuck) == 1 and stuck[0]["path"] == f"/api/inventory/{product.pk}", server.log_path.read_text()
    assert stuck[0]["running_s"] >= 2
    db_proxy.thaw()
    assert server.request("GET", "/health").status == 200
