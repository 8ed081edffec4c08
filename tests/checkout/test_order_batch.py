"""The order's writes as PostgreSQL runs them in production: one multi-statement query outside any transaction,
which PostgreSQL runs as one implicit transaction. The other checkout tests run inside a test transaction, where
the same query gets a savepoint instead."""

from datetime import timedelta

import pytest
from django.db import connection
from psycopg.pq import TransactionStatus

from checkout import services
from checkout.models import IdempotencyRecord
from tests.checkout.conftest import snapshot, stock_of
from tests.checkout.test_apis import checkout

pytestmark = pytest.mark.django_db(transaction=True)


def assert_no_transaction_left_open():
    assert not connection.in_atomic_block
    assert connection.connection.info.transaction_status == TransactionStatus.IDLE


def test_a_short_line_rolls_back_the_whole_order_and_names_every_short_line(
    needs_postgres, client, make_product, make_token
):
    plenty, short, fine, also_short = (
        make_product(stock=10),
        make_product(stock=1),
        make_product(stock=5),
        make_product(stock=0),
    )
    token = make_token()
    before = snapshot()
    cart = [(plenty, 3), (short, 2), (fine, 1), (also_short, 1)]

    response = checkout(client, {"items": [{"product_id": p.pk, "quantity": n} for p, n in cart]}, token=token, key="k")

    assert response.status_code == 409
    assert response.json()["code"] == "insufficient_stock"
    assert response.json()["product_ids"] == [short.pk, also_short.pk]
    after = snapshot()
    assert after["idempotency_records"] == before["idempotency_records"] + 1  # the 409, kept for replays
    assert {key: after[key] for key in ("orders", "lines", "stock")} == {
        key: before[key] for key in ("orders", "lines", "stock")
    }
    record = IdempotencyRecord.objects.get()
    assert (record.response_status, record.order_id) == (409, None)
    assert_no_transaction_left_open()

    # the same connection sells at once afterwards
    sold = checkout(client, {"product_id": plenty.pk, "quantity": 3}, token=token)
    assert sold.status_code == 201
    assert stock_of(plenty) == 7
    assert_no_transaction_left_open()


def test_a_key_taken_over_before_the_batch_sells_nothing(needs_postgres, client, make_product, make_token, monkeypatch):
    product, token = make_product(stock=5), make_token()
    claim = services.idempotency_claim_with_reads

    def claim_then_lose_it(**kwargs):
        session, prices, record = claim(**kwargs)
        IdempotencyRecord.objects.filter(pk=record.pk).update(started_at=record.started_at + timedelta(seconds=1))
        return session, prices, record

    monkeypatch.setattr(services, "idempotency_claim_with_reads", claim_then_lose_it)

    response = checkout(client, {"product_id": product.pk, "quantity": 2}, token=token, key="k")

    assert response.status_code == 409
    assert response.json()["code"] == "request_in_progress"
    assert stock_of(product) == 5
    assert snapshot()["orders"] == snapshot()["lines"] == 0
    record = IdempotencyRecord.objects.get()
    assert (record.order_id, record.response_status) == (None, None)  # the new owner's claim, untouched
    assert_no_transaction_left_open()


def test_a_sale_commits_order_lines_key_and_stock_together(needs_postgres, client, make_product, make_token):
    first, second = make_product(stock=4), make_product(stock=4)

    response = checkout(
        client,
        {"items": [{"product_id": first.pk, "quantity": 1}, {"product_id": second.pk, "quantity": 4}]},
        token=make_token(),
        key="k",
    )

    assert response.status_code == 201
    assert (stock_of(first), stock_of(second)) == (3, 0)
    record = IdempotencyRecord.objects.get()
    assert (record.order_id, record.response_status) == (response.json()["order_id"], 201)
    assert_no_transaction_left_open()
