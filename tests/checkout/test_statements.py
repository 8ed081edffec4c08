"""SQL statements per checkout, as production runs them (autocommit outside the one order transaction)."""

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db(transaction=True)


def statements_for(client, body: dict, *, token: str, key: str | None = None) -> list[str]:
    headers = {"X-Session-Token": token, **({"Idempotency-Key": key} if key else {})}
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/api/checkout", data=json.dumps(body), content_type="application/json", headers=headers)
    assert response.status_code == 201, response.json()
    return [query["sql"] for query in captured.captured_queries]


def kind(sql: str) -> str:
    """'UPDATE catalog_inventory' for an UPDATE of that table: what a statement does, to what."""
    table = re.search(r'(?:FROM|INTO|UPDATE) "(\w+)"', sql)
    return f"{sql.split()[0]} {table[1]}" if table else sql


@pytest.mark.parametrize("key", [None, "k"], ids=["no-key", "with-key"])
@pytest.mark.parametrize("lines", [1, 3])
def test_checkout_writes_go_in_one_batch_after_the_reads(needs_postgres, client, make_product, make_token, lines, key):
    # given: a cart listing its products in descending id order
    products = [make_product(stock=10) for _ in range(lines)]
    body = {"items": [{"product_id": p.pk, "quantity": 2} for p in reversed(products)]}

    # when
    statements = statements_for(client, body, token=make_token(), key=key)

    # then: session, prices [and the key's claim] in one round trip, then the transaction: one batch of writes, which
    # PostgreSQL runs as one implicit transaction (no BEGIN or COMMIT round trip)
    assert [kind(sql) for sql in statements] == [
        f"{'WITH' if key else 'SELECT'} checkout_shoppersession",
        "WITH checkout_order",
    ], "\n".join(statements)
    session, prices = statements[0].split("; ")
    claims = re.findall(r'INSERT INTO "(\w+)"', session)
    assert claims == (["checkout_idempotencyrecord"] if key else [])
    assert kind(prices) == "SELECT catalog_product"
    assert prices.endswith(f"IN ({', '.join(str(p.pk) for p in products)})")
    # the batch: one statement writing the order, all its lines and [the key's "done"], then one UPDATE per line
    order_lines_key, lock, *updates, holds_used = statements[-1].split("; ")
    assert re.findall(r'(INSERT INTO|UPDATE) "(\w+)"', order_lines_key) == [
        ("INSERT INTO", "checkout_order"),
        ("INSERT INTO", "checkout_orderline"),
        *([("UPDATE", "checkout_idempotencyrecord")] if key else []),
    ]
    (values,) = re.findall(r"\(VALUES (.*?)\) AS v", order_lines_key)
    assert values.count("), (") == lines - 1  # all lines in one VALUES list
    # last, so each stock row is locked only until the COMMIT (the other lines' UPDATEs, at most, come between); the
    # rows are locked by one statement first, so each UPDATE's snapshot sees the holds committed before the lock
    assert kind(lock) == "SELECT catalog_inventory" and lock.endswith("FOR NO KEY UPDATE")
    assert [kind(sql) for sql in updates] == ["WITH catalog_inventory"] * lines
    # the buyer's own holds of the products are used up in the same transaction
    assert kind(holds_used) == "DELETE catalog_stockhold"
    # an UPDATE that finds too little stock ends the batch with an error, which rolls all of it back
    assert all(
        sql.endswith(f"checkout_refuse('insufficient_stock', {p.pk}) END")
        for sql, p in zip(updates, products, strict=True)
    )
    assert all('"quantity" >= 2' in sql for sql in updates)  # the stock check is in the UPDATE itself
    # rows are locked in ascending product id, whatever the order of the cart
    assert [re.search(r'"product_id" = (\d+)', sql)[1] for sql in updates] == [str(p.pk) for p in products]
    assert not any("FOR UPDATE" in sql for sql in statements)


def test_idempotent_replay_reads_and_writes_no_stock(needs_postgres, client, make_product, make_token):
    product, token = make_product(stock=10), make_token()
    body = {"product_id": product.pk, "quantity": 1}
    statements_for(client, body, token=token, key="k")

    replay = statements_for(client, body, token=token, key="k")

    assert not any("catalog_inventory" in sql for sql in replay), "\n".join(replay)
    # the reads with the claim (which finds the key), the key's record, the order and its lines
    assert len(replay) == 4, "\n".join(replay)
