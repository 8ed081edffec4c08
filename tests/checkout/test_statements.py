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


@pytest.mark.parametrize(
    ("lines", "key", "expected"),
    [(1, None, 7), (3, None, 9), (1, "k", 9), (3, "k", 11)],
    ids=["1-line", "3-lines", "1-line-with-key", "3-lines-with-key"],
)
def test_checkout_statements_grow_by_one_update_per_line(
    needs_postgres, client, make_product, make_token, lines, key, expected
):
    # given: a cart listing its products in descending id order
    products = [make_product(stock=10) for _ in range(lines)]
    body = {"items": [{"product_id": p.pk, "quantity": 2} for p in reversed(products)]}

    # when
    statements = statements_for(client, body, token=make_token(), key=key)

    # then: session, prices, [claim key], BEGIN, order, lines, [key done], one UPDATE per line, COMMIT
    assert len(statements) == expected, "\n".join(statements)
    assert [kind(sql) for sql in statements] == [
        "SELECT checkout_shoppersession",
        "SELECT catalog_product",
        *(["INSERT checkout_idempotencyrecord"] if key else []),
        "BEGIN",
        "INSERT checkout_order",
        "INSERT checkout_orderline",  # all lines in one statement
        *(["UPDATE checkout_idempotencyrecord"] if key else []),
        # last, so each stock row is locked only until the COMMIT (the other lines' UPDATEs, at most, come between)
        *["UPDATE catalog_inventory"] * lines,
        "COMMIT",
    ]
    (lines_insert,) = [sql for sql in statements if kind(sql) == "INSERT checkout_orderline"]
    assert lines_insert.count("), (") == lines - 1
    updates = [sql for sql in statements if kind(sql) == "UPDATE catalog_inventory"]
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
    assert len(replay) == 6, "\n".join(replay)
